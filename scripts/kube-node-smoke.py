#!/usr/bin/env python3
"""Proves that a node from scripts/kube-node.sh runs pods: secrets reach a container as an env var and as a file.

    python3 scripts/kube-node-smoke.py ADMIN_KUBECONFIG [--node NAME] [--timeout SECONDS]

In a fresh namespace it makes a Secret and two pods (image launch-test/busybox:latest, imagePullPolicy Never,
automountServiceAccountToken false, restartPolicy Never), each printing an env var from a secretKeyRef and the
mode, owner and contents of a file from a secret volume (defaultMode 0400, one item):
  - `root`: no securityContext; the file is mode 400, owner 0:0;
  - `user`: runAsUser 1000, runAsGroup 1000, fsGroup 1000; kubelet gives the file group 1000 and adds group read
    (mode 440), and uid 1000 reads it through that group.
Each pod must reach Succeeded and its log, read through the apiserver from the kubelet (read_namespaced_pod_log,
what `kubectl logs` does), must hold the expected lines. Prints the timings; exits non-zero on any failure. The
namespace is deleted at the end. Needs the `kubernetes` package (pip install kubernetes).
"""

import argparse
import base64
import sys
import time
import uuid

import urllib3
from kubernetes import client, config
from kubernetes.client.rest import ApiException

ENV_VALUE = "env-secret-" + uuid.uuid4().hex[:8]
FILE_VALUE = "file-secret-" + uuid.uuid4().hex[:8]
IMAGE = "launch-test/busybox:latest"
# `stat -L`: the item's path in the volume is a symlink into the volume's ..data folder (kubelet's atomic writer);
# a plain `stat -c %a` would print the link's own 777.
SCRIPT = (
    'echo "env=$SECRET_ENV"; '
    'echo "mode=$(stat -L -c %a /secret/the-file)"; '
    'echo "owner=$(stat -L -c %u:%g /secret/the-file)"; '
    'echo "id=$(id -u):$(id -g)"; '
    'echo "content=$(cat /secret/the-file)"'
)


def fail(msg):
    print(f"kube-node-smoke: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def pod_manifest(name, secret, node, security_context):
    spec = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 1,
        "containers": [
            {
                "name": "main",
                "image": IMAGE,
                "imagePullPolicy": "Never",
                "command": ["sh", "-c", SCRIPT],
                "env": [{"name": "SECRET_ENV", "valueFrom": {"secretKeyRef": {"name": secret, "key": "env"}}}],
                "volumeMounts": [{"name": "sec", "mountPath": "/secret", "readOnly": True}],
            }
        ],
        "volumes": [
            {
                "name": "sec",
                "secret": {"secretName": secret, "defaultMode": 0o400, "items": [{"key": "file", "path": "the-file"}]},
            }
        ],
    }
    if node:
        spec["nodeSelector"] = {"kubernetes.io/hostname": node}
    if security_context:
        spec["securityContext"] = security_context
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def wait_default_sa(core, ns, deadline):
    while True:
        try:
            core.read_namespaced_service_account("default", ns)
            return
        except ApiException as e:
            if e.status != 404:
                raise
        if time.time() > deadline:
            fail(f"no ServiceAccount {ns}/default (is the controller-manager running?)")
        time.sleep(0.2)


def wait_done(core, ns, names, deadline):
    """Waits until every pod is Succeeded or Failed; returns {name: (phase, seconds since start)}."""
    start = time.time()
    done = {}
    while len(done) < len(names):
        for name in names:
            if name in done:
                continue
            pod = core.read_namespaced_pod(name, ns)
            if pod.status.phase in ("Succeeded", "Failed"):
                done[name] = (pod.status.phase, time.time() - start)
        if time.time() > deadline:
            waiting = {}
            for n in names:
                if n not in done:
                    st = core.read_namespaced_pod(n, ns).status
                    states = [(c.name, c.state.to_dict()) for c in st.container_statuses or []]
                    waiting[n] = f"{st.phase} {states}"
            events = core.list_namespaced_event(ns).items
            lines = [f"{e.involved_object.name}: {e.reason}: {e.message}" for e in events]
            fail(f"pods not finished: {waiting}\nevents:\n" + "\n".join(lines))
        time.sleep(0.2)
    return done


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("kubeconfig")
    ap.add_argument("--node", default=None, help="node name to pin the pods to (default: any)")
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args()
    urllib3.disable_warnings()
    api = config.new_client_from_config(config_file=args.kubeconfig)
    core = client.CoreV1Api(api)
    deadline = time.time() + args.timeout
    ns = "launch-node-smoke-" + uuid.uuid4().hex[:6]
    core.create_namespace({"metadata": {"name": ns}})
    try:
        wait_default_sa(core, ns, deadline)
        secret = "smoke"
        core.create_namespaced_secret(
            ns,
            {
                "metadata": {"name": secret},
                "type": "Opaque",
                "data": {
                    "env": base64.b64encode(ENV_VALUE.encode()).decode(),
                    "file": base64.b64encode(FILE_VALUE.encode()).decode(),
                },
            },
        )
        cases = {
            "root": (None, {"mode": "400", "owner": "0:0", "id": "0:0"}),
            "user": (
                {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000},
                {"mode": "440", "owner": "0:1000", "id": "1000:1000"},
            ),
        }
        t0 = time.time()
        for name, (sc, _) in cases.items():
            core.create_namespaced_pod(ns, pod_manifest(name, secret, args.node, sc))
        done = wait_done(core, ns, list(cases), deadline)
        ok = True
        for name, (_, want) in cases.items():
            phase, secs = done[name]
            log = core.read_namespaced_pod_log(name, ns, container="main")
            got = dict(line.split("=", 1) for line in log.splitlines() if "=" in line)
            expect = dict(want, env=ENV_VALUE, content=FILE_VALUE)
            bad = {k: (got.get(k), v) for k, v in expect.items() if got.get(k) != v}
            node = core.read_namespaced_pod(name, ns).spec.node_name
            print(f"pod {name}: {phase} on node {node} {secs:.1f} s after creation; log: {log.strip()!r}")
            if phase != "Succeeded":
                ok = False
                print(f"  pod {name} ended {phase}", file=sys.stderr)
            if bad:
                ok = False
                print(f"  pod {name}: wrong lines (got, want): {bad}", file=sys.stderr)
        print(f"both pods done {time.time() - t0:.1f} s after creation")
        if not ok:
            fail("see above")
        print("kube-node-smoke: OK")
    finally:
        try:
            core.delete_namespace(ns)
        except ApiException as e:
            print(f"kube-node-smoke: could not delete namespace {ns}: {e.status} {e.reason}", file=sys.stderr)


if __name__ == "__main__":
    main()

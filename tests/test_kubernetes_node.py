"""Kubernetes jobs that really run: a control plane of their own (tests/kubecluster.py) and a real node on this
machine (scripts/kube-node.sh: kubelet from the same source, a private containerd with its CRI plugin, runc, the
pause and test images built here and imported with `ctr`). The values reach the job's processes as the Docker
tests check them: env by a hash, files by content hash, mode and owner, never printed by the test job; what the
job prints of a value itself is masked in its output.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from conftest import REPO, launch_cmd, run_launch, sha, wait_for
from kubecluster import KubeCluster, KubeClusterError, _unavailable

CANARY = "kube-node-CANARY-61f0c2"
OTHER = "kube-node-OTHER-0e9b44"
NS = "alice"
NODE_SCRIPT = REPO / "scripts" / "kube-node.sh"
pytestmark = [pytest.mark.kubernetes, pytest.mark.slow]


@pytest.fixture(scope="module")
def node_cluster(tmp_path_factory):
    """A control plane and a real kubelet node registered with it (one per machine: the node's socket is fixed)."""
    try:
        cluster = KubeCluster.start(tmp_path_factory.mktemp("kube-node-plane"))
    except (KubeClusterError, OSError, subprocess.SubprocessError) as exc:
        _unavailable(f"no Kubernetes control plane: {exc}")
    node_dir = tmp_path_factory.mktemp("kube-node")
    env = {**os.environ, "KUBE_NODE_TOKEN": cluster.token("system:node:localhost")}
    started = subprocess.run(
        ["bash", str(NODE_SCRIPT), "start", str(node_dir), str(cluster.kubeconfig("admin"))],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    if started.returncode != 0:
        subprocess.run(["bash", str(NODE_SCRIPT), "stop", str(node_dir)], capture_output=True, timeout=120)
        cluster.stop()
        _unavailable("no real node: " + "\n".join(started.stderr.strip().splitlines()[-10:]))
    yield cluster
    subprocess.run(["bash", str(NODE_SCRIPT), "stop", str(node_dir)], capture_output=True, timeout=180)
    cluster.stop()


@pytest.fixture
def alice(node_cluster, launch_home, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(node_cluster.kubeconfig("alice")))
    monkeypatch.delenv("LAUNCH_BACKEND", raising=False)
    for name, value in (("tok", CANARY), ("db", OTHER)):
        assert run_launch("secret", "add", name, "-", input=value).returncode == 0
    from kubernetes import client

    api = node_cluster.api("admin")
    yield client.CoreV1Api(api), client.BatchV1Api(api)
    client.BatchV1Api(api).delete_collection_namespaced_job(
        NS, propagation_policy="Background", label_selector="launch.job"
    )


REPORT = r"""
echo "token $(printf %s "$TOKEN" | sha256sum | cut -c1-64)"
echo "db $(printf %s "$DB_URL" | sha256sum | cut -c1-64)"
echo "plain $PLAIN"
echo "file $(stat -L -c '%a %u:%g' /run/secrets/tok) $(sha256sum < /run/secrets/tok | cut -c1-64)"
echo "id $(id -u):$(id -g)"
echo "args $0 $1"
echo "masked $TOKEN"
exit 3
"""


def template(tmp_path, user: str | None = '"1000:1000"', script: str = REPORT, extra: str = "") -> str:
    path = tmp_path / "job.yaml"
    path.write_text(
        "image: launch-test/busybox:latest\n"
        f"command: [sh, -c, {json.dumps(script)}, 'a $(X) b', '$$']\n" + (f"user: {user}\n" if user else "") + "env:\n"
        "  TOKEN: secret:tok\n"
        '  DB_URL: "postgres://app:{{ RUNPOD_SECRET_db }}@db/app"\n'
        '  PLAIN: "cost $(HOME) and $$"\n'
        "volumes:\n"
        "  - secret:tok:/run/secrets/tok\n" + extra
    )
    return str(path)


def test_a_job_gets_its_secrets_as_env_and_files_and_its_output_is_masked(alice, tmp_path):
    done = run_launch("run", "--rm", "--backend", "kubernetes", template(tmp_path), timeout=180)
    out, err = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 3, err
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    assert lines["token"] == sha(CANARY)
    assert lines["db"] == sha(f"postgres://app:{OTHER}@db/app")
    assert lines["plain"] == "cost $(HOME) and $$"  # the API server's expansion does not touch literal text
    # 0400 asked; the kubelet makes a read-only secret volume's files group-readable for the pod's fsGroup
    assert lines["file"] == f"440 0:1000 {sha(CANARY)}"
    assert lines["id"] == "1000:1000"
    assert lines["args"] == "a $(X) b $$"
    assert lines["masked"] == "***"
    assert CANARY not in out + err and OTHER not in out + err
    core, batch = alice
    wait_for(lambda: not batch.list_namespaced_job(NS, label_selector="launch.job").items, 60, "--rm job removed")
    wait_for(lambda: not core.list_namespaced_secret(NS, label_selector="launch.job").items, 60, "its Secret gone")


def test_as_root_a_secret_file_keeps_the_templates_mode(alice, tmp_path):
    done = run_launch("run", "--backend", "kubernetes", template(tmp_path, user=None), timeout=180)
    assert done.returncode == 3, done.stderr
    lines = dict(line.split(" ", 1) for line in done.stdout.decode().splitlines())
    assert lines["file"] == f"400 0:0 {sha(CANARY)}" and lines["id"] == "0:0"


def test_a_detached_job_runs_and_its_logs_and_exit_code_are_read_back(alice, tmp_path):
    done = run_launch("run", "-d", "--backend", "kubernetes", template(tmp_path), timeout=180)
    assert done.returncode == 0, done.stderr
    job_id = done.stdout.decode().strip()

    def ended():
        rows = json.loads(run_launch("ps", "-a", "--json").stdout)
        return next((r for r in rows if r["id"] == job_id and r["status"] != "running"), None)

    row = wait_for(ended, 60, "the job ended")
    assert (row["status"], row["exit_code"], row["backend"]) == ("exited", 3, "kubernetes")
    logs = run_launch("logs", job_id)
    assert logs.returncode == 0, logs.stderr
    assert f"token {sha(CANARY)}" in logs.stdout.decode() and b"masked ***" in logs.stdout
    assert CANARY.encode() not in logs.stdout + logs.stderr
    assert run_launch("rm", job_id).returncode == 0


def test_ctrl_c_stops_a_running_job_and_its_container(alice, tmp_path):
    full = {**os.environ}
    proc = subprocess.Popen(
        [*launch_cmd(), "run", "--backend", "kubernetes", template(tmp_path, script="echo up; exec sleep 300")],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=full,
    )
    assert proc.stdout.readline() == b"up\n"
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    core, _ = alice
    # the Job controller deletes the pod; the kubelet kills its container
    wait_for(lambda: not core.list_namespaced_pod(NS, label_selector="launch.job").items, 60, "the pod gone")
    rows = json.loads(run_launch("ps", "-a", "--json").stdout)
    assert [r["status"] for r in rows] == ["stopped"]


def test_a_life_span_ends_a_foreground_job(alice, tmp_path):
    begun = time.monotonic()
    done = run_launch(
        "run",
        "--rm",
        "--life-span",
        "3s",
        "--backend",
        "kubernetes",
        template(tmp_path, script="trap 'exit 143' TERM; echo up; sleep 300 & wait"),
        timeout=120,
    )
    assert done.returncode == 143, done.stderr
    assert done.stdout == b"up\n"
    assert time.monotonic() - begun < 60

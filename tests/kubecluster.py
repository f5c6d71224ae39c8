"""A real Kubernetes control plane for the Kubernetes tier of the tests, and a node the test plays itself.

`KubeCluster.start(dir)` runs `scripts/kube-control-plane.sh start DIR`: etcd, kube-apiserver (RBAC, token users
admin/alice/bob, Secrets encrypted at rest, TTLAfterFinished on), kube-controller-manager and kube-scheduler on
127.0.0.1, about 15 s; the namespaces `alice` and `bob` with docs/kubernetes-role.yaml bound to their user. No
kubelet runs: `FakeNode` registers a Ready node (with 2 `nvidia.com/gpu`), keeps its heartbeat fresh, and the test
moves the pods bound to it through their lives (`run`, `finish`, `fail_start`), writes their logs (`write_log`,
served to `kubectl logs` and the API's pods/log through a small fake kubelet on 127.0.0.1) and finishes the
graceful deletion of its pods as a kubelet would (`reap_deleted`).

tests/conftest.py loads the fixtures as a plugin (`pytest_plugins`; importing them would trip ruff's F811 on every
test's argument); a test module imports the classes where it wants them: `from kubecluster import KubeCluster`.

`kube_cluster` (session) is one control plane for the whole run, `fake_node` (session) a node registered on it.
When the binaries, etcd or the client are missing or the plane does not come up, they fail under CI or
LAUNCH_REQUIRE_DOCKER=1 (`engine_required()`), else skip with the reason.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import ssl
import subprocess
import threading
import time
import urllib.request
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from conftest import REPO, engine_required

if TYPE_CHECKING:  # pragma: no cover
    import kubernetes
    from kubernetes.client import V1Pod

SCRIPT = REPO / "scripts/kube-control-plane.sh"
USERS = ("admin", "alice", "bob")
START_TIMEOUT = 45 * 60  # a first run on a machine builds the binaries (scripts/kube-build.sh, 15-20 minutes)


class KubeClusterError(RuntimeError):
    """The control plane could not be started (the script's own words, and the tail of the logs)."""


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _rfc3339(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(value) if value else _now()


class KubeCluster:
    """A control plane started by scripts/kube-control-plane.sh in `dir`, its API server at `server`."""

    def __init__(self, dir: Path, server: str):
        self.dir = Path(dir)
        self.server = server

    @classmethod
    def start(cls, dir: Path) -> KubeCluster:
        """Start (or join, when it runs already) the plane in `dir`; builds the binaries first where absent."""
        dir = Path(dir)
        dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "KUBE_PLANE_WATCH_PID": str(os.getpid())}
        try:
            result = subprocess.run(
                ["bash", str(SCRIPT), "start", str(dir)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                env=env,
                timeout=START_TIMEOUT,
            )
        except subprocess.TimeoutExpired as exc:
            subprocess.run(["bash", str(SCRIPT), "stop", str(dir)], capture_output=True, timeout=120)
            raise KubeClusterError(f"{SCRIPT.name} start did not finish in {START_TIMEOUT} s") from exc
        if result.returncode != 0:
            subprocess.run(["bash", str(SCRIPT), "stop", str(dir)], capture_output=True, timeout=120)
            tail = "\n".join(result.stderr.strip().splitlines()[-15:])
            raise KubeClusterError(f"{SCRIPT.name} start exited {result.returncode}:\n{tail}")
        admin = Path(result.stdout.strip().splitlines()[-1])
        config = yaml.safe_load(admin.read_text())
        return cls(dir, config["clusters"][0]["cluster"]["server"])

    def stop(self) -> None:
        """Stop every process of the plane and wait until they exited (the files stay, for a post-mortem)."""
        subprocess.run(["bash", str(SCRIPT), "stop", str(self.dir)], check=True, capture_output=True, timeout=120)

    def kubeconfig(self, user: str) -> Path:
        """The kubeconfig of `user` ("admin", "alice" or "bob"): a token user, current context in their namespace."""
        if user not in USERS:
            raise ValueError(f"no user {user!r}: one of {', '.join(USERS)}")
        return self.dir / f"{user}.kubeconfig"

    def token(self, user: str) -> str:
        """The bearer token of `user`, from the API server's token file."""
        for line in (self.dir / "tokens.csv").read_text().splitlines():
            fields = line.split(",")
            if len(fields) >= 2 and fields[1] == user:
                return fields[0]
        raise ValueError(f"no token for {user!r}")

    @property
    def ca_file(self) -> Path:
        return self.dir / "ca.crt"

    def api(self, user: str = "admin") -> kubernetes.client.ApiClient:
        """A fresh client authenticated as `user` (wrap it: `kubernetes.client.CoreV1Api(cluster.api("alice"))`)."""
        from kubernetes import config

        return config.new_client_from_config(config_file=str(self.kubeconfig(user)))

    def ports(self) -> dict[str, int]:
        """ETCD_PORT, ETCD_PEER_PORT, APISERVER_PORT of the running plane."""
        pairs = (line.split("=", 1) for line in (self.dir / "ports.env").read_text().splitlines() if "=" in line)
        return {key: int(value) for key, value in pairs}

    def etcd_dump(self) -> bytes:
        """Every key and its raw stored value in etcd, concatenated (`key\\nvalue\\n` each): what someone who
        reads etcd's data sees. A Secret's value must not be in it in plain text; its name is (keys are plain)."""
        url = f"http://127.0.0.1:{self.ports()['ETCD_PORT']}/v3/kv/range"
        everything = base64.b64encode(b"\0").decode()  # from the first key on, to the end
        body = json.dumps({"key": everything, "range_end": everything}).encode()
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            kvs = json.load(response).get("kvs", [])
        out = bytearray()
        for kv in kvs:
            out += base64.b64decode(kv["key"]) + b"\n" + base64.b64decode(kv.get("value", "")) + b"\n"
        return bytes(out)


def _container_id() -> str:
    return f"containerd://{secrets.token_hex(32)}"


class FakeNode:
    """The test plays the node: a registered Ready node; pods bound to it get their status patched by the test.

    No container ever runs. What a kubelet would do, the test does: `run(pod)`, `finish(pod, code)`,
    `fail_start(pod, reason)`, `write_log(pod, text)`. Two daemon threads stand in for the rest of a kubelet: a
    heartbeat (the node's Lease and Ready condition, every `HEARTBEAT` s, so the node lifecycle controller never
    taints it) and, while `reap_deleted` is true (the default), a watch that completes the graceful deletion of
    this node's pods at once (a deleted running pod would otherwise stay Terminating for ever). The API server
    reaches the fake kubelet's log endpoint on 127.0.0.1 (the node's Hostname address is localhost, its InternalIP
    127.0.0.1; its port is the node's daemonEndpoints.kubeletEndpoint).
    """

    HEARTBEAT = 5.0
    CAPACITY: ClassVar[dict[str, str]] = {
        "cpu": "8",
        "memory": "32Gi",
        "pods": "110",
        "ephemeral-storage": "100Gi",
        "nvidia.com/gpu": "2",
    }

    def __init__(self, cluster: KubeCluster, name: str = "fake-node", labels: dict | None = None):
        from kubernetes import client

        self.cluster = cluster
        self.name = name
        self.labels = dict(labels or {})
        self.reap_deleted = True
        self.errors: list[str] = []  # what the background threads ran into (the last 50)
        self._client = client
        self._api = cluster.api("admin")
        self.core = client.CoreV1Api(self._api)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._logs: dict[tuple[str, str, str], bytearray] = {}
        self._log_done: set[tuple[str, str, str]] = set()
        self._log_lock = threading.Condition()
        self._kubelet: ThreadingHTTPServer | None = None

    # --- the node ---------------------------------------------------------------------------------------------

    def register(self) -> None:
        """Create the Node (Ready, allocatable cpu/memory/pods and nvidia.com/gpu: 2), start its heartbeat, the
        reaper and the fake kubelet, and wait until the scheduler may place pods on it (no not-ready taint)."""
        from kubernetes.client.rest import ApiException

        port = self._serve_kubelet()
        labels = {
            "kubernetes.io/hostname": self.name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            **self.labels,
        }
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": self.name, "labels": labels},
            "spec": {},
            "status": self._status(port),
        }
        try:
            self.core.create_node(body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            self.core.patch_node(self.name, {"metadata": {"labels": labels}, "spec": {"taints": None}})
        self._heartbeat(port)
        for target in (self._heartbeat_loop, self._reap_loop):
            thread = threading.Thread(target=target, args=(port,), name=f"{self.name}-{target.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            node = self.core.read_node(self.name)
            if not node.spec.taints and not node.spec.unschedulable:
                return
            time.sleep(0.2)
        raise AssertionError(f"node {self.name} still tainted after 60 s: {node.spec.taints}")

    def close(self) -> None:
        """Stop the heartbeat, the reaper and the fake kubelet (the Node object stays)."""
        self._stop.set()
        with self._log_lock:
            self._log_lock.notify_all()
        if self._kubelet is not None:
            self._kubelet.shutdown()
            self._kubelet.server_close()
        for thread in self._threads:
            thread.join(timeout=1)  # daemon threads: a watch still open ends with the process

    def _status(self, port: int) -> dict[str, Any]:
        now = _now()

        def condition(kind: str, status: str, reason: str, message: str) -> dict[str, str]:
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }

        return {
            "capacity": dict(self.CAPACITY),
            "allocatable": dict(self.CAPACITY),
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID"),
                condition("Ready", "True", "KubeletReady", "the test plays this node's kubelet"),
            ],
            # The apiserver dials a kubelet at its Hostname address first: the fake kubelet is on localhost.
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": "localhost"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
            "nodeInfo": {
                "machineID": "fake",
                "systemUUID": "fake",
                "bootID": "fake",
                "kernelVersion": os.uname().release,
                "osImage": "launch tests' fake node",
                "containerRuntimeVersion": "containerd://fake",
                "kubeletVersion": "v1.20.2",
                "kubeProxyVersion": "v1.20.2",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }

    def _heartbeat(self, port: int) -> None:
        from kubernetes.client import CoordinationV1Api
        from kubernetes.client.rest import ApiException

        status = self._status(port)
        for condition in status["conditions"]:
            del condition["lastTransitionTime"]  # a heartbeat is no transition: the merge keeps the first one
        self.core.patch_node_status(self.name, {"status": status})
        leases = CoordinationV1Api(self._api)
        spec = {"holderIdentity": self.name, "leaseDurationSeconds": 40, "renewTime": _micro_now()}
        try:
            leases.patch_namespaced_lease(self.name, "kube-node-lease", {"spec": spec})
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": self.name}}
            leases.create_namespaced_lease("kube-node-lease", {**body, "spec": spec})

    def _note(self, what: str, exc: BaseException) -> None:
        self.errors.append(f"{what}: {type(exc).__name__}: {exc}"[:500])
        del self.errors[:-50]

    def _heartbeat_loop(self, port: int) -> None:
        while not self._stop.wait(self.HEARTBEAT):
            try:
                self._heartbeat(port)
            except Exception as exc:
                self._note("heartbeat", exc)

    def _reap_loop(self, port: int) -> None:
        """Finish the graceful deletion of this node's pods, as the kubelet does once their containers stopped."""
        from kubernetes import watch
        from kubernetes.client.rest import ApiException

        while not self._stop.is_set():
            try:
                stream = watch.Watch().stream(
                    self.core.list_pod_for_all_namespaces,
                    field_selector=f"spec.nodeName={self.name}",
                    timeout_seconds=5,
                    _request_timeout=15,
                )
                for event in stream:
                    pod = event["object"]
                    if event["type"] == "DELETED":
                        self._end_logs(pod)
                        continue
                    if pod.metadata.deletion_timestamp is None or not self.reap_deleted:
                        continue
                    self._end_logs(pod)
                    try:
                        self.core.delete_namespaced_pod(
                            pod.metadata.name,
                            pod.metadata.namespace,
                            # in the body: the API server reads no query options when a body comes
                            body={"gracePeriodSeconds": 0, "preconditions": {"uid": pod.metadata.uid}},
                        )
                    except ApiException as exc:
                        if exc.status not in (404, 409):
                            self._note("reap", exc)
                    if self._stop.is_set():
                        break
            except Exception as exc:
                if not self._stop.is_set():
                    self._note("reaper watch", exc)
                    self._stop.wait(1)

    # --- pods -------------------------------------------------------------------------------------------------

    def pods(self, namespace: str, selector: str = "") -> list:
        """The V1Pod objects in `namespace` matching the label `selector` (all when empty)."""
        return self.core.list_namespaced_pod(namespace, label_selector=selector).items

    def wait_pod(self, namespace: str, selector: str, timeout: float = 30) -> V1Pod:
        """The first pod matching `selector` in `namespace` that the scheduler bound (spec.node_name set)."""
        deadline = time.monotonic() + timeout
        seen: list = []
        while True:
            seen = self.pods(namespace, selector)
            for pod in seen:
                if pod.spec.node_name:
                    return pod
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        states = []
        for pod in seen:
            conditions = [(c.type, c.status, c.reason, c.message) for c in pod.status.conditions or []]
            states.append(f"{pod.metadata.name}: {pod.status.phase} {conditions}")
        raise AssertionError(
            f"no pod matching {selector!r} in {namespace} was scheduled within {timeout} s; pods: {states or 'none'}"
        )

    def _patch_status(self, pod: V1Pod, status: dict[str, Any]) -> V1Pod:
        return self.core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, {"status": status})

    def _fresh(self, pod: V1Pod) -> V1Pod:
        return self.core.read_namespaced_pod(pod.metadata.name, pod.metadata.namespace)

    def _init_done(self, pod: V1Pod, now: str) -> list[dict[str, Any]]:
        """Each init container ran and exited 0."""
        return [
            {
                "name": c.name,
                "image": c.image,
                "imageID": f"sha256:{secrets.token_hex(32)}",
                "containerID": _container_id(),
                "ready": True,
                "restartCount": 0,
                "state": {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}},
            }
            for c in pod.spec.init_containers or []
        ]

    @staticmethod
    def _conditions(ready: bool, reason: str | None = None, message: str | None = None) -> list[dict[str, Any]]:
        now = _now()
        value = "True" if ready else "False"
        conditions = [{"type": "Initialized", "status": "True", "lastTransitionTime": now}]
        for kind in ("Ready", "ContainersReady"):
            condition: dict[str, Any] = {"type": kind, "status": value, "lastTransitionTime": now}
            if reason:
                condition["reason"] = reason
            if message:
                condition["message"] = message
            conditions.append(condition)
        return conditions

    def run(self, pod: V1Pod) -> V1Pod:
        """Its containers started now and run: phase Running, every container running and Ready."""
        pod = self._fresh(pod)
        now = _now()
        containers = [
            {
                "name": c.name,
                "image": c.image,
                "imageID": f"sha256:{secrets.token_hex(32)}",
                "containerID": _container_id(),
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": now}},
            }
            for c in pod.spec.containers
        ]
        status = {
            "phase": "Running",
            "hostIP": "127.0.0.1",
            "startTime": _rfc3339(pod.status.start_time) if pod.status.start_time else now,
            "conditions": self._conditions(True),
            "initContainerStatuses": self._init_done(pod, now),
            "containerStatuses": containers,
        }
        return self._patch_status(pod, status)

    def finish(self, pod: V1Pod, exit_code: int) -> V1Pod:
        """Its containers exited with `exit_code`: phase Succeeded (0) or Failed, each container terminated."""
        pod = self._fresh(pod)
        now = _now()
        started = {s.name: s for s in pod.status.container_statuses or []}
        containers = []
        for c in pod.spec.containers:
            old = started.get(c.name)
            began = now
            if old is not None and old.state is not None and old.state.running is not None:
                began = _rfc3339(old.state.running.started_at)
            terminated = {
                "exitCode": exit_code,
                "reason": "Completed" if exit_code == 0 else "Error",
                "startedAt": began,
                "finishedAt": now,
                "containerID": (old.container_id if old is not None and old.container_id else _container_id()),
            }
            containers.append(
                {
                    "name": c.name,
                    "image": c.image,
                    "imageID": (
                        old.image_id if old is not None and old.image_id else f"sha256:{secrets.token_hex(32)}"
                    ),
                    "containerID": terminated["containerID"],
                    "ready": False,
                    "started": False,
                    "restartCount": old.restart_count if old is not None else 0,
                    "state": {"terminated": terminated},
                }
            )
        status = {
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "hostIP": "127.0.0.1",
            "startTime": _rfc3339(pod.status.start_time) if pod.status.start_time else now,
            "conditions": self._conditions(False, "PodCompleted"),
            "initContainerStatuses": self._init_done(pod, now),
            "containerStatuses": containers,
        }
        result = self._patch_status(pod, status)
        self._end_logs(pod)
        return result

    def fail_start(self, pod: V1Pod, reason: str = "ErrImagePull", message: str = "") -> V1Pod:
        """Its containers cannot start: phase Pending, each container waiting with `reason` and `message`, and a
        Warning event `Failed` about the pod with that message, as a kubelet reports an image it cannot pull."""
        pod = self._fresh(pod)
        now = _now()
        image = pod.spec.containers[0].image
        message = message or f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": not found'
        containers = [
            {
                "name": c.name,
                "image": c.image,
                "imageID": "",
                "ready": False,
                "started": False,
                "restartCount": 0,
                "state": {"waiting": {"reason": reason, "message": message}},
            }
            for c in pod.spec.containers
        ]
        names = ", ".join(c.name for c in pod.spec.containers)
        status = {
            "phase": "Pending",
            "hostIP": "127.0.0.1",
            "startTime": _rfc3339(pod.status.start_time) if pod.status.start_time else now,
            "conditions": self._conditions(False, "ContainersNotReady", f"containers with unready status: [{names}]"),
            "initContainerStatuses": self._init_done(pod, now),
            "containerStatuses": containers,
        }
        result = self._patch_status(pod, status)
        self.event(pod, "Failed", f"Error: {reason}: {message}")
        return result

    def event(self, pod: V1Pod, reason: str, message: str, type: str = "Warning") -> None:
        """A core/v1 Event about `pod` from this node's "kubelet", as `kubectl describe pod` shows them."""
        now = _now()
        self.core.create_namespaced_event(
            pod.metadata.namespace,
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {
                    "name": f"{pod.metadata.name}.{secrets.token_hex(8)}",
                    "namespace": pod.metadata.namespace,
                },
                "involvedObject": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": pod.metadata.name,
                    "namespace": pod.metadata.namespace,
                    "uid": pod.metadata.uid,
                    "fieldPath": f"spec.containers{{{pod.spec.containers[0].name}}}",
                },
                "reason": reason,
                "message": message,
                "type": type,
                "source": {"component": "kubelet", "host": self.name},
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
            },
        )

    # --- logs: a fake kubelet's /containerLogs, reached by the API server's pods/log ---------------------------

    def _log_key(self, pod: V1Pod, container: str | None) -> tuple[str, str, str]:
        return (pod.metadata.namespace, pod.metadata.name, container or pod.spec.containers[0].name)

    def write_log(self, pod: V1Pod, data: str | bytes, container: str | None = None) -> None:
        """Append `data` to the log of `container` (the first one by default) of `pod`: what pods/log returns,
        and what a follower (`follow=true`) receives next. The log ends when `finish` runs or the pod goes."""
        chunk = data.encode() if isinstance(data, str) else data
        with self._log_lock:
            self._logs.setdefault(self._log_key(pod, container), bytearray()).extend(chunk)
            self._log_lock.notify_all()

    def _end_logs(self, pod: V1Pod) -> None:
        with self._log_lock:
            for key in list(self._logs) + [self._log_key(pod, c.name) for c in pod.spec.containers]:
                if key[:2] == (pod.metadata.namespace, pod.metadata.name):
                    self._log_done.add(key)
            self._log_lock.notify_all()

    def _serve_kubelet(self) -> int:
        node = self

        class Kubelet(BaseHTTPRequestHandler):
            def log_message(self, format, *args):  # quiet
                pass

            def do_GET(self):
                url = urlsplit(self.path)
                parts = url.path.strip("/").split("/")
                if len(parts) != 4 or parts[0] != "containerLogs":
                    self.send_error(404, "the fake kubelet serves /containerLogs/NAMESPACE/POD/CONTAINER only")
                    return
                key = (parts[1], parts[2], parts[3])
                query = parse_qs(url.query)
                follow = query.get("follow", ["false"])[0] == "true"
                tail = int(query["tailLines"][0]) if "tailLines" in query else None
                limit = int(query["limitBytes"][0]) if "limitBytes" in query else None
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Connection", "close")
                self.end_headers()
                with node._log_lock:
                    data = bytes(node._logs.get(key, b""))
                position = len(data)  # what a follower has had: all there was when it asked
                if tail is not None:
                    data = b"".join(data.splitlines(keepends=True)[-tail:]) if tail > 0 else b""
                sent = 0
                while True:
                    if limit is not None:
                        data = data[: max(0, limit - sent)]
                    if data:
                        self.wfile.write(data)
                        self.wfile.flush()
                        sent += len(data)
                    if not follow or (limit is not None and sent >= limit):
                        return
                    # Following: wait for more, until the container's log ends (finish, the pod deleted).
                    with node._log_lock:
                        while (
                            len(node._logs.get(key, b"")) <= position
                            and key not in node._log_done
                            and not node._stop.is_set()
                        ):
                            node._log_lock.wait(1)
                        data = bytes(node._logs.get(key, b""))[position:]
                        follow = key not in node._log_done and not node._stop.is_set()
                    position += len(data)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Kubelet)
        server.daemon_threads = True
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cluster.dir / "apiserver.crt", self.cluster.dir / "apiserver.key")
        server.socket = context.wrap_socket(server.socket, server_side=True)
        thread = threading.Thread(target=server.serve_forever, name=f"{self.name}-kubelet", daemon=True)
        thread.start()
        self._kubelet = server
        return server.server_address[1]


def _unavailable(message: str):
    if engine_required():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory):
    """One control plane for the whole run, in a temporary folder, stopped at the end."""
    try:
        import kubernetes  # noqa: F401
    except ImportError:
        _unavailable("the Python kubernetes client is not installed (pip install kubernetes)")
    try:
        cluster = KubeCluster.start(tmp_path_factory.mktemp("kube"))
    except (KubeClusterError, OSError, subprocess.SubprocessError) as exc:
        _unavailable(f"no Kubernetes control plane: {exc}")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def fake_node(kube_cluster):
    """A Ready node named fake-node on `kube_cluster`, played by the test (see FakeNode)."""
    node = FakeNode(kube_cluster)
    node.register()
    yield node
    node.close()

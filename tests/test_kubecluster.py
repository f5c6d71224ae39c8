"""The Kubernetes test fixture itself (tests/kubecluster.py): a real control plane, its users and their rights,
Secrets encrypted at rest, a node the test plays, the TTL and garbage collectors the backend leans on."""

from __future__ import annotations

import base64
import secrets
import time
from datetime import UTC, datetime

import pytest
from conftest import wait_for


@pytest.fixture
def k8s(kube_cluster):
    """The `kubernetes` package, once `kube_cluster` found it (else it failed or skipped with the reason)."""
    import kubernetes

    return kubernetes


def _name(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def _pod_spec(**extra) -> dict:
    return {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "containers": [{"name": "job", "image": "busybox:1.36", "command": ["sh", "-c", "true"]}],
        **extra,
    }


def _gone(read) -> bool:
    from kubernetes.client.rest import ApiException

    try:
        read()
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def test_api_reachable_as_admin(kube_cluster, k8s):
    assert kube_cluster.server.startswith("https://127.0.0.1:")
    version = k8s.client.VersionApi(kube_cluster.api("admin")).get_code()
    assert (version.major, version.minor.rstrip("+")) == ("1", "20")
    names = {ns.metadata.name for ns in k8s.client.CoreV1Api(kube_cluster.api()).list_namespace().items}
    assert {"default", "kube-system", "alice", "bob"} <= names


def test_no_anonymous_and_no_wrong_token(kube_cluster, k8s):
    import ssl
    import urllib.error
    import urllib.request

    context = ssl.create_default_context(cafile=str(kube_cluster.ca_file))
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        request = urllib.request.Request(f"{kube_cluster.server}/api/v1/namespaces", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, context=context, timeout=10)
        assert caught.value.code == 401


def test_alice_has_the_role_in_her_namespace_only(kube_cluster, k8s):
    from kubernetes.client.rest import ApiException

    alice = k8s.client.CoreV1Api(kube_cluster.api("alice"))
    name = _name("alice-secret")
    alice.create_namespaced_secret("alice", {"metadata": {"name": name}, "stringData": {"k": "v"}})
    assert name in {s.metadata.name for s in alice.list_namespaced_secret("alice").items}
    alice.patch_namespaced_secret(name, "alice", {"metadata": {"labels": {"patched": "yes"}}})
    alice.delete_namespaced_secret(name, "alice")

    with pytest.raises(ApiException) as caught:
        alice.list_namespaced_secret("bob")
    assert caught.value.status == 403
    # The Role gives pods read only: the backend creates Jobs, never Pods.
    with pytest.raises(ApiException) as caught:
        alice.create_namespaced_pod("alice", {"metadata": {"name": _name("p")}, "spec": _pod_spec()})
    assert caught.value.status == 403
    # Nor anything cluster-wide.
    with pytest.raises(ApiException) as caught:
        alice.list_namespace()
    assert caught.value.status == 403


def test_secrets_are_encrypted_at_rest(kube_cluster, k8s):
    core = k8s.client.CoreV1Api(kube_cluster.api("alice"))
    name = _name("canary")
    canary = f"canary-{secrets.token_hex(16)}"
    control = f"plain-{secrets.token_hex(16)}"
    core.create_namespaced_secret("alice", {"metadata": {"name": name}, "stringData": {"value": canary}})
    # A ConfigMap is not encrypted: it proves the dump holds the values it should hide for Secrets.
    admin = k8s.client.CoreV1Api(kube_cluster.api("admin"))
    admin.create_namespaced_config_map("alice", {"metadata": {"name": name}, "data": {"value": control}})
    try:
        dump = kube_cluster.etcd_dump()
        assert f"/registry/secrets/alice/{name}".encode() in dump
        assert control.encode() in dump
        assert canary.encode() not in dump
        assert b"k8s:enc:aescbc:v1:key1:" in dump
        read = core.read_namespaced_secret(name, "alice")
        assert base64.b64decode(read.data["value"]).decode() == canary
    finally:
        core.delete_namespaced_secret(name, "alice")
        admin.delete_namespaced_config_map(name, "alice")


def test_pod_is_scheduled_on_the_fake_node_and_moves_through_phases(kube_cluster, fake_node, k8s):
    admin = k8s.client.CoreV1Api(kube_cluster.api())
    name = _name("pod")
    spec = _pod_spec()
    spec["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "1", "cpu": "1", "memory": "64Mi"}}
    admin.create_namespaced_pod("alice", {"metadata": {"name": name, "labels": {"t": name}}, "spec": spec})
    pod = fake_node.wait_pod("alice", f"t={name}")
    assert pod.spec.node_name == fake_node.name
    assert pod.status.phase == "Pending"

    fake_node.run(pod)
    pod = admin.read_namespaced_pod(name, "alice")
    assert pod.status.phase == "Running"
    assert pod.status.container_statuses[0].state.running is not None
    assert {c.type: c.status for c in pod.status.conditions}["Ready"] == "True"

    fake_node.write_log(pod, "hello\nfrom the fake node\n")
    alice = k8s.client.CoreV1Api(kube_cluster.api("alice"))  # pods/log: get, through the API server
    assert alice.read_namespaced_pod_log(name, "alice") == "hello\nfrom the fake node\n"
    assert alice.read_namespaced_pod_log(name, "alice", tail_lines=1) == "from the fake node\n"

    fake_node.finish(pod, 3)
    pod = admin.read_namespaced_pod(name, "alice")
    assert pod.status.phase == "Failed"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 3
    admin.delete_namespaced_pod(name, "alice")
    wait_for(lambda: _gone(lambda: admin.read_namespaced_pod(name, "alice")), 30, "the finished pod deleted")


def test_following_a_log_ends_when_the_container_does(kube_cluster, fake_node, k8s):
    admin = k8s.client.CoreV1Api(kube_cluster.api())
    name = _name("follow")
    admin.create_namespaced_pod("alice", {"metadata": {"name": name, "labels": {"t": name}}, "spec": _pod_spec()})
    pod = fake_node.run(fake_node.wait_pod("alice", f"t={name}"))
    fake_node.write_log(pod, "one\n")
    alice = k8s.client.CoreV1Api(kube_cluster.api("alice"))
    response = alice.read_namespaced_pod_log(name, "alice", follow=True, _preload_content=False, _request_timeout=30)
    got = bytearray()
    chunks = response.stream(16)
    got += next(chunks)
    assert got == b"one\n"
    fake_node.write_log(pod, "two\n")
    fake_node.finish(pod, 0)
    started = time.monotonic()
    for chunk in chunks:
        got += chunk
    assert got == b"one\ntwo\n"
    assert time.monotonic() - started < 20
    admin.delete_namespaced_pod(name, "alice")


def test_an_unpullable_image_shows_in_the_pod_and_an_event(kube_cluster, fake_node, k8s):
    admin = k8s.client.CoreV1Api(kube_cluster.api())
    name = _name("pull")
    admin.create_namespaced_pod("alice", {"metadata": {"name": name, "labels": {"t": name}}, "spec": _pod_spec()})
    pod = fake_node.wait_pod("alice", f"t={name}")
    fake_node.fail_start(pod, "ErrImagePull", "no such image")
    pod = admin.read_namespaced_pod(name, "alice")
    assert pod.status.phase == "Pending"
    assert pod.status.container_statuses[0].state.waiting.reason == "ErrImagePull"
    alice = k8s.client.CoreV1Api(kube_cluster.api("alice"))  # events: list
    events = alice.list_namespaced_event("alice", field_selector=f"involvedObject.name={name}").items
    kubelet = [e for e in events if e.source.component == "kubelet"]
    assert [(e.reason, e.type) for e in kubelet] == [("Failed", "Warning")]
    assert "no such image" in kubelet[0].message
    assert "Scheduled" in {e.reason for e in events}  # the scheduler's own event, for the same pod
    admin.delete_namespaced_pod(name, "alice")
    # Graceful deletion of a bound pod waits for its kubelet: the fake node's reaper completes it.
    wait_for(lambda: _gone(lambda: admin.read_namespaced_pod(name, "alice")), 30, "the pod deleted")


def test_finished_job_with_ttl_zero_is_deleted(kube_cluster, fake_node, k8s):
    batch = k8s.client.BatchV1Api(kube_cluster.api("alice"))  # the Role's jobs: create, get
    name = _name("ttl")
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "ttlSecondsAfterFinished": 0,
            "template": {"metadata": {"labels": {"t": name}}, "spec": _pod_spec()},
        },
    }
    created = batch.create_namespaced_job("alice", job)
    assert created.spec.ttl_seconds_after_finished == 0  # the apiserver's feature gate keeps the field
    pod = fake_node.wait_pod("alice", f"t={name}")
    assert pod.metadata.owner_references[0].uid == created.metadata.uid
    fake_node.run(pod)
    fake_node.finish(pod, 0)
    wait_for(lambda: _gone(lambda: batch.read_namespaced_job(name, "alice")), 60, "the TTL controller")
    admin = k8s.client.CoreV1Api(kube_cluster.api())
    wait_for(lambda: not fake_node.pods("alice", f"t={name}"), 60, "its pod garbage-collected")
    assert admin.list_namespaced_pod("alice", label_selector=f"t={name}").items == []


def test_job_without_ttl_stays_and_completes(kube_cluster, fake_node, k8s):
    batch = k8s.client.BatchV1Api(kube_cluster.api("alice"))
    name = _name("keep")
    job = {
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": {"t": name}}, "spec": _pod_spec()}},
    }
    batch.create_namespaced_job("alice", job)
    pod = fake_node.wait_pod("alice", f"t={name}")
    fake_node.finish(fake_node.run(pod), 0)

    def complete():
        status = batch.read_namespaced_job(name, "alice").status
        return status.succeeded == 1 and any(c.type == "Complete" for c in status.conditions or [])

    wait_for(complete, 30, "the Job complete")
    time.sleep(2)
    assert not _gone(lambda: batch.read_namespaced_job(name, "alice"))
    batch.delete_namespaced_job(name, "alice", propagation_policy="Background")


def test_secret_owned_by_a_job_goes_with_it(kube_cluster, k8s):
    batch = k8s.client.BatchV1Api(kube_cluster.api("alice"))
    core = k8s.client.CoreV1Api(kube_cluster.api("alice"))
    name = _name("owner")
    job = {
        "metadata": {"name": name},
        "spec": {"parallelism": 0, "template": {"spec": _pod_spec()}},  # no pod: only the ownership matters
    }
    created = batch.create_namespaced_job("alice", job)
    core.create_namespaced_secret("alice", {"metadata": {"name": name}, "stringData": {"k": "v"}, "immutable": True})
    owner = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": name,
        "uid": created.metadata.uid,
        "blockOwnerDeletion": True,
    }
    # An immutable Secret's metadata still takes a patch: the backend sets the owner once the Job exists.
    core.patch_namespaced_secret(name, "alice", {"metadata": {"ownerReferences": [owner]}})
    time.sleep(2)
    assert not _gone(lambda: core.read_namespaced_secret(name, "alice"))  # the owner lives: the Secret stays
    batch.delete_namespaced_job(name, "alice", propagation_policy="Background")
    wait_for(lambda: _gone(lambda: core.read_namespaced_secret(name, "alice")), 60, "the garbage collector")


def test_fake_node_stays_ready(kube_cluster, fake_node, k8s):
    admin = k8s.client.CoreV1Api(kube_cluster.api())
    node = admin.read_node(fake_node.name)
    assert {c.type: c.status for c in node.status.conditions}["Ready"] == "True"
    assert node.status.allocatable["nvidia.com/gpu"] == "2"
    assert not node.spec.taints
    lease = k8s.client.CoordinationV1Api(kube_cluster.api()).read_namespaced_lease(fake_node.name, "kube-node-lease")
    age = datetime.now(UTC) - lease.spec.renew_time
    assert age.total_seconds() < 3 * fake_node.HEARTBEAT
    assert fake_node.errors == []

"""The kubernetes backend against a real control plane (tests/kubecluster.py: etcd, kube-apiserver with a token
file, RBAC and Secret encryption at rest, the controller-manager and the scheduler, on 127.0.0.1), through the real
CLI as user alice (a Role in namespace alice only, docs/kubernetes-role.yaml).

The test plays the node (`FakeNode`: a registered Ready node whose pods' status the test patches), so the start
confirmation, failures before start, exit codes, stop, life-span and cleanup are all the cluster's own objects and
controllers; a real kubelet running these jobs is tests/test_kubernetes_node.py. What a node alone can do here
(logs) is tested up to the API call.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time

import pytest
from conftest import launch_cmd, run_launch, wait_for

CANARY = "kube-CANARY-93b1f0e7"
OTHER = "kube-OTHER-5c2d7a11"
NS = "alice"
pytestmark = [pytest.mark.kubernetes, pytest.mark.slow]


@pytest.fixture
def alice(kube_cluster, fake_node, launch_home, monkeypatch):
    """The CLI as alice: her kubeconfig, secrets in a fresh store, and nothing of hers left in the namespace."""
    monkeypatch.setenv("KUBECONFIG", str(kube_cluster.kubeconfig("alice")))
    monkeypatch.delenv("LAUNCH_BACKEND", raising=False)
    for name, value in (("tok", CANARY), ("db", OTHER)):
        done = run_launch("secret", "add", name, "-", input=value)
        assert done.returncode == 0, done.stderr
    yield Cluster(kube_cluster, fake_node)
    admin = Cluster(kube_cluster, fake_node)
    admin.batch.delete_collection_namespaced_job(NS, propagation_policy="Background", label_selector="launch.job")
    admin.core.delete_collection_namespaced_secret(NS, label_selector="launch.job")
    wait_for(lambda: not admin.core.list_namespaced_pod(NS, label_selector="launch.job").items, 30, "pods gone")


class Cluster:
    """Admin's view, to check what launch created."""

    def __init__(self, cluster, node):
        from kubernetes import client

        self.cluster = cluster
        self.node = node
        self.api_client = cluster.api("admin")
        self.core = client.CoreV1Api(self.api_client)
        self.batch = client.BatchV1Api(self.api_client)

    def jobs(self, job_id: str | None = None) -> list:
        selector = f"launch.job={job_id}" if job_id else "launch.job"
        return self.batch.list_namespaced_job(NS, label_selector=selector).items

    def secrets(self, job_id: str | None = None) -> list:
        selector = f"launch.job={job_id}" if job_id else "launch.job"
        return self.core.list_namespaced_secret(NS, label_selector=selector).items

    def pods(self, job_id: str) -> list:
        return self.core.list_namespaced_pod(NS, label_selector=f"launch.job={job_id}").items

    def plain(self, obj) -> str:
        return json.dumps(self.api_client.sanitize_for_serialization(obj))

    def pod_of(self, job_id: str | None = None, timeout: float = 30):
        selector = f"launch.job={job_id}" if job_id else "launch.job"
        return self.node.wait_pod(NS, selector, timeout=timeout)

    def nothing_left(self, job_id: str, timeout: float = 30) -> None:
        wait_for(lambda: not self.jobs(job_id) and not self.secrets(job_id), timeout, f"job {job_id} cleaned up")


def start(*args: str, env: dict | None = None) -> subprocess.Popen:
    """`launch ARGS` in the background (a run waits for its pod, which the test then plays)."""
    full = dict(os.environ)
    full.update(env or {})
    return subprocess.Popen(
        [*launch_cmd(), *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full
    )


def finish(proc: subprocess.Popen, timeout: float = 60) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out.decode(), err.decode()


def job_id_of(pod) -> str:
    return pod.metadata.labels["launch.job"]


def run_detached(alice, *args: str) -> tuple[str, object]:
    """`launch run -d --backend kubernetes ARGS`, its pod run by the node: (the job id, its pod) once it returned 0."""
    proc = start("run", "-d", "--backend", "kubernetes", *args)
    pod = alice.pod_of()
    alice.node.run(pod)
    code, out, err = finish(proc)
    assert code == 0, err
    assert out == f"{job_id_of(pod)}\n"
    return job_id_of(pod), pod


TEMPLATE = """\
image: launch-test/busybox:latest
command: [sh, -c, 'echo started; echo "$TOKEN" | sha256sum']
user: "1000:1000"
env:
  PLAIN: "a $(literal) dollar"
  TOKEN: secret:tok
  DB_URL: "postgres://app:{{ RUNPOD_SECRET_db }}@db/app"
volumes:
  - secret:tok:/run/secrets/tok:0440
resources: {cpus: 0.5, memory: 64m, gpus: 1}
constraints: ["node.hostname==fake-node"]
"""


def write_template(tmp_path, text: str = TEMPLATE) -> str:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    return str(path)


def test_a_job_gets_references_only_and_one_owned_secret_holds_the_values(alice, tmp_path):
    proc = start("run", "-d", "--backend", "kubernetes", write_template(tmp_path))
    pod = alice.pod_of()
    job_id = job_id_of(pod)
    time.sleep(1)
    assert proc.poll() is None, "a detached run reported before its pod ran"
    alice.node.run(pod)
    code, out, err = finish(proc)
    assert code == 0, err
    assert out == f"{job_id}\n"
    assert CANARY not in out + err and OTHER not in out + err

    (job,) = alice.jobs(job_id)
    (secret,) = alice.secrets(job_id)
    assert job.metadata.name == f"launch-{job_id}" and secret.metadata.name == f"launch-{job_id}"
    # the Secret: immutable, only the referenced values, owned by the Job (the garbage collector removes it)
    assert secret.immutable is True
    assert {k: base64.b64decode(v).decode() for k, v in secret.data.items()} == {"tok": CANARY, "db": OTHER}
    (owner,) = secret.metadata.owner_references
    assert (owner.kind, owner.name, owner.uid) == ("Job", job.metadata.name, job.metadata.uid)
    # the Job and its pod: references, modes and the user; no value anywhere but in the Secret
    for obj in (job, alice.pods(job_id)[0]):
        assert CANARY not in alice.plain(obj) and OTHER not in alice.plain(obj)
    spec = job.spec.template.spec
    env = {e.name: e for e in spec.containers[0].env}
    assert env["TOKEN"].value_from.secret_key_ref.name == f"launch-{job_id}"
    assert env["TOKEN"].value_from.secret_key_ref.key == "tok"
    assert env["DB_URL"].value == "postgres://app:$(LAUNCH_SECRET_0)@db/app"
    assert env["LAUNCH_SECRET_0"].value_from.secret_key_ref.key == "db"
    assert env["PLAIN"].value == "a $$(literal) dollar"
    (volume,) = spec.volumes
    assert volume.secret.secret_name == f"launch-{job_id}"
    assert [(i.key, i.mode) for i in volume.secret.items] == [("tok", 0o440)]
    (mount,) = spec.containers[0].volume_mounts
    assert (mount.mount_path, mount.read_only) == ("/run/secrets/tok", True)
    assert (spec.security_context.run_as_user, spec.security_context.fs_group) == (1000, 1000)
    assert spec.containers[0].resources.limits == {"cpu": "500m", "memory": str(64 * 2**20), "nvidia.com/gpu": "1"}
    assert spec.node_selector == {"kubernetes.io/hostname": "fake-node"}
    assert spec.automount_service_account_token is False
    # etcd holds the Secret encrypted at rest: its name in plaintext, never its value
    dump = alice.cluster.etcd_dump()
    assert f"launch-{job_id}".encode() in dump
    assert CANARY.encode() not in dump and OTHER.encode() not in dump

    # ps, inspect: the job as any other, on the kubernetes backend
    listed = run_launch("ps", "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = [r for r in json.loads(listed.stdout) if r["id"] == job_id]
    assert (row["backend"], row["status"], row["secrets"]) == ("kubernetes", "running", {"db": 1, "tok": 1})
    shown = run_launch("inspect", "--json", job_id)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["kubernetes"]["namespace"] == NS and data["kubernetes"]["job"] == f"launch-{job_id}"
    assert data["spec"]["env"]["TOKEN"] == "secret:tok"
    assert CANARY.encode() not in shown.stdout + listed.stdout

    # the node ends it: ps -a shows its exit code; rm removes the Job and its Secret
    alice.node.finish(alice.pods(job_id)[0], 0)
    wait_for(lambda: "exited" in run_launch("ps", "-a").stdout.decode(), 30, "the job listed as exited")
    removed = run_launch("rm", job_id)
    assert removed.returncode == 0, removed.stderr
    alice.nothing_left(job_id)


def test_a_pod_that_cannot_start_is_reported_and_leaves_nothing(alice, tmp_path):
    proc = start("run", "-d", "--backend", "kubernetes", write_template(tmp_path))
    pod = alice.pod_of()
    job_id = job_id_of(pod)
    alice.node.fail_start(pod, "ErrImagePull", "pull access denied for launch-test/busybox")
    code, out, err = finish(proc)
    assert code == 7 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"job {job_id} did not start: ErrImagePull: pull access denied" in err
    alice.nothing_left(job_id)


def test_a_job_the_cluster_refuses_to_create_leaves_no_secret(alice, tmp_path):
    from kubernetes import client

    quota = client.V1ResourceQuota(
        metadata=client.V1ObjectMeta(name="no-jobs"), spec=client.V1ResourceQuotaSpec(hard={"count/jobs.batch": "0"})
    )
    alice.core.create_namespaced_resource_quota(NS, quota)
    try:
        # the quota controller must have counted before admission enforces it
        wait_for(
            lambda: alice.core.read_namespaced_resource_quota("no-jobs", NS).status.hard or {}, 30, "quota counted"
        )
        done = run_launch("run", "-d", "--backend", "kubernetes", write_template(tmp_path))
    finally:
        alice.core.delete_namespaced_resource_quota("no-jobs", NS)
    err = done.stderr.decode()
    assert done.returncode == 7, err
    assert err.count("\n") == 1 and "exceeded quota" in err and "Traceback" not in err
    assert alice.jobs() == [] and alice.secrets() == []


@pytest.mark.parametrize(
    ("extra", "args", "expected"),
    [
        ("ports: ['8080:80']\n", (), "ports: a cluster has no host ports"),
        ("", ("--volume", "/srv:/data"), "volume /srv:/data (--volume /srv:/data): a host folder"),
        ("", ("-i",), "-i/--interactive"),
        ("", ("--name", "Bad_Name"), "name 'Bad_Name': a kubernetes Job's name is lowercase"),
        ("", ("--namespace", "Not A Namespace"), "--namespace: invalid value 'Not A Namespace'"),
        ("", ("--context", "nowhere"), "--context 'nowhere': no such context in the kubeconfig"),
        ("", ("-e", "X=secret:missing"), "secret 'missing' not found"),
    ],
)
def test_bad_input_is_refused_before_any_object_exists(alice, tmp_path, extra, args, expected):
    done = run_launch("run", "-d", "--backend", "kubernetes", *args, write_template(tmp_path, TEMPLATE + extra))
    err = done.stderr.decode()
    assert done.returncode in (2, 3), err
    assert err.count("\n") == 1 and expected in err and "Traceback" not in err
    assert alice.jobs() == [] and alice.secrets() == []


def test_another_namespace_is_refused_by_rbac_in_one_line_and_never_listed(alice, tmp_path):
    done = run_launch("run", "-d", "--backend", "kubernetes", "--namespace", "bob", write_template(tmp_path))
    err = done.stderr.decode()
    assert done.returncode == 7, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "the cluster refused it (RBAC)" in err and 'cannot create resource "secrets"' in err
    assert 'in the namespace "bob"' in err
    bob = Cluster(alice.cluster, alice.node)
    assert bob.core.list_namespaced_secret("bob", label_selector="launch.job").items == []
    # ps asks the namespaces this store ran in: bob's (refused) shows as one warning, alice's jobs still list
    listed = run_launch("ps")
    assert listed.returncode == 0, listed.stderr
    assert "namespace 'bob'" in listed.stderr.decode() and "Traceback" not in listed.stderr.decode()


def test_stop_ends_the_job_as_its_life_span_would_and_it_stays_listed(alice, tmp_path):
    job_id, _pod = run_detached(alice, "--life-span", "1h", write_template(tmp_path))
    (job,) = alice.jobs(job_id)
    assert job.spec.active_deadline_seconds == 3600
    stopped = run_launch("stop", job_id)
    assert stopped.returncode == 0, stopped.stderr
    (job,) = alice.jobs(job_id)
    assert job.spec.active_deadline_seconds <= 60
    wait_for(
        lambda: any(c.reason == "DeadlineExceeded" for c in (alice.jobs(job_id)[0].status.conditions or [])),
        30,
        "the Job controller ended the job",
    )
    listed = json.loads(run_launch("ps", "-a", "--json").stdout)
    (row,) = [r for r in listed if r["id"] == job_id]
    assert row["status"] == "stopped"
    refused = run_launch("rm", "nope-" + job_id)
    assert refused.returncode == 3
    assert run_launch("rm", job_id).returncode == 0
    alice.nothing_left(job_id)


def test_a_detached_rm_job_is_removed_by_the_cluster_once_it_ends(alice, tmp_path):
    job_id, _pod = run_detached(alice, "--rm", write_template(tmp_path))
    assert alice.jobs(job_id)[0].spec.ttl_seconds_after_finished == 0
    alice.node.finish(alice.pods(job_id)[0], 0)
    # the TTL controller deletes the Job, the garbage collector its Secret (the owner reference)
    alice.nothing_left(job_id, timeout=60)


def test_a_foreground_job_streams_its_output_masked_and_exits_with_its_code(alice, tmp_path):
    proc = start("run", "--rm", "--backend", "kubernetes", write_template(tmp_path))
    pod = alice.pod_of()
    job_id = job_id_of(pod)
    alice.node.run(pod)
    alice.node.write_log(pod, f"started\ntoken={CANARY} db={OTHER}\n")
    time.sleep(1)
    assert proc.poll() is None
    alice.node.finish(alice.pods(job_id)[0], 3)
    code, out, err = finish(proc)
    assert code == 3, err
    assert out == "started\ntoken=*** db=***\n"
    assert err == ""
    alice.nothing_left(job_id)


def test_logs_masked_and_followed_until_the_job_ends(alice, tmp_path):
    job_id, pod = run_detached(alice, write_template(tmp_path))
    alice.node.write_log(pod, f"one {CANARY}\ntwo\n")
    done = run_launch("logs", job_id)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"one ***\ntwo\n"
    tail = run_launch("logs", "--tail", "1", job_id)
    assert tail.stdout == b"two\n"
    follower = start("logs", "-f", job_id)
    time.sleep(1)
    alice.node.write_log(pod, f"three {OTHER}\n")
    time.sleep(0.5)
    assert follower.poll() is None
    alice.node.finish(alice.pods(job_id)[0], 0)
    code, out, err = finish(follower)
    assert code == 0, err
    assert out == "one ***\ntwo\nthree ***\n"
    assert run_launch("rm", job_id).returncode == 0


def test_logs_of_a_removed_job_say_so_in_one_line(alice, tmp_path):
    job_id, _pod = run_detached(alice, write_template(tmp_path))
    alice.node.finish(alice.pods(job_id)[0], 0)
    assert run_launch("rm", job_id).returncode == 0
    done = run_launch("logs", job_id)
    err = done.stderr.decode()
    assert done.returncode == 3, err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_ctrl_c_while_waiting_for_the_pod_deletes_what_was_created(alice, tmp_path):
    proc = start("run", "-d", "--backend", "kubernetes", write_template(tmp_path))
    pod = alice.pod_of()
    job_id = job_id_of(pod)
    assert alice.secrets(job_id)
    proc.send_signal(signal.SIGINT)
    code, out, err = finish(proc)
    assert code == 130 and out == "" and "Traceback" not in err
    alice.nothing_left(job_id)


def test_a_pod_no_node_can_take_is_reported_after_the_start_timeout(alice, tmp_path):
    text = TEMPLATE.replace("node.hostname==fake-node", "node.labels.accelerator==tpu-v9")
    done = run_launch(
        "run", "-d", "--backend", "kubernetes", write_template(tmp_path, text), env={"LAUNCH_KUBE_START_TIMEOUT": "3"}
    )
    err = done.stderr.decode()
    assert done.returncode == 7, err
    assert "waits for a node" in err and "did not start within 3 s: no node can run it" in err
    assert "Traceback" not in err
    assert alice.jobs() == [] and alice.secrets() == []


def test_a_secret_whose_job_never_came_is_swept(alice):
    """A launcher killed between creating the Secret and the Job leaves a Secret no Job owns: the next command
    removes it once that launcher's process is gone."""
    from kubernetes import client

    from launcher.runtime import kubernetes as kube

    boot = open("/proc/sys/kernel/random/boot_id").read().strip()
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid that no longer lives
    kube.remember(kube.resolve_target(None, None))  # as the store's first run in the namespace does
    orphan = client.V1Secret(
        metadata=client.V1ObjectMeta(
            name="launch-0123456789",
            labels={"app.kubernetes.io/managed-by": "launch", "launch.job": "0123456789"},
            annotations={"launch.launcher": f"{boot}:{gone.pid}"},
        ),
        data={"tok": base64.b64encode(CANARY.encode()).decode()},
    )
    alice.core.create_namespaced_secret(NS, orphan)
    listed = run_launch("ps", "-a")
    assert listed.returncode == 0, listed.stderr
    wait_for(lambda: not alice.secrets("0123456789"), 10, "the orphaned Secret removed")


def test_jobs_of_both_backends_list_together(alice, tmp_path, docker_api):
    kube_id, _pod = run_detached(alice, write_template(tmp_path))
    local = run_launch("run", "-d", "--image", "launch-test/busybox:latest", "--", "sleep", "30")
    assert local.returncode == 0, local.stderr
    local_id = local.stdout.decode().strip()
    try:
        rows = json.loads(run_launch("ps", "--json").stdout)
        backends = {r["id"]: r["backend"] for r in rows}
        assert backends[kube_id] == "kubernetes" and backends[local_id] == "docker"
        assert run_launch("stop", kube_id, local_id).returncode == 0
    finally:
        run_launch("rm", "-f", local_id)


def test_a_sweep_starts_one_job_per_combination_on_the_cluster(alice, tmp_path):
    proc = start("run", "--backend", "kubernetes", "--matrix", "seed=1,2", write_template(tmp_path))
    seen: dict[str, object] = {}

    def run_new_pods() -> bool:
        for pod in alice.node.pods(NS, "launch.job"):
            if pod.spec.node_name and pod.metadata.name not in seen:
                seen[pod.metadata.name] = alice.node.run(pod)
        return len(seen) == 2

    wait_for(run_new_pods, 60, "both jobs of the sweep scheduled")
    code, out, err = finish(proc)
    assert code == 0, err
    ids = out.split()
    assert len(ids) == 2 and sorted(ids) == sorted(job_id_of(p) for p in seen.values())
    seeds = set()
    for job_id in ids:
        (job,) = alice.jobs(job_id)
        env = {e.name: e.value for e in job.spec.template.spec.containers[0].env}
        seeds.add(env["SEED"])
        assert job.metadata.labels.get("launch.sweep")
    assert seeds == {"1", "2"}
    sweep = alice.jobs(ids[0])[0].metadata.labels["launch.sweep"]
    assert run_launch("stop", sweep).returncode == 0
    assert run_launch("rm", sweep).returncode == 0
    for job_id in ids:
        alice.nothing_left(job_id)

"""The Kubernetes objects a plan becomes (launcher.runtime.kubeplan), and how the backend reads what a cluster
reports: pure logic, no cluster. The real cluster tests are tests/test_kubernetes.py."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import pytest

from launcher import plan as plans
from launcher import template
from launcher.runtime import kubeplan
from launcher.runtime import kubernetes as kube
from launcher.runtime.common import RunOptions

CANARY = "sk-CANARY-kube-7d1e"
OTHER = "pw-CANARY-kube-0a2b"


@dataclass(frozen=True)
class Revealed:
    value: bytes = field(repr=False)
    version: int


def plan_of(text: str, values: dict[str, bytes] | None = None):
    spec = template.parse(text, "job.yaml")
    values = values or {}
    return plans.resolve(spec, {k: Revealed(v, 1) for k, v in values.items()})


JOB = """\
image: app:1
command: [serve, --price, "$5", "$(HOME)"]
user: "1000:2000"
env:
  PLAIN: "cost $(X) and $$"
  TOKEN: secret:token
  DB_URL: "postgres://app:{{ RUNPOD_SECRET_db }}@db/{{ RUNPOD_SECRET_db }}?t={{ RUNPOD_SECRET_token }}"
volumes:
  - secret:tls:/etc/tls/key.pem:0440
  - secret:token:/run/secrets/token
resources: {cpus: 0.5, memory: 512m, gpus: 2}
constraints: ["node.labels.gpu==true", "node.hostname==node-1"]
"""
VALUES = {"token": CANARY.encode(), "db": OTHER.encode(), "tls": b"\x00\xffkey"}


def manifests(text: str = JOB, values=None, **options):
    plan = plan_of(text, VALUES if values is None else values)
    opts = RunOptions(**options)
    labels = {"launch.job": "abc123", "app.kubernetes.io/managed-by": "launch"}
    job = kubeplan.job_manifest(plan, "abc123", "ns1", labels=labels, annotations={"launch.name": "x"}, options=opts)
    secret = kubeplan.secret_manifest(plan, "abc123", "ns1", labels)
    return plan, job, secret


def container(job):
    return job["spec"]["template"]["spec"]["containers"][0]


def test_the_job_holds_references_only_and_the_secret_holds_each_value_once():
    _, job, secret = manifests()
    text = json.dumps(job)
    for value in (CANARY, OTHER, base64.b64encode(CANARY.encode()).decode()):
        assert value not in text
    assert secret["immutable"] is True and secret["type"] == "Opaque"
    assert secret["metadata"]["name"] == "launch-abc123" and secret["metadata"]["namespace"] == "ns1"
    data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
    assert data == {"token": CANARY.encode(), "db": OTHER.encode(), "tls": b"\x00\xffkey"}


def test_a_spliced_secret_is_a_hidden_reference_expanded_by_the_api_server():
    _, job, _ = manifests()
    env = container(job)["env"]
    names = [e["name"] for e in env]
    # hidden references first: a dependent variable may only name variables listed before it
    assert names[:2] == ["LAUNCH_SECRET_0", "LAUNCH_SECRET_1"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}
    assert refs["LAUNCH_SECRET_0"] == {"name": "launch-abc123", "key": "db"}
    assert refs["LAUNCH_SECRET_1"] == {"name": "launch-abc123", "key": "token"}
    assert refs["TOKEN"] == {"name": "launch-abc123", "key": "token"}
    by_name = {e["name"]: e.get("value") for e in env}
    assert by_name["DB_URL"] == "postgres://app:$(LAUNCH_SECRET_0)@db/$(LAUNCH_SECRET_0)?t=$(LAUNCH_SECRET_1)"


def test_every_literal_dollar_is_escaped_so_the_job_sees_what_docker_would_pass():
    _, job, _ = manifests()
    by_name = {e["name"]: e.get("value") for e in container(job)["env"]}
    assert by_name["PLAIN"] == "cost $$(X) and $$$$"
    assert container(job)["args"] == ["serve", "--price", "$$5", "$$(HOME)"]
    assert "command" not in container(job)  # the image's entrypoint is kept


def test_files_are_items_of_one_secret_volume_mounted_read_only_at_their_paths():
    _, job, _ = manifests()
    pod = job["spec"]["template"]["spec"]
    (volume,) = pod["volumes"]
    assert volume["secret"]["secretName"] == "launch-abc123" and volume["secret"]["defaultMode"] == 0o400
    items = volume["secret"]["items"]
    assert [(i["key"], i["mode"]) for i in items] == [("tls", 0o440), ("token", 0o400)]
    mounts = container(job)["volumeMounts"]
    assert [(m["mountPath"], m["readOnly"]) for m in mounts] == [
        ("/etc/tls/key.pem", True),
        ("/run/secrets/token", True),
    ]
    assert [m["subPath"] for m in mounts] == [i["path"] for i in items]
    assert pod["securityContext"] == {"runAsUser": 1000, "runAsGroup": 2000, "fsGroup": 2000}


def test_resources_placement_restart_life_span_and_removal():
    _, job, _ = manifests(life_span=90, remove=True, detach=True)
    pod = job["spec"]["template"]["spec"]
    assert container(job)["resources"] == {"limits": {"cpu": "500m", "memory": str(512 * 2**20), "nvidia.com/gpu": "2"}}
    assert pod["nodeSelector"] == {"gpu": "true", "kubernetes.io/hostname": "node-1"}
    assert pod["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] == 0
    assert job["spec"]["activeDeadlineSeconds"] == 90
    assert job["spec"]["ttlSecondsAfterFinished"] == 0
    assert pod["automountServiceAccountToken"] is False
    _, job, _ = manifests(remove=True)  # foreground: kept a minute, so its exit code can be read
    assert job["spec"]["ttlSecondsAfterFinished"] == 60
    _, job, _ = manifests(JOB + "restart: on-failure:3\n")
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "OnFailure" and job["spec"]["backoffLimit"] == 3


def test_a_new_entrypoint_drops_the_images_command_as_docker_does():
    _, job, _ = manifests("image: app\nentrypoint: [/bin/run, $X]\n", values={})
    assert container(job)["command"] == ["/bin/run", "$$X"] and container(job)["args"] == []


def test_a_job_without_secrets_needs_no_secret_volume():
    _, job, secret = manifests("image: app\nenv: {A: b}\n", values={})
    assert "volumes" not in job["spec"]["template"]["spec"] and secret["data"] == {}


@pytest.mark.parametrize(
    ("text", "options", "expected"),
    [
        ("ports: ['8080:80']\n", {}, "ports: a cluster has no host ports"),
        ("network: host\n", {}, "network 'host': has no meaning on kubernetes"),
        ("volumes: ['/srv:/data']\n", {}, "volume /srv:/data (job.yaml:2:11): a host folder"),
        ("", {"interactive": True}, "-i/--interactive"),
        ("", {"plain_env": True}, "--plain-env: has no meaning on kubernetes"),
        ("user: app\n", {}, "user 'app': the kubernetes backend needs a numeric uid"),
        ("restart: always\n", {}, "restart 'always': a kubernetes Job runs to completion"),
        ("resources: {gpus: all}\n", {}, "resources.gpus 'all'"),
        ("constraints: ['node.role==manager']\n", {}, "constraint 'node.role==manager': on kubernetes only"),
        ("constraints: ['node.labels.a==b c']\n", {}, "constraint 'node.labels.a==b c'"),
        ("name: My_Job\n", {}, "name 'My_Job': a kubernetes Job's name is lowercase"),
    ],
)
def test_what_has_no_meaning_on_a_cluster_is_refused_with_one_line(text, options, expected):
    spec = template.parse("image: app\n" + text, "job.yaml")
    found = kubeplan.problems(spec, RunOptions(**options))
    assert len(found) == 1 and found[0].startswith(expected), found


def test_a_plain_job_has_no_problems():
    spec = template.parse(JOB + "name: train-1\nrestart: on-failure\n", "job.yaml")
    assert kubeplan.problems(spec, RunOptions(life_span=60, remove=True)) == []


@pytest.mark.parametrize(("cpus", "text"), [(0.5, "500m"), (2, "2"), (1.0001, "1001m"), (0.0001, "1m")])
def test_cpu_quantities_never_round_down(cpus, text):
    assert kubeplan.quantity_cpu(cpus) == text


def test_labels_hold_ids_and_hashes_and_annotations_hold_the_rest():
    labels = {"launch.job": "abc", "launch.store": "f" * 20, "launch.spec": '{"a": 1}', "launch.name": "My job"}
    kube_labels, annotations = kubeplan.split_labels(labels)
    assert kube_labels == {"app.kubernetes.io/managed-by": "launch", "launch.job": "abc", "launch.store": "f" * 20}
    assert annotations == labels


# --- reading the cluster's reports ---------------------------------------------------------------------------------


def pod(phase="Pending", state=None, last=None, conditions=None, name="p", created=0):
    from kubernetes.client import V1ContainerStatus, V1ObjectMeta, V1Pod, V1PodCondition, V1PodStatus

    statuses = None
    if state is not None:
        statuses = [
            V1ContainerStatus(
                name="job", image="i", image_id="", ready=False, restart_count=0, state=state, last_state=last
            )
        ]
    return V1Pod(
        metadata=V1ObjectMeta(
            name=name, labels={"launch.job": "abc"}, creation_timestamp=datetime.fromtimestamp(created, UTC)
        ),
        status=V1PodStatus(
            phase=phase,
            container_statuses=statuses,
            conditions=[V1PodCondition(**c) for c in conditions] if conditions else None,
        ),
    )


def states():
    from kubernetes.client import (
        V1ContainerState,
        V1ContainerStateRunning,
        V1ContainerStateTerminated,
        V1ContainerStateWaiting,
    )

    return {
        "running": V1ContainerState(running=V1ContainerStateRunning()),
        "exited3": V1ContainerState(terminated=V1ContainerStateTerminated(exit_code=3, reason="Error")),
        "cannot": V1ContainerState(
            terminated=V1ContainerStateTerminated(exit_code=128, reason="StartError", message="exec: no such file")
        ),
        "pull": V1ContainerState(waiting=V1ContainerStateWaiting(reason="ErrImagePull", message="not found")),
        "creating": V1ContainerState(waiting=V1ContainerStateWaiting(reason="ContainerCreating")),
    }


def test_a_pod_counts_as_started_only_once_its_command_runs_or_ran():
    s = states()
    assert kube.pod_verdict(pod()) is None
    assert kube.pod_verdict(pod(state=s["creating"])) is None
    assert kube.pod_verdict(pod("Running", s["running"])) == "started"
    assert kube.pod_verdict(pod("Failed", s["exited3"])) == "started"
    assert kube.pod_verdict(pod("Pending", s["creating"], last=s["exited3"])) == "started"  # restarting
    assert kube.pod_verdict(pod("Pending", s["pull"])) == "ErrImagePull: not found"
    assert kube.pod_verdict(pod("Failed", s["cannot"])) == "StartError: exec: no such file"
    assert kube.pod_exit_code(pod("Failed", s["exited3"])) == 3
    assert kube.pod_exit_code(pod("Running", s["running"])) is None


def test_an_unschedulable_pod_says_why():
    condition = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/1 nodes: gpu"}
    assert kube.unschedulable(pod(conditions=[condition])) == "0/1 nodes: gpu"
    assert kube.unschedulable(pod()) is None


def test_a_jobs_status_from_its_conditions_pods_and_annotations():
    from kubernetes.client import (
        V1Container,
        V1Job,
        V1JobCondition,
        V1JobSpec,
        V1JobStatus,
        V1ObjectMeta,
        V1PodSpec,
        V1PodTemplateSpec,
    )

    def job(conditions=(), annotations=None):
        return V1Job(
            metadata=V1ObjectMeta(
                name="launch-abc",
                labels={"launch.job": "abc"},
                annotations={"launch.secrets": '{"token": 2}', **(annotations or {})},
                creation_timestamp=datetime.fromtimestamp(100, UTC),
            ),
            spec=V1JobSpec(
                template=V1PodTemplateSpec(spec=V1PodSpec(containers=[V1Container(name="job", image="app:1")]))
            ),
            status=V1JobStatus(
                conditions=[V1JobCondition(type=t, status="True", reason=r) for t, r in conditions] or None
            ),
        )

    s = states()
    target = kube.Target("ctx", "ns")
    found = kube.job_from(job(), {"abc": [pod("Running", s["running"])]}, target)
    assert (found.status, found.exit_code, found.secrets, found.image) == ("running", None, {"token": 2}, "app:1")
    assert found.running and found.ref == "launch-abc" and found.created == 100
    assert found.labels[kube.WHERE_NAMESPACE] == "ns" and found.labels[kube.WHERE_CONTEXT] == "ctx"
    assert kube.job_from(job(), {}, target).status == "pending"
    done = kube.job_from(job([("Complete", None)]), {"abc": [pod("Succeeded", s["exited3"])]}, target)
    assert (done.status, done.exit_code) == ("exited", 3)
    failed = kube.job_from(job([("Failed", "BackoffLimitExceeded")]), {"abc": [pod("Failed", s["exited3"])]}, target)
    assert (failed.status, failed.exit_code, failed.running) == ("exited", 3, False)
    stopped = kube.job_from(job([("Failed", "DeadlineExceeded")], {"launch.stopped": "1"}), {}, target)
    assert (stopped.status, stopped.running) == ("stopped", False)
    expired = kube.job_from(job([("Failed", "DeadlineExceeded")]), {}, target)
    assert (expired.status, expired.exit_code) == ("failed", None)


def test_the_remembered_namespaces_are_names_only_and_private(launch_home):
    assert kube.known_targets() == [] and not kube.in_use()
    kube.remember(kube.Target("ctx", "ns1"))
    kube.remember(kube.Target("ctx", "ns1"))
    kube.remember(kube.Target("", "ns2"))
    assert kube.known_targets() == [kube.Target("ctx", "ns1"), kube.Target("", "ns2")]
    path = launch_home / "kubernetes.json"
    assert path.stat().st_mode & 0o777 == 0o600 and kube.in_use()


def test_a_named_job_keeps_its_name_on_the_cluster():
    plan = plan_of("image: app\nname: train-1\n")
    job = kubeplan.job_manifest(plan, "abc", "ns", labels={}, annotations={}, options=RunOptions())
    assert job["metadata"]["name"] == "train-1"
    plan = replace(plan, spec=replace(plan.spec, name=None))
    job = kubeplan.job_manifest(plan, "abc", "ns", labels={}, annotations={}, options=RunOptions())
    assert job["metadata"]["name"] == "launch-abc"


def test_the_kubelets_closing_error_goes_to_stderr_not_into_the_jobs_output():
    end = b'rpc error: code = NotFound desc = an error occurred when try to find container "abc": not found'
    pairs = list(kube.node_errors_apart([b"up\nhalf", b" line\nrpc err", end[7:]]))
    assert b"".join(o for o, _ in pairs if o) == b"up\nhalf line\n"
    (warning,) = [e for _, e in pairs if e]
    assert warning == b"launch: warning: the node ended the job's log: " + end + b"\n"
    # a job's own line that starts the same way, and a prompt with no newline, pass as output
    assert list(kube.node_errors_apart([b"rpc error: code = 5 is mine\n", b"prompt> "])) == [
        (b"rpc error: code = 5 is mine\n", None),
        (b"prompt> ", None),
    ]
    assert list(kube.node_errors_apart([b"rpc"])) == [(b"rpc", None)]


@pytest.mark.parametrize("text", ["soon", "0", "-5", "1e9", "nan"])
def test_a_bad_start_timeout_is_refused_in_one_line(monkeypatch, text):
    from launcher.errors import UsageError

    monkeypatch.setenv("LAUNCH_KUBE_START_TIMEOUT", text)
    with pytest.raises(UsageError, match=r"LAUNCH_KUBE_START_TIMEOUT: .* is not a number of seconds"):
        kube.start_timeout()
    monkeypatch.setenv("LAUNCH_KUBE_START_TIMEOUT", "2.5")
    assert kube.start_timeout() == 2.5

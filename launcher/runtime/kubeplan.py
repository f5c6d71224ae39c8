"""Pure: a Plan as the two Kubernetes objects that run it, a `Secret` and a `batch/v1` `Job` (plain dicts in the
API's own shape, the way docker-py's `_create_container_args` turns options into API arguments). No I/O, no
client import: tested directly (tests/test_kubernetes_pure.py).

- The `Secret` (`launch-<job id>`, immutable, type Opaque) holds only the values the job references, one data key
  per store secret (a store name is a valid Secret key: letters, digits, '_', '.', '-'). It is the only object
  that ever holds a value; the backend makes the Job its owner once the Job exists.
- Env secrets are `secretKeyRef`s. A secret spliced into text (`"postgres://app:{{ RUNPOD_SECRET_db }}@db"`) is
  a hidden variable `LAUNCH_SECRET_<n>` from a `secretKeyRef`, listed first, and the variable is the text with
  `$(LAUNCH_SECRET_<n>)` in its place: the API server's own dependent-variable expansion joins them in the
  kubelet, so the Job and the Pod hold the template text, never the value.
- Kubernetes expands `$(VAR)` in every env value, command and argument; Docker expands nothing. So every literal
  `$` is written `$$` (the API's escape), and a job sees the same text on both backends.
- Secret files: one `secret` volume with `items` (key -> a file name, its mode: 0400 or the template's), each file
  mounted read-only at its exact path with `subPath`, so a folder of the image is never hidden. With a numeric
  `user:` the pod runs as that uid (`runAsUser`, `runAsGroup`) and `fsGroup` gives its group read access (the
  kubelet makes a read-only volume's files group-readable for the fsGroup).
- What has no meaning on a cluster is refused before anything is created (`problems`): host ports, networks,
  host folders, `-i`, `--plain-env`, a user given by name, restart `always`, placement other than node labels.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from launcher.spec import SecretRef

if TYPE_CHECKING:  # pragma: no cover
    from launcher.plan import Plan
    from launcher.runtime.common import RunOptions
    from launcher.spec import Spec

MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_SELECT = "launch.job"  # on the Job, its pod template and the Secret: `-l launch.job=ID` finds all three
SECRET_VOLUME = "launch-secrets"
HIDDEN_PREFIX = "LAUNCH_SECRET_"
GPU_RESOURCE = "nvidia.com/gpu"
UNLIMITED_RETRIES = 2**31 - 1  # `on-failure` without a count: Docker retries for ever; backoffLimit is an int32
NAME_MAX = 52  # a Job's name is also its pods' `job-name` label (63) less the 11 characters of a pod suffix
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_NUMERIC_USER = re.compile(r"(\d+)(?::(\d+))?")
_NODE_LABEL = re.compile(r"node\.labels\.([^=!\s]+)\s*==\s*(\S+)")
_NODE_HOSTNAME = re.compile(r"node\.hostname\s*==\s*(\S+)")


def job_name(job_id: str, name: str | None) -> str:
    """The Job's `metadata.name`: the job's --name (checked by `problems`), else `launch-<id>`."""
    return name or f"launch-{job_id}"


def secret_name(job_id: str) -> str:
    return f"launch-{job_id}"


def escape(text: str) -> str:
    """Literal text the API server's `$(VAR)` expansion leaves as it is."""
    return text.replace("$", "$$")


def problems(spec: Spec, options: RunOptions) -> list[str]:
    """Why this job cannot run on Kubernetes (each a line naming the key and what to do), or []."""
    found = []
    if spec.ports:
        found.append(
            "ports: a cluster has no host ports for a job; reach a pod through a Service (`kubectl expose`), or run "
            "it on the docker backend"
        )
    if spec.network is not None:
        found.append(f"network {spec.network!r}: has no meaning on kubernetes (the cluster's network is the pod's)")
    for bind in spec.binds:
        where = f" ({bind.origin})" if bind.origin else ""
        found.append(
            f"volume {bind.source}:{bind.target}{where}: a host folder or Docker volume has no meaning on a cluster "
            "(its nodes are other machines); give the job its files as secrets (secret:KEY:/path)"
        )
    if options.interactive:
        found.append("-i/--interactive: a cluster's job has no terminal of ours to read; leave -i out")
    if options.plain_env:
        found.append(
            "--plain-env: has no meaning on kubernetes, where env secrets are secretKeyRef references already; "
            "leave it out"
        )
    if spec.user is not None and not _NUMERIC_USER.fullmatch(spec.user):
        found.append(
            f"user {spec.user!r}: the kubernetes backend needs a numeric uid or uid:gid (a cluster does not read "
            "the image's /etc/passwd), e.g. user: '1000:1000'"
        )
    if spec.restart.policy in ("always", "unless-stopped"):
        found.append(
            f"restart {spec.restart.policy!r}: a kubernetes Job runs to completion; use on-failure[:N], or a "
            "Deployment outside launch for a service"
        )
    if spec.resources.gpus == -1:
        found.append("resources.gpus 'all': a cluster needs a count of GPUs (nvidia.com/gpu), e.g. gpus: 1")
    for constraint in spec.constraints:
        if not (_NODE_LABEL.fullmatch(constraint.strip()) or _NODE_HOSTNAME.fullmatch(constraint.strip())):
            found.append(
                f"constraint {constraint!r}: on kubernetes only node.labels.KEY==VALUE and node.hostname==NAME "
                "(node selectors) have a meaning"
            )
            continue
        key, value = _selector(constraint)
        if not (_label_key_ok(key) and _LABEL_VALUE.fullmatch(value) and len(value) <= 63):
            found.append(f"constraint {constraint!r}: {key}={value} is not a valid node label selector")
    if spec.name is not None and not (_DNS_LABEL.fullmatch(spec.name) and len(spec.name) <= NAME_MAX):
        found.append(
            f"name {spec.name!r}: a kubernetes Job's name is lowercase letters, digits and '-', starting and "
            f"ending with a letter or digit, at most {NAME_MAX} characters"
        )
    return found


def _label_key_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and not (len(prefix) <= 253 and all(_DNS_LABEL.fullmatch(p) for p in prefix.split("."))):
        return False
    return bool(_LABEL_NAME.fullmatch(name)) and len(name) <= 63


def _selector(constraint: str) -> tuple[str, str]:
    text = constraint.strip()
    match = _NODE_LABEL.fullmatch(text)
    if match:
        return match[1], match[2]
    host = _NODE_HOSTNAME.fullmatch(text)
    assert host is not None
    return "kubernetes.io/hostname", host[1]


def quantity_cpu(cpus: float) -> str:
    """0.5 -> '500m', 2 -> '2' (millicores, rounded up: never less than asked)."""
    milli = math.ceil(cpus * 1000 - 1e-9)
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def env_list(spec: Spec, secret: str) -> list[dict[str, Any]]:
    """The container's `env`: hidden secret variables first (dependent variables may only refer to earlier ones),
    then every variable in the template's order; no value of a secret anywhere."""
    hidden: dict[str, str] = {}  # store key -> hidden variable name
    variables = []
    for variable in spec.env:
        parts = variable.parts
        if len(parts) == 1 and isinstance(parts[0], SecretRef):
            variables.append({"name": variable.name, "valueFrom": _key_ref(secret, parts[0].key)})
            continue
        text = []
        for part in parts:
            if isinstance(part, SecretRef):
                if part.key not in hidden:
                    hidden[part.key] = f"{HIDDEN_PREFIX}{len(hidden)}"
                text.append(f"$({hidden[part.key]})")
            else:
                text.append(escape(part))
        variables.append({"name": variable.name, "value": "".join(text)})
    refs = [{"name": name, "valueFrom": _key_ref(secret, key)} for key, name in hidden.items()]
    return refs + variables


def _key_ref(secret: str, key: str) -> dict[str, Any]:
    return {"secretKeyRef": {"name": secret, "key": key}}


def secret_manifest(plan: Plan, job_id: str, namespace: str, labels: Mapping[str, str]) -> dict[str, Any]:
    """The one object that holds values: each store secret the job references, once, base64 as the API wants."""
    data: dict[str, bytes] = dict(plan.env_values)
    for file, content in plan.files:
        data[file.key] = content
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": secret_name(job_id), "namespace": namespace, "labels": dict(labels)},
        "type": "Opaque",
        "immutable": True,
        "data": {key: base64.b64encode(value).decode("ascii") for key, value in sorted(data.items())},
    }


def job_manifest(
    plan: Plan,
    job_id: str,
    namespace: str,
    *,
    labels: Mapping[str, str],
    annotations: Mapping[str, str],
    options: RunOptions,
) -> dict[str, Any]:
    """The Job: the pod template with references only. `labels` go on the Job and its pods (selectors: ids and
    hashes only), `annotations` carry what a label value cannot hold (names, the redacted spec as JSON)."""
    spec = plan.spec
    secret = secret_name(job_id)
    # pulled when the node lacks it, as the docker backend does (Kubernetes' default for :latest is Always)
    container: dict[str, Any] = {"name": "job", "image": spec.image, "imagePullPolicy": "IfNotPresent"}
    if spec.entrypoint is not None:
        container["command"] = [escape(a) for a in spec.entrypoint]
    if spec.command is not None:
        container["args"] = [escape(a) for a in spec.command]
    elif spec.entrypoint is not None:
        container["args"] = []  # Docker's rule: a new entrypoint drops the image's CMD
    env = env_list(spec, secret)
    if env:
        container["env"] = env
    if spec.workdir:
        container["workingDir"] = spec.workdir
    resources = _resources(spec)
    if resources:
        container["resources"] = resources
    security: dict[str, Any] = {"allowPrivilegeEscalation": False}
    if spec.read_only:
        security["readOnlyRootFilesystem"] = True
    container["securityContext"] = security
    pod: dict[str, Any] = {
        "restartPolicy": "OnFailure" if spec.restart.policy == "on-failure" else "Never",
        "automountServiceAccountToken": False,  # a job gets no credentials for the cluster unless it asks
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": options.stop_grace,  # SIGTERM, then SIGKILL: `docker stop`'s 10 s
        "containers": [container],
    }
    if spec.user is not None:
        match = _NUMERIC_USER.fullmatch(spec.user)
        assert match is not None  # problems() refused the rest
        uid = int(match[1])
        gid = int(match[2]) if match[2] is not None else uid
        pod["securityContext"] = {"runAsUser": uid, "runAsGroup": gid, "fsGroup": gid}
    if plan.files:
        pod["volumes"] = [
            {
                "name": SECRET_VOLUME,
                "secret": {
                    "secretName": secret,
                    "defaultMode": 0o400,
                    "items": [{"key": f.key, "path": _item(i), "mode": f.mode} for i, (f, _) in enumerate(plan.files)],
                },
            }
        ]
        container["volumeMounts"] = [
            {"name": SECRET_VOLUME, "mountPath": f.target, "subPath": _item(i), "readOnly": True}
            for i, (f, _) in enumerate(plan.files)
        ]
    selectors = dict(_selector(c) for c in spec.constraints)
    if selectors:
        pod["nodeSelector"] = selectors
    job_spec: dict[str, Any] = {
        "backoffLimit": _retries(spec),
        "template": {"metadata": {"labels": dict(labels), "annotations": dict(annotations)}, "spec": pod},
    }
    if options.life_span:
        job_spec["activeDeadlineSeconds"] = int(options.life_span)
    if options.remove:
        # the cluster's TTL controller removes a finished --rm job; our own cleanup (foreground, sweep) too.
        # A foreground job keeps a minute, so its exit code is read before the controller takes it.
        job_spec["ttlSecondsAfterFinished"] = 0 if options.detach else 60
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(job_id, spec.name),
            "namespace": namespace,
            "labels": dict(labels),
            "annotations": dict(annotations),
        },
        "spec": job_spec,
    }


def _item(index: int) -> str:
    return f"file-{index}"  # the file's name inside the volume; the mount gives it its real path


def _retries(spec: Spec) -> int:
    if spec.restart.policy != "on-failure":
        return 0
    return spec.restart.max_retries or UNLIMITED_RETRIES


def _resources(spec: Spec) -> dict[str, Any]:
    limits: dict[str, str] = {}
    resources = spec.resources
    if resources.cpus:
        limits["cpu"] = quantity_cpu(resources.cpus)
    if resources.memory:
        limits["memory"] = str(resources.memory)
    if resources.gpus:
        limits[GPU_RESOURCE] = str(resources.gpus)
    return {"limits": limits} if limits else {}


def split_labels(labels: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Our job labels as (Kubernetes labels, annotations): a label value is at most 63 characters of a narrow
    alphabet, so only ids and hashes are labels (what selectors need); everything, those included, is an
    annotation (what `launch inspect` and `ps` read back)."""
    from launcher import jobs as jobmod

    kube_labels = {MANAGED_BY: "launch"}
    for key in (jobmod.LABEL_JOB, jobmod.LABEL_STORE, jobmod.LABEL_SWEEP):
        value = labels.get(key)
        if value and _LABEL_VALUE.fullmatch(value) and len(value) <= 63:
            kube_labels[key] = value
    return kube_labels, dict(labels)

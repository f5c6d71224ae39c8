"""The Kubernetes runtime (`launch run --backend kubernetes`): the same plan, run as a `batch/v1` Job.

Through the official Python client (`kubernetes`), imported by this module only, and only when a command uses the
backend. What is created (launcher.runtime.kubeplan builds the objects; this module talks to the cluster):

1. a `Secret` `launch-<id>`, immutable, holding only the values the job references;
2. the `Job`, whose pod template holds references only (`secretKeyRef`, a secret volume with `items`);
3. the Secret is made the Job's dependent (an `ownerReference`), so the cluster's garbage collector removes it
   with the Job, whoever deletes the Job (`kubectl delete job`, the TTL controller after `--rm`, `launch rm`).

The usage record is written before either exists (a record that cannot be written creates nothing). Any failure
before the job's command has run deletes what was created: a failed run leaves no object behind. "Started" means
a container of the job's pod is running or has terminated after running, seen on a watch of its pods; a pod that
cannot start (an image that cannot be pulled, a missing key, a pod the Job controller cannot create: a quota, an
admission webhook) is reported in one line, exit 7, and removed. A pod the scheduler cannot place waits, with one
line saying why, for LAUNCH_KUBE_START_TIMEOUT seconds (default 600: a cluster autoscaler may be adding a node).

Where: the kubeconfig kubectl would read (`KUBECONFIG`, else ~/.kube/config; its current context), the context's
namespace, else `default`; `--context`/`--namespace` or the template's `kubernetes:` keys override. Each (context,
namespace) a store has run a job in is remembered in LAUNCH_HOME/kubernetes.json (names only), so `launch ps`,
`logs`, `stop`, `rm` and `inspect` find the jobs there again; they only ever ask those namespaces, never the
whole cluster, and never read a Secret (listing them by label is what the sweep does, in those namespaces only).

`stop` sets the Job's `activeDeadlineSeconds` to the time it has run, so the Job controller ends it the way a
life-span ends it (the pods get SIGTERM, then SIGKILL after 10 s) and the Job stays listed (status "stopped")
until `launch rm`. Logs come from the pod's container (stdout and stderr are one stream on a cluster), masked
by the use case as everywhere.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from launcher import jobs as jobmod
from launcher.errors import Conflict, EngineError, ExitCode, LaunchError, NotFound, UsageError
from launcher.runtime import kubeplan
from launcher.runtime.common import (
    LABEL_LAUNCHER,
    ImageConfig,
    RunHooks,
    RunOptions,
    Terminated,
    install_sigterm,
    plan_labels,
    process_alive,
    pump,
)

if TYPE_CHECKING:  # pragma: no cover
    from launcher.plan import Plan

START_TIMEOUT = 600.0  # seconds a pod may stay unschedulable before the run gives up (LAUNCH_KUBE_START_TIMEOUT)
NO_POD_AFTER = 30.0  # seconds after which a Job with no pod and no event saying why is reported
ORPHAN_AFTER = 120.0  # seconds after which a Secret of a launcher on another machine, with no Job, is removed
LABEL_STOPPED = "launch.stopped"  # annotation set by `launch stop`
WHERE_CONTEXT = "launch.kubernetes.context"  # in a Job's labels as `launch` reports them (not on the cluster)
WHERE_NAMESPACE = "launch.kubernetes.namespace"
_SELECTOR = f"{kubeplan.MANAGED_BY}=launch,{kubeplan.LABEL_SELECT}"
_NEVER_STARTS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
_COULD_NOT_RUN = frozenset({"ContainerCannotRun", "StartError"})


def start_timeout() -> float:
    """LAUNCH_KUBE_START_TIMEOUT in seconds (how long a pod may wait for a node), else START_TIMEOUT."""
    text = os.environ.get("LAUNCH_KUBE_START_TIMEOUT", "").strip()
    if not text:
        return START_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value <= 86400:
        raise UsageError(f"LAUNCH_KUBE_START_TIMEOUT: {text[:20]!r} is not a number of seconds (1 to 86400)")
    return value


def preflight(plan: Plan, options: RunOptions) -> None:
    """Everything a cluster would refuse or misread, before any object exists (all problems in one message)."""
    found = kubeplan.problems(plan.spec, options)
    start_timeout()  # a bad setting is refused before anything exists
    if found:
        raise UsageError(found[0] if len(found) == 1 else "; ".join(found))


# --- where: kubeconfig contexts and namespaces --------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    context: str  # "" for the in-cluster config
    namespace: str


def _config():
    from kubernetes import config

    return config


def kubeconfig_path() -> str:
    """KUBECONFIG (one path or several, ':'-separated, merged as kubectl merges them), else ~/.kube/config; read
    when asked (the client reads it once, at its import)."""
    return os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")


def resolve_target(context: str | None, namespace: str | None) -> Target:
    """The (context, namespace) a job runs in: as kubectl finds them, `context`/`namespace` overriding."""
    config = _config()
    try:
        contexts, active = config.list_kube_config_contexts(config_file=kubeconfig_path())
    except (config.ConfigException, OSError) as exc:
        if context is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            return Target("", namespace or _in_cluster_namespace())
        where = os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise EngineError(f"kubernetes: no usable kubeconfig at {where}: {_one_line(exc)}") from None
    if context is None:
        if not active:
            raise EngineError("kubernetes: the kubeconfig has no current context: give --context NAME")
        chosen = active
    else:
        chosen = next((c for c in contexts if c.get("name") == context), None)
        if chosen is None:
            names = ", ".join(sorted(str(c.get("name")) for c in contexts)) or "none"
            raise UsageError(f"--context {context!r}: no such context in the kubeconfig (it has: {names})")
    return Target(str(chosen["name"]), namespace or (chosen.get("context") or {}).get("namespace") or "default")


def _in_cluster_namespace() -> str:
    try:
        with open("/var/run/secrets/kubernetes.io/serviceaccount/namespace", encoding="utf-8") as f:
            return f.read().strip() or "default"
    except OSError:
        return "default"


def _targets_file():
    from launcher import paths

    return paths.home() / "kubernetes.json"


def known_targets() -> list[Target]:
    """The (context, namespace) pairs this store has run jobs in."""
    try:
        data = json.loads(_targets_file().read_text(encoding="utf-8"))
        return [Target(str(c), str(n)) for c, n in data.get("targets", [])]
    except (OSError, ValueError, TypeError, AttributeError):
        return []


def in_use() -> bool:
    """Whether `launch ps` should ask a cluster at all: this store has run a job there, or the user asks for it."""
    return os.environ.get("LAUNCH_BACKEND") == "kubernetes" or _targets_file().exists()


def remember(target: Target) -> None:
    """Add `target` to the store's list (0600, replaced atomically; names only)."""
    targets = known_targets()
    if target in targets:
        return
    targets.append(target)
    path = _targets_file()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"targets": [[t.context, t.namespace] for t in targets]}, f)
    os.replace(tmp, path)


# --- errors -------------------------------------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    from launcher import redact

    return redact.scrub(" ".join(str(exc).split()))[:500]


def api_message(exc) -> str:
    """The API server's own message of an ApiException (its Status object), on one line."""
    from launcher import redact

    message = ""
    try:
        message = json.loads(exc.body or "{}").get("message") or ""
    except (ValueError, TypeError, AttributeError):
        pass
    text = message or str(getattr(exc, "reason", "") or exc.status)
    return redact.scrub(" ".join(text.split()))[:500]


@contextmanager
def kube_errors(what: str, server: str | None = None):
    """What the client raises, as one line of ours: 403 names the RBAC refusal, 404 says the object is gone, 409
    is a Conflict (exit 4), an unreachable cluster says where; LaunchErrors and interrupts pass through."""
    try:
        yield
    except (LaunchError, KeyboardInterrupt, Terminated):
        raise
    except Exception as exc:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        if isinstance(exc, ApiException):
            if exc.status == 403:
                raise EngineError(f"{what}: the cluster refused it (RBAC): {api_message(exc)}") from None
            if exc.status == 404:
                raise NotFound(f"{what}: it no longer exists on the cluster ({api_message(exc)})") from None
            if exc.status == 409:
                raise Conflict(f"{what}: {api_message(exc)}") from None
            if exc.status == 401:
                raise EngineError(f"{what}: the cluster does not accept the kubeconfig's credentials") from None
            raise EngineError(f"{what}: the cluster refused: {api_message(exc)}") from None
        if isinstance(exc, HTTPError | OSError):
            at = f" at {server}" if server else ""
            raise EngineError(f"{what}: cannot reach the cluster{at} ({type(exc).__name__})") from None
        from kubernetes.config import ConfigException

        if isinstance(exc, ConfigException):
            raise EngineError(f"{what}: the kubeconfig cannot be used: {_one_line(exc)}") from None
        raise


# --- the backend --------------------------------------------------------------------------------------------------


class KubernetesBackend:
    name = "kubernetes"

    def __init__(self, client=None):
        del client  # the Docker client open_backend may hand a backend: not ours
        self._apis: dict[str, tuple[Any, Any]] = {}
        self.warnings: list[str] = []  # targets that could not be listed (shown by `launch ps`, never fatal)
        self._targets: list[Target] | None = None

    def apis(self, context: str) -> tuple[Any, Any]:
        """(CoreV1Api, BatchV1Api) for a context ("" in-cluster), made once per command."""
        if context not in self._apis:
            from kubernetes import client

            config = _config()
            with kube_errors(f"kubernetes context {context!r}" if context else "kubernetes"):
                if context:
                    api_client = config.new_client_from_config(config_file=kubeconfig_path(), context=context)
                else:
                    config.load_incluster_config()
                    api_client = client.ApiClient()
            self._apis[context] = (client.CoreV1Api(api_client), client.BatchV1Api(api_client))
        return self._apis[context]

    def image_config(self, image: str, *, pull: bool = True, progress: bool = False) -> ImageConfig:
        """The cluster's nodes pull images themselves: nothing is known of one before its pod runs."""
        return ImageConfig((), (), "", "", "")

    # --- running ------------------------------------------------------------------------------------------------

    def run(self, plan: Plan, options: RunOptions, masker=None, hooks: RunHooks | None = None) -> int:
        hooks = hooks or RunHooks()
        preflight(plan, options)
        if not plan.spec.image:
            raise UsageError("no image: give --image or `image:` in the template")
        target = resolve_target(plan.spec.context, plan.spec.namespace)
        core, batch = self.apis(target.context)
        server = core.api_client.configuration.host
        job_id = jobmod.new_id()
        labels, _deadline = plan_labels(plan, job_id, options, self.name)
        kube_labels, annotations = kubeplan.split_labels(labels)
        kube_labels[kubeplan.LABEL_SELECT] = job_id
        ns = target.namespace
        secret = kubeplan.secret_manifest(plan, job_id, ns, kube_labels) if plan.env_values or plan.files else None
        if secret is not None:
            secret["metadata"]["annotations"] = {LABEL_LAUNCHER: labels[LABEL_LAUNCHER]}
        manifest = kubeplan.job_manifest(plan, job_id, ns, labels=kube_labels, annotations=annotations, options=options)
        name = manifest["metadata"]["name"]
        remember(target)
        hooks.before_start(job_id)  # before any object exists: a record that cannot be written creates nothing
        created: dict[str, bool] = {"secret": False, "job": False}
        started = False
        restore = install_sigterm()
        try:
            if secret is not None:
                with kube_errors(f"cannot create the Secret of job {job_id} in namespace {ns!r}", server):
                    _done(core.create_namespaced_secret(ns, secret, _preload_content=False))
                created["secret"] = True
            with kube_errors(f"cannot create Job {name!r} in namespace {ns!r}", server):
                made = batch.create_namespaced_job(ns, manifest)
            created["job"] = True
            if secret is not None:
                owner = {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": name,
                    "uid": made.metadata.uid,
                    "blockOwnerDeletion": False,
                }
                with kube_errors(f"cannot make Job {name!r} the owner of its Secret"):
                    body = {"metadata": {"ownerReferences": [owner]}}
                    _done(core.patch_namespaced_secret(secret["metadata"]["name"], ns, body, _preload_content=False))
            self._wait_started(core, batch, ns, job_id, name, hooks)
            started = True
            hooks.started(job_id)
            if options.detach:
                return 0
            with kube_errors(f"cannot follow job {job_id}"):
                return self._foreground(core, batch, ns, job_id, name, options, masker)
        except (KeyboardInterrupt, Terminated) as exc:
            code = ExitCode.INTERRUPTED if isinstance(exc, KeyboardInterrupt) else ExitCode.TERMINATED
            if created["job"] and started and not options.remove and not options.detach:
                self._quietly(lambda: self._stop(batch, ns, name))
            else:
                self._delete_quietly(core, batch, ns, job_id, name, created)
            raise LaunchError("interrupted: the job was stopped" if started else "interrupted", code) from None
        except BaseException:
            if not started or not options.detach:
                self._delete_quietly(core, batch, ns, job_id, name, created)
            raise
        finally:
            restore()

    def _wait_started(self, core, batch, ns: str, job_id: str, name: str, hooks: RunHooks) -> None:
        """Return once a container of the job's pod runs or has run; EngineError when it cannot start."""
        limit = start_timeout()
        begun = time.monotonic()
        said: set[str] = set()

        def judge(pod, kind: str):
            verdict = pod_verdict(pod)
            if verdict == "started":
                return True
            if verdict is not None:
                raise EngineError(f"job {job_id} did not start: {verdict}")
            if kind == "DELETED":
                raise EngineError(f"job {job_id} did not start: its pod {pod.metadata.name} was deleted")
            waiting = unschedulable(pod)
            if waiting and waiting not in said:
                said.add(waiting)
                _tell(hooks, f"job {job_id} waits for a node: {waiting}")
            if waiting and time.monotonic() - begun > limit:
                raise EngineError(f"job {job_id} did not start within {int(limit)} s: no node can run it: {waiting}")
            return None

        def between() -> bool | None:
            failure = self._job_failure(core, batch, ns, name)
            if failure:
                raise EngineError(f"job {job_id} did not start: {failure}")
            pods = self._pods(core, ns, job_id)
            for pod in pods:  # a pod that stays unschedulable sends no more events: look again
                if judge(pod, "MODIFIED"):
                    return True
            if time.monotonic() - begun > max(limit, NO_POD_AFTER) and not pods:
                raise EngineError(f"job {job_id} did not start: the Job controller made no pod in {int(limit)} s")
            return None

        with kube_errors(f"cannot follow job {job_id}"):
            _follow(core.list_namespaced_pod, ns, f"{kubeplan.LABEL_SELECT}={job_id}", judge, between)

    def _job_failure(self, core, batch, ns: str, name: str) -> str | None:
        """Why the Job controller made no pod (a FailedCreate event: a quota, an admission refusal), or why the
        Job failed before its pod ran; None while it may still start."""
        events = core.list_namespaced_event(ns, field_selector=f"involvedObject.kind=Job,involvedObject.name={name}")
        for event in events.items:
            if event.reason == "FailedCreate":
                return f"the Job controller cannot create its pod: {' '.join(str(event.message).split())[:400]}"
        job = batch.read_namespaced_job(name, ns)
        for condition in (job.status.conditions or []) if job.status else []:
            if condition.type == "Failed" and condition.status == "True":
                return f"{condition.reason}: {' '.join(str(condition.message or '').split())}"
        return None

    def _pods(self, core, ns: str, job_id: str) -> list:
        return core.list_namespaced_pod(ns, label_selector=f"{kubeplan.LABEL_SELECT}={job_id}").items

    def _foreground(self, core, batch, ns: str, job_id: str, name: str, options: RunOptions, masker) -> int:
        """Stream the job's output (masked) until its Job has finished; its exit code."""
        shown: set[str] = set()
        while True:
            pods = self._pods(core, ns, job_id)
            pod = max(pods, key=lambda p: p.metadata.creation_timestamp, default=None)
            if pod is not None and (pod.metadata.uid, _restarts(pod)) not in shown:
                shown.add((pod.metadata.uid, _restarts(pod)))
                self._stream(core, ns, pod.metadata.name, job_id, masker)
            finished = _finished(batch.read_namespaced_job(name, ns))
            if finished is not None:
                break
            time.sleep(0.5)
        code = self._exit_code(core, batch, ns, job_id, name)
        if options.remove:
            self._delete_quietly(core, batch, ns, job_id, name, {"secret": True, "job": True})
        return code

    def _stream(self, core, ns: str, pod: str, job_id: str, masker) -> None:
        try:
            response = core.read_namespaced_pod_log(pod, ns, follow=True, _preload_content=False)
        except Exception as exc:
            from kubernetes.client.exceptions import ApiException

            text = api_message(exc) if isinstance(exc, ApiException) else type(exc).__name__
            sys.stderr.write(f"launch: warning: cannot read the output of job {job_id}: {text}\n")
            return
        try:
            pump(node_errors_apart(response.stream(65536, decode_content=False)), masker)
        finally:
            _drop(response)

    def _exit_code(self, core, batch, ns: str, job_id: str, name: str) -> int:
        """The job's exit code: its container's, else 143 for a job stopped or past its life-span (its pod is
        deleted by the Job controller), else 1."""
        for pod in sorted(self._pods(core, ns, job_id), key=lambda p: p.metadata.creation_timestamp, reverse=True):
            code = pod_exit_code(pod)
            if code is not None:
                return code
        job = batch.read_namespaced_job(name, ns)
        if _finished(job) == "DeadlineExceeded":
            return int(ExitCode.TERMINATED)
        return 0 if _finished(job) == "Complete" else 1

    def _stop(self, batch, ns: str, name: str) -> None:
        job = batch.read_namespaced_job(name, ns)
        started = job.status.start_time if job.status else None
        ran = time.time() - started.timestamp() if started else 0
        patch = {
            "metadata": {"annotations": {LABEL_STOPPED: "1"}},
            "spec": {"activeDeadlineSeconds": max(1, int(ran))},
        }
        batch.patch_namespaced_job(name, ns, patch)

    def _delete_quietly(self, core, batch, ns: str, job_id: str, name: str, created: dict[str, bool]) -> None:
        """Delete what a run created (the Job's pods go with it, through the garbage collector); what cannot be
        deleted now is left to the sweep (an ownerless Secret) or the TTL controller."""
        if created.get("job"):
            self._quietly(lambda: batch.delete_namespaced_job(name, ns, propagation_policy="Background"))
        if created.get("secret"):
            self._quietly(lambda: core.delete_namespaced_secret(kubeplan.secret_name(job_id), ns))

    @staticmethod
    def _quietly(action: Callable[[], Any]) -> None:
        try:
            action()
        except Exception:
            pass

    # --- jobs ---------------------------------------------------------------------------------------------------

    def targets(self) -> list[Target]:
        """The namespaces to list: those this store has run jobs in, and with LAUNCH_BACKEND=kubernetes the
        kubeconfig's current one. Read once per backend object (one per command): ps lists, then sweeps."""
        if self._targets is not None:
            return self._targets
        targets = known_targets()
        if os.environ.get("LAUNCH_BACKEND") == "kubernetes":
            try:
                default = resolve_target(None, None)
            except LaunchError:
                default = None
            if default is not None and default not in targets:
                targets.append(default)
        self._targets = targets
        return targets

    def jobs(self, all: bool = True) -> list[jobmod.Job]:
        result: list[jobmod.Job] = []
        self.warnings = []
        for target in self.targets():
            try:
                result.extend(self._jobs_in(target))
            except LaunchError as exc:
                self.warnings.append(f"kubernetes {target.context or 'in-cluster'}/{target.namespace}: {exc.message}")
        result.sort(key=lambda j: j.created, reverse=True)
        return result

    def _jobs_in(self, target: Target) -> list[jobmod.Job]:
        core, batch = self.apis(target.context)
        what = f"cannot list the jobs in namespace {target.namespace!r}"
        with kube_errors(what, core.api_client.configuration.host):
            jobs = batch.list_namespaced_job(target.namespace, label_selector=_SELECTOR).items
            pods = core.list_namespaced_pod(target.namespace, label_selector=_SELECTOR).items if jobs else []
        by_job: dict[str, list] = {}
        for pod in pods:
            by_job.setdefault((pod.metadata.labels or {}).get(kubeplan.LABEL_SELECT, ""), []).append(pod)
        return [job_from(j, by_job, target) for j in jobs]

    def find(self, ref: str) -> jobmod.Job:
        return jobmod.match(self.jobs(all=True), ref)

    def _where(self, job: jobmod.Job) -> tuple[Any, Any, str]:
        core, batch = self.apis(job.labels.get(WHERE_CONTEXT, ""))
        return core, batch, job.labels.get(WHERE_NAMESPACE, "default")

    def logs(
        self, job: jobmod.Job, follow: bool = False, tail: int | None = None
    ) -> Iterator[tuple[bytes | None, bytes | None]]:
        core, _batch, ns = self._where(job)
        with kube_errors(f"cannot read the logs of job {job.id}"):
            pods = self._pods(core, ns, job.id)
            if not pods:
                raise NotFound(f"job {job.id} has no pod (it has not started, or the cluster removed it): no logs")
            pod = max(pods, key=lambda p: p.metadata.creation_timestamp)
            kwargs: dict[str, Any] = {"follow": follow, "_preload_content": False}
            if tail is not None:
                kwargs["tail_lines"] = tail
            response = core.read_namespaced_pod_log(pod.metadata.name, ns, **kwargs)
        return KubeLogStream(response)

    def stop(self, job: jobmod.Job, grace: int = 10) -> None:
        _core, batch, ns = self._where(job)
        if not job.running:
            return
        with kube_errors(f"cannot stop job {job.id}"):
            self._stop(batch, ns, job.ref)

    def remove(self, job: jobmod.Job, force: bool = False) -> None:
        if job.running and not force:
            raise Conflict(f"job {job.id} is {job.status}; stop it first or pass --force")
        core, batch, ns = self._where(job)
        from kubernetes.client.exceptions import ApiException

        with kube_errors(f"cannot remove job {job.id}"):
            try:
                batch.delete_namespaced_job(job.ref, ns, propagation_policy="Background")
            except ApiException as exc:
                if exc.status != 404:
                    raise
            try:
                core.delete_namespaced_secret(kubeplan.secret_name(job.id), ns)
            except ApiException as exc:
                if exc.status != 404:
                    raise

    def inspect(self, job: jobmod.Job) -> dict[str, Any]:
        core, batch, ns = self._where(job)
        with kube_errors(f"cannot inspect job {job.id}"):
            data = batch.read_namespaced_job(job.ref, ns)
            pods = self._pods(core, ns, job.id)
        status = data.status
        spec = json.loads(job.labels.get(jobmod.LABEL_SPEC, "{}") or "{}")
        return {
            **job.to_dict(),
            "kubernetes": {
                "context": job.labels.get(WHERE_CONTEXT),
                "namespace": ns,
                "job": job.ref,
                "secret": kubeplan.secret_name(job.id) if spec.get("secrets") else None,
                "pods": sorted(p.metadata.name for p in pods),
            },
            "started_at": status.start_time.timestamp() if status and status.start_time else None,
            "finished_at": status.completion_time.timestamp() if status and status.completion_time else None,
            "restarts": sum(_restarts(p) for p in pods),
            "deadline": job.deadline,
            "spec": spec,
        }

    def sweep(self, jobs: list[jobmod.Job] | None = None) -> bool:
        """Our own cleanup, where the cluster's is not there or has not run yet: ended `--rm` jobs are deleted
        (the TTL controller does so too, where it runs), and a Secret whose Job never came (its launcher was
        killed between the two creates) is deleted once that launcher is gone."""
        changed = False
        listing = self.jobs(all=True) if jobs is None else jobs
        for job in listing:
            if not job.running and job.labels.get(jobmod.LABEL_RM) == "1":
                try:
                    self.remove(job, force=True)
                    changed = True
                except LaunchError:
                    pass
        for target in self.targets():
            try:
                changed = self._sweep_secrets(target, {j.id for j in listing}) or changed
            except Exception:
                pass  # housekeeping: the next command tries again
        return changed

    def _sweep_secrets(self, target: Target, job_ids: set[str]) -> bool:
        core, _batch = self.apis(target.context)
        response = core.list_namespaced_secret(target.namespace, label_selector=_SELECTOR, _preload_content=False)
        try:
            items = json.loads(response.data).get("items", [])  # metadata only is read; no value is decoded
        finally:
            response.release_conn()
        changed = False
        now = time.time()
        for item in items:
            meta = item.get("metadata") or {}
            job_id = (meta.get("labels") or {}).get(kubeplan.LABEL_SELECT, "")
            if job_id in job_ids or meta.get("ownerReferences"):
                continue
            alive = process_alive((meta.get("annotations") or {}).get(LABEL_LAUNCHER, ""))
            age = now - _epoch(meta.get("creationTimestamp"))
            if alive is False or (alive is None and age > ORPHAN_AFTER):
                try:
                    core.delete_namespaced_secret(meta["name"], target.namespace)
                    changed = True
                except Exception:
                    pass
        return changed


class KubeLogStream:
    """A pod's log as (stdout, None) chunks; `close` ends a followed stream from another thread."""

    def __init__(self, response):
        self._response = response
        self._chunks = node_errors_apart(response.stream(65536, decode_content=False))

    def __iter__(self):
        return self

    def __next__(self) -> tuple[bytes | None, bytes | None]:
        try:
            return next(self._chunks)
        except StopIteration:
            self.close()
            raise
        except Exception as exc:
            from urllib3.exceptions import HTTPError

            if isinstance(exc, HTTPError | OSError):
                raise StopIteration from None
            raise

    def close(self) -> None:
        try:
            import socket

            sock = getattr(getattr(self._response, "_fp", None), "fp", None)
            raw = getattr(getattr(sock, "raw", None), "_sock", None)
            if raw is not None:
                raw.shutdown(socket.SHUT_RDWR)
        except Exception:
            pass
        _drop(self._response)


def _done(response) -> None:
    """A response whose body (the object as created: a Secret's values among it) is not wanted: read to its end,
    so its connection can serve the next request, and dropped. Never handed back half-read: the next request on
    that connection would read the rest as its own answer."""
    try:
        response.drain_conn()
    finally:
        response.release_conn()


def _drop(response) -> None:
    """A stream that may not have been read to its end (a followed log, an interrupt): its connection is closed,
    not handed back to the pool."""
    try:
        response.close()
    except Exception:
        pass
    try:
        response.release_conn()
    except Exception:
        pass


# --- pure: reading what the cluster reports -----------------------------------------------------------------------

_NODE_ERROR = b"rpc error: code = "  # how a kubelet ends a log whose container went away while it was followed


def node_errors_apart(chunks) -> Iterator[tuple[bytes | None, bytes | None]]:
    """A pod's log as (stdout, stderr) pairs: the job's output on stdout, and the kubelet's own error that ends a
    followed log when the container is removed ("rpc error: code = NotFound desc = ...", appended with no newline)
    on stderr as one line of ours, not mixed into the job's output. Only an unterminated last line that starts
    like that error is held back until the stream ends; everything else passes at once."""
    held = b""
    for chunk in chunks:
        data = held + chunk
        held = b""
        cut = data.rfind(b"\n") + 1
        tail = data[cut:]
        if tail and (tail.startswith(_NODE_ERROR) or _NODE_ERROR.startswith(tail)):
            held, data = tail, data[:cut]
        if data:
            yield data, None
    if held.startswith(_NODE_ERROR):
        text = b" ".join(held.split())[:300]
        yield None, b"launch: warning: the node ended the job's log: " + text + b"\n"
    elif held:
        yield held, None


def pod_verdict(pod) -> str | None:
    """ "started" once a container of `pod` runs or ran; a reason text when it cannot start; None meanwhile."""
    status = pod.status
    if status is None:
        return None
    for cs in status.container_statuses or []:
        state = cs.state
        if state is not None and state.running is not None:
            return "started"
        if state is not None and state.terminated is not None:
            term = state.terminated
            if term.reason in _COULD_NOT_RUN:
                return f"{term.reason}: {' '.join(str(term.message or '').split())[:400]}"
            return "started"
        last = cs.last_state
        if last is not None and last.terminated is not None and last.terminated.reason not in _COULD_NOT_RUN:
            return "started"
        if state is not None and state.waiting is not None and state.waiting.reason in _NEVER_STARTS:
            return f"{state.waiting.reason}: {' '.join(str(state.waiting.message or '').split())[:400]}"
    if status.phase == "Succeeded":
        return "started"
    if status.phase == "Failed":
        return f"its pod failed: {status.reason or ''} {' '.join(str(status.message or '').split())}".strip()
    return None


def unschedulable(pod) -> str | None:
    for condition in (pod.status.conditions or []) if pod.status else []:
        if condition.type == "PodScheduled" and condition.status == "False" and condition.reason == "Unschedulable":
            return " ".join(str(condition.message or "no node fits").split())[:400]
    return None


def pod_exit_code(pod) -> int | None:
    for cs in (pod.status.container_statuses or []) if pod.status else []:
        if cs.state is not None and cs.state.terminated is not None:
            return int(cs.state.terminated.exit_code)
        if cs.last_state is not None and cs.last_state.terminated is not None and cs.state.running is None:
            return int(cs.last_state.terminated.exit_code)
    return None


def _restarts(pod) -> int:
    return sum(int(cs.restart_count or 0) for cs in (pod.status.container_statuses or [])) if pod.status else 0


def _finished(job) -> str | None:
    """ "Complete", or the reason a Job failed ("BackoffLimitExceeded", "DeadlineExceeded"), or None."""
    for condition in (job.status.conditions or []) if job.status else []:
        if condition.status == "True" and condition.type == "Complete":
            return "Complete"
        if condition.status == "True" and condition.type == "Failed":
            return condition.reason or "Failed"
    return None


def _epoch(value) -> float:
    if not value:
        return 0.0
    if hasattr(value, "timestamp"):
        return value.timestamp()
    from datetime import datetime

    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def job_from(job, pods_by_job: dict[str, list], target: Target) -> jobmod.Job:
    """A Job (and its pods) as launch reports jobs: status running / pending / exited / stopped / failed."""
    meta = job.metadata
    annotations = dict(meta.annotations or {})
    job_id = (meta.labels or {}).get(kubeplan.LABEL_SELECT) or annotations.get(jobmod.LABEL_JOB, "")
    pods = sorted(pods_by_job.get(job_id, []), key=lambda p: _epoch(p.metadata.creation_timestamp), reverse=True)
    finished = _finished(job)
    exit_code = next((c for c in (pod_exit_code(p) for p in pods) if c is not None), None)
    stopped = annotations.get(LABEL_STOPPED) == "1"
    if finished == "Complete":
        status, exit_code = "exited", 0 if exit_code is None else exit_code
    elif finished is not None:
        status = "stopped" if stopped else "exited" if exit_code is not None else "failed"
    elif stopped:
        status = "stopped"
    elif any(p.status is not None and p.status.phase == "Running" for p in pods):
        status = "running"
    else:
        status = "pending"
    deadline = annotations.get(jobmod.LABEL_DEADLINE)
    labels = dict(annotations)
    labels.update({WHERE_CONTEXT: target.context, WHERE_NAMESPACE: target.namespace})
    image = ""
    containers = job.spec.template.spec.containers if job.spec and job.spec.template.spec else []
    if containers:
        image = containers[0].image or ""
    return jobmod.Job(
        id=job_id,
        name=annotations.get(jobmod.LABEL_NAME),
        image=image,
        status=status,
        created=_epoch(meta.creation_timestamp),
        exit_code=exit_code if status != "running" else None,
        secrets=jobmod.secrets_from_labels(annotations),
        backend="kubernetes",
        ref=meta.name,
        deadline=float(deadline) if deadline else None,
        labels=labels,
    )


def _tell(hooks: RunHooks, line: str) -> None:
    if hooks.progress is not None:
        hooks.progress(line)
    else:
        sys.stderr.write(f"launch: {line}\n")


def _follow(list_fn, namespace: str, selector: str, judge, between, window: int = 2) -> Any:
    """Follow the objects `list_fn` lists (a list, then a watch from its resourceVersion, in windows of `window`
    seconds with `between()` run after each) until `judge(obj, event type)` returns a result."""
    from kubernetes import watch
    from kubernetes.client.exceptions import ApiException

    while True:
        listing = list_fn(namespace, label_selector=selector)
        for item in listing.items:
            result = judge(item, "ADDED")
            if result is not None:
                return result
        version = listing.metadata.resource_version
        gone = False
        while not gone:
            w = watch.Watch()
            try:
                for event in w.stream(
                    list_fn, namespace, label_selector=selector, resource_version=version, timeout_seconds=window
                ):
                    if event["type"] == "ERROR":
                        gone = True  # 410 Gone: the version is too old; list again
                        break
                    item = event["object"]
                    version = item.metadata.resource_version
                    result = judge(item, event["type"])
                    if result is not None:
                        return result
            except ApiException as exc:
                if exc.status != 410:
                    raise
                gone = True
            finally:
                w.stop()
            result = between()
            if result is not None:
                return result

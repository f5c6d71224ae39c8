"""The API: RunPod's REST v2 secrets routes and field names (a RunPod script ports by changing its base URL and
key), and /v2/templates and /v2/jobs for the rest. Every route is an adapter of `launcher.app`.

`value` is write-only: no response carries a value, and an error never quotes one (validation errors name the
field, never the input). Errors are application/problem+json: {type, title, status, detail}.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from launcher.app import jobs as jobs_app
from launcher.app import run as run_app
from launcher.app import secrets as secrets_app
from launcher.app import templates as templates_app
from launcher.errors import ExitCode, LaunchError, UsageError
from launcher.jobs import iso_time

router = APIRouter(prefix="/v2")

STATUS = {
    ExitCode.USAGE: 400,
    ExitCode.NOT_FOUND: 404,
    ExitCode.CONFLICT: 409,
    ExitCode.STORE: 503,
    ExitCode.TEMPLATE: 422,
    ExitCode.ENGINE: 502,
}
TITLES = {400: "Bad Request", 404: "Not Found", 409: "Conflict", 422: "Unprocessable Content", 502: "Bad Gateway"}
PROBLEM = {"content": {"application/problem+json": {}}, "description": "a problem: {type, title, status, detail}"}
ERRORS: dict[int | str, dict[str, Any]] = {code: PROBLEM for code in (400, 401, 403, 404, 409, 413, 422, 502, 503)}

NameParam = Annotated[str, Path(description="The secret's id: its name.", max_length=253)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SecretCreate(_Strict):
    name: str = Field(max_length=253, description="letters, digits, '_', '.', '-'; not starting with '.'")
    value: str | None = Field(None, description="the value as text (write-only: never returned)")
    valueBase64: str | None = Field(None, description="the value's exact bytes, base64 (write-only)")
    description: str = Field("", max_length=10_000)


class SecretUpdate(_Strict):
    value: str | None = Field(None, description="a new value: a new version (write-only)")
    valueBase64: str | None = Field(None, description="a new value's exact bytes, base64 (write-only)")
    description: str | None = Field(None, max_length=10_000)


class Secret(BaseModel):
    id: str
    name: str
    description: str
    createdAt: str
    valueLastUpdatedAt: str
    version: int
    size: int
    lastUsedAt: str | None
    lastUsedBy: str | None
    jobs: list[str] = Field(description="running jobs that use the secret")
    staleJobs: list[str] = Field(description="running jobs holding an older version")
    templates: list[str] = Field(description="saved templates that reference it")


class Template(BaseModel):
    name: str
    description: str
    builtin: bool
    yaml: str | None = None
    secrets: list[str] | None = None


class TemplateWrite(_Strict):
    name: str | None = Field(None, max_length=63, description="required to create")
    yaml: str = Field(max_length=templates_app.MAX_TEMPLATE_BYTES)


class JobRun(_Strict):
    template: str | None = Field(None, max_length=253, description="a built-in or saved template's name")
    image: str | None = Field(None, max_length=1000)
    env: list[Annotated[str, Field(max_length=70_000)]] = Field(
        [], max_length=1000, description="VAR=VALUE or VAR=secret:KEY"
    )
    volumes: list[Annotated[str, Field(max_length=5000)]] = Field([], max_length=1000)
    name: str | None = Field(None, max_length=63)
    command: list[Annotated[str, Field(max_length=70_000)]] | None = Field(None, max_length=1000)
    lifeSpan: str | None = Field(None, max_length=32, description="30m, 2h, 1d")
    readOnly: bool = False


class Job(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    name: str | None
    image: str
    status: str


class Stopped(BaseModel):
    id: str


def problem(status: int, detail: str) -> JSONResponse:
    from launcher.redact import scrub

    body = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status, "detail": scrub(detail)}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def error_response(exc: LaunchError) -> JSONResponse:
    return problem(STATUS.get(exc.code, 500), exc.message)


# -- secrets ---------------------------------------------------------------------------------------------------


def _value(text: str | None, b64: str | None, *, required: bool) -> bytes | None:
    if text is not None and b64 is not None:
        raise UsageError("give `value` or `valueBase64`, not both")
    if b64 is not None:
        try:
            value = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError):
            raise UsageError("valueBase64: not valid base64") from None
    elif text is not None:
        value = text.encode("utf-8", "surrogateescape")
    elif required:
        raise UsageError("value: required (or valueBase64)")
    else:
        return None
    return value


def secret_dict(view) -> dict[str, Any]:
    info = view.info
    use = info.last_used
    return {
        "id": info.name,
        "name": info.name,
        "description": info.description,
        "createdAt": iso_time(info.created),
        "valueLastUpdatedAt": iso_time(info.updated),
        "version": info.version,
        "size": info.size,
        "lastUsedAt": iso_time(use.time) if use else None,
        "lastUsedBy": use.job if use else None,
        "jobs": list(view.jobs),
        "staleJobs": list(view.stale_jobs),
        "templates": list(view.templates),
    }


@router.get("/account/secrets", response_model=list[Secret], responses=ERRORS, tags=["secrets"])
def list_secrets():
    """Every secret's metadata; never a value."""
    return [secret_dict(v) for v in secrets_app.views()]


@router.post("/account/secrets", status_code=201, response_model=Secret, responses=ERRORS, tags=["secrets"])
def create_secret(body: SecretCreate):
    """Create a secret; a name that exists is 409."""
    secrets_app.create(body.name, _value(body.value, body.valueBase64, required=True), body.description)
    return secret_dict(secrets_app.views([body.name])[0])


@router.get("/account/secrets/{id}", response_model=Secret, responses=ERRORS, tags=["secrets"])
def get_secret(id: NameParam):
    return secret_dict(secrets_app.views([id])[0])


@router.patch("/account/secrets/{id}", response_model=Secret, responses=ERRORS, tags=["secrets"])
def update_secret(id: NameParam, body: SecretUpdate):
    """A new value (a new version) and/or a new description."""
    secrets_app.edit(id, _value(body.value, body.valueBase64, required=False), body.description)
    return secret_dict(secrets_app.views([id])[0])


@router.delete("/account/secrets/{id}", status_code=204, responses=ERRORS, tags=["secrets"])
def delete_secret(id: NameParam, force: bool = Query(False, description="delete even if running jobs use it")):
    """Delete a secret; 409 while a running job uses it, unless force=true."""
    secrets_app.delete([id], force=force)
    return Response(status_code=204)


# -- templates -------------------------------------------------------------------------------------------------


def template_dict(info, with_yaml: bool = False) -> dict[str, Any]:
    data = {"name": info.name, "description": info.description, "builtin": info.builtin}
    if with_yaml:
        text = info.path.read_text(encoding="utf-8")
        data["yaml"] = text
        try:
            data["secrets"] = list(templates_app.validate(info.name, text).secret_keys())
        except LaunchError:
            data["secrets"] = None
    return data


@router.get("/templates", response_model=list[Template], responses=ERRORS, tags=["templates"])
def list_templates():
    return [template_dict(t) for t in templates_app.list_templates()]


@router.get("/templates/{name}", response_model=Template, responses=ERRORS, tags=["templates"])
def get_template(name: Annotated[str, Path(max_length=253)]):
    return template_dict(templates_app.get(name), with_yaml=True)


@router.post("/templates", status_code=201, response_model=Template, responses=ERRORS, tags=["templates"])
def create_template(body: TemplateWrite):
    """Save a new template (validated: an invalid one is 422 naming NAME.yaml:line:col)."""
    if not body.name:
        raise UsageError("name: required")
    return template_dict(templates_app.save(body.name, body.yaml, create=True), with_yaml=True)


@router.put("/templates/{name}", response_model=Template, responses=ERRORS, tags=["templates"])
def update_template(name: Annotated[str, Path(max_length=63)], body: TemplateWrite):
    if body.name not in (None, name):
        raise UsageError("name: a template is not renamed by an update")
    return template_dict(templates_app.save(name, body.yaml, create=False), with_yaml=True)


@router.delete("/templates/{name}", status_code=204, responses=ERRORS, tags=["templates"])
def delete_template(name: Annotated[str, Path(max_length=253)]):
    templates_app.delete(name)
    return Response(status_code=204)


# -- jobs ------------------------------------------------------------------------------------------------------


def start_job(body: JobRun, progress=None):
    """Start a job detached (the server has no terminal to run one in the foreground); its RunResult (id and
    backend). `progress` gets an image pull's progress line by line."""
    template = str(templates_app.get(body.template).path) if body.template else None
    request = run_app.RunRequest(
        template=template,
        image=body.image or None,
        env=tuple(body.env),
        volumes=tuple(body.volumes),
        name=body.name or None,
        command=tuple(body.command) if body.command else None,
        detach=True,
        life_span=body.lifeSpan or None,
        read_only=body.readOnly,
        environ={},  # `VAR` alone copies from the caller's environment: the server's is not the caller's
    )
    result = run_app.run(request, progress=progress)
    assert result.job_id is not None and result.backend is not None
    return result


@router.post("/jobs", status_code=201, response_model=Job, responses=ERRORS, tags=["jobs"])
def run_job(body: JobRun):
    """Run a template (with overrides), detached; returns once the job's command runs."""
    started = start_job(body)
    return jobs_app.inspect_started(started.job_id, started.backend)


@router.get("/jobs", response_model=list[Job], responses=ERRORS, tags=["jobs"])
def list_jobs(all: bool = Query(False, description="ended jobs too")):
    return jobs_app.list_jobs(all=all)


JobRef = Annotated[str, Path(description="a job id, unique id prefix or name", max_length=253)]


@router.get("/jobs/{job}", response_model=Job, responses=ERRORS, tags=["jobs"])
def get_job(job: JobRef):
    """The job as it was run: template, image, command, mounts, secret names and versions; never a value."""
    return jobs_app.inspect(job)


@router.get(
    "/jobs/{job}/logs",
    responses={**ERRORS, 200: {"content": {"text/plain": {}}, "description": "the output, masked"}},
    tags=["jobs"],
)
def job_logs(
    request: Request,
    job: JobRef,
    follow: bool = Query(False, description="keep streaming new output"),
    tail: int | None = Query(None, ge=0, le=1_000_000),
):
    """The job's stdout and stderr as they came, secret values masked as ***; streamed while `follow`."""
    from starlette.concurrency import iterate_in_threadpool

    from launcher.mask import masked

    streams, masker = jobs_app.logs(job, follow=follow, tail=tail)
    close = getattr(streams, "close", lambda: None)

    async def reader_gone() -> None:
        """A quiet job gives nothing to send, so nothing would notice the reader left: look every second."""
        while not await request.is_disconnected():
            await asyncio.sleep(1)
        close()  # ends the worker's wait on the engine

    async def body():
        watch = asyncio.create_task(reader_gone())
        try:
            async for _stream, data in iterate_in_threadpool(masked(streams, masker)):
                yield data
        finally:
            watch.cancel()
            close()

    return StreamingResponse(body(), media_type="text/plain; charset=utf-8", headers={"X-Accel-Buffering": "no"})


@router.post("/jobs/{job}/stop", response_model=Stopped, responses=ERRORS, tags=["jobs"])
def stop_job(job: JobRef, grace: int = Query(10, ge=0, le=3600)):
    return {"id": jobs_app.stop([job], grace=grace)[0]}


@router.delete("/jobs/{job}", status_code=204, responses=ERRORS, tags=["jobs"])
def delete_job(job: JobRef, force: bool = Query(False, description="stop and remove a running job")):
    jobs_app.remove([job], force=force)
    return Response(status_code=204)

"""The console's pages: server-rendered (Jinja2, autoescaped), forms that post back, a little plain JS
(static/app.js) for the secret picker, the typed-name delete and the live logs. Every handler is an adapter of
`launcher.app`, as the API's are.

No value is ever sent to the browser: a value field is a password input that is never prefilled, a failed form is
shown again without it, and no message quotes one. A form changes something only with its session's CSRF token.
"""

from __future__ import annotations

import os
import shlex
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from launcher.app import jobs as jobs_app
from launcher.app import secrets as secrets_app
from launcher.app import templates as templates_app
from launcher.console import api, security
from launcher.errors import LaunchError, UsageError
from launcher.jobs import iso_time

HERE = Path(__file__).parent
NEW_TEMPLATE = (  # a start: the secret picker inserts a reference at the cursor, e.g. after `TOKEN: `
    "description: my job\nimage: launch-test/busybox:latest\ncommand: [sh, -c, 'echo \"token: $TOKEN\"']\n"
    "env:\n  TOKEN: \n"
)
views = Jinja2Templates(directory=str(HERE / "templates"))
views.env.filters["iso"] = iso_time
REFERENCE_KINDS = (
    ("env", "secret:KEY (a whole env value)"),
    ("runpod", "{{ RUNPOD_SECRET_KEY }} (inside text)"),
    ("file", "secret:KEY:/run/secrets/KEY (a file mount)"),
)


class Progress:
    """The latest progress line of each job being started from the run form (an image pull), by the random
    ticket the form carries; the page polls it while its form is posted. Bounded; no value is ever in a line."""

    def __init__(self, most: int = 64):
        self.lines: OrderedDict[str, str] = OrderedDict()
        self.most = most
        self.lock = threading.Lock()

    def reporter(self, ticket: str):
        def report(line: str) -> None:
            with self.lock:
                self.lines[ticket] = line[:300]
                self.lines.move_to_end(ticket)
                while len(self.lines) > self.most:
                    self.lines.popitem(last=False)

        return report

    def get(self, ticket: str) -> str:
        with self.lock:
            return self.lines.get(ticket, "")

    def done(self, ticket: str) -> None:
        with self.lock:
            self.lines.pop(ticket, None)


PROGRESS = Progress()


def render(request: Request, page: str, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("error", None)
    context["csrf"] = request.scope.get("launch.csrf", "")
    context["ticket"] = os.urandom(12).hex()
    context["notice"] = request.query_params.get("done")
    context["section"] = page
    return views.TemplateResponse(request, f"{page}.html", context, status_code=status)


def error(request: Request, exc: LaunchError) -> HTMLResponse | None:
    """A page's LaunchError as a page (None for the API's routes: they answer problem+json)."""
    if request.url.path.startswith("/v2/") or request.url.path == "/openapi.json":
        return None
    status = api.STATUS.get(exc.code, 500)
    return render(request, "error", status=status, message=exc.message, back=request.headers.get("referer"))


async def form(request: Request) -> Any:
    """The posted form, once its CSRF token is checked (403 otherwise)."""
    data = await request.form(max_files=2, max_fields=100)
    token = data.get("_csrf")
    if not security.form_csrf_ok(request.scope, token if isinstance(token, str) else None):
        raise HTTPException(403, "missing or wrong CSRF token")
    return data


def _text(data, key: str) -> str:
    value = data.get(key)
    return value if isinstance(value, str) else ""


async def _value(data) -> bytes | None:
    """A posted value: the uploaded file's exact bytes, else the masked field's text; None when neither."""
    upload = data.get("file")
    if upload is not None and not isinstance(upload, str) and upload.filename:
        value = await upload.read(1024 * 1024 + 1)
    elif _text(data, "value"):
        value = _text(data, "value").encode("utf-8", "surrogateescape")
    else:
        return None
    return value


def _see(path: str, done: str | None = None) -> RedirectResponse:
    from urllib.parse import quote

    return RedirectResponse(path + (f"?done={quote(done)}" if done else ""), status_code=303)


def mount(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.get("/", include_in_schema=False)
    def home(request: Request):
        response = _see("/secrets")
        if request.scope.get("launch.auth") == "login":  # the token from the URL becomes a session cookie
            session, _csrf = request.app.state.sessions.new()
            response.set_cookie(security.COOKIE, session, httponly=True, samesite="strict", path="/")
        return response

    # -- secrets -----------------------------------------------------------------------------------------------

    @app.get("/secrets", include_in_schema=False)
    def secrets_page(request: Request):
        return render(request, "secrets", secrets=secrets_app.views(), form={})

    @app.post("/secrets", include_in_schema=False)
    async def secrets_create(request: Request):
        data = await form(request)
        name, description = _text(data, "name").strip(), _text(data, "description")
        try:
            value = await _value(data)
            if value is None:
                raise UsageError("give a value, or choose a file")
            secrets_app.create(name, value, description)
        except LaunchError as exc:  # shown again with what was typed, except the value
            form_data = {"name": name, "description": description}
            status = api.STATUS.get(exc.code, 500)
            return render(
                request, "secrets", status=status, secrets=secrets_app.views(), form=form_data, error=exc.message
            )
        return _see(f"/secrets/{name}", f"created secret {name}")

    @app.get("/secrets/{name}", include_in_schema=False)
    def secret_page(request: Request, name: str):
        return render(request, "secret", view=secrets_app.views([name])[0])

    @app.post("/secrets/{name}/value", include_in_schema=False)
    async def secret_value(request: Request, name: str):
        data = await form(request)
        value = await _value(data)
        if value is None:
            raise UsageError("give a new value, or choose a file")
        info = secrets_app.edit(name, value, None)
        return _see(f"/secrets/{name}", f"new value: version {info.version}")

    @app.post("/secrets/{name}/description", include_in_schema=False)
    async def secret_description(request: Request, name: str):
        data = await form(request)
        secrets_app.edit(name, None, _text(data, "description"))
        return _see(f"/secrets/{name}", "description saved")

    @app.post("/secrets/{name}/delete", include_in_schema=False)
    async def secret_delete(request: Request, name: str):
        from launcher.errors import Conflict

        data = await form(request)
        if _text(data, "confirm").strip() != name:
            raise Conflict(f"the confirmation did not match '{name}'; nothing was deleted")
        secrets_app.delete([name], force=_text(data, "force") == "1")
        return _see("/secrets", f"deleted secret {name}")

    # -- templates ---------------------------------------------------------------------------------------------

    def picker() -> dict[str, Any]:
        return {"secret_names": secrets_app.names(), "kinds": REFERENCE_KINDS}

    @app.get("/templates", include_in_schema=False)
    def templates_page(request: Request):
        return render(request, "templates", templates=templates_app.list_templates())

    @app.get("/templates/new", include_in_schema=False)
    def template_new(request: Request, start: str | None = None):
        text = templates_app.text(start) if start else NEW_TEMPLATE
        return render(request, "template", template=None, name="", yaml=text, **picker())

    @app.get("/templates/{name}", include_in_schema=False)
    def template_page(request: Request, name: str):
        info = templates_app.get(name)
        return render(request, "template", template=info, name=name, yaml=templates_app.text(name), **picker())

    async def _save(request: Request, name: str, create: bool):
        data = await form(request)
        name = name or _text(data, "name").strip()
        text = _text(data, "yaml").replace("\r\n", "\n")
        try:
            templates_app.save(name, text, create=create)
        except LaunchError as exc:  # the YAML is shown again with the error (file:line:col)
            info = None if create else templates_app.get(name)
            status = api.STATUS.get(exc.code, 500)
            return render(
                request, "template", status=status, template=info, name=name, yaml=text, error=exc.message, **picker()
            )
        return _see(f"/templates/{name}", "template saved")

    @app.post("/templates", include_in_schema=False)
    async def template_create(request: Request):
        return await _save(request, "", create=True)

    @app.post("/templates/{name}", include_in_schema=False)
    async def template_update(request: Request, name: str):
        return await _save(request, name, create=False)

    @app.post("/templates/{name}/delete", include_in_schema=False)
    async def template_delete(request: Request, name: str):
        await form(request)
        templates_app.delete(name)
        return _see("/templates", f"deleted template {name}")

    # -- jobs --------------------------------------------------------------------------------------------------

    @app.get("/jobs", include_in_schema=False)
    def jobs_page(request: Request, template: str | None = None):
        rows = jobs_app.list_jobs(all=True)
        return render(
            request, "jobs", jobs=rows, templates=templates_app.list_templates(), chosen=template or "", form={}
        )

    @app.post("/jobs", include_in_schema=False)
    async def jobs_run(request: Request):
        data = await form(request)
        fields = {k: _text(data, k) for k in ("template", "image", "name", "env", "command", "life_span")}
        try:
            command = shlex.split(fields["command"]) if fields["command"].strip() else None
        except ValueError:
            raise UsageError("command: unbalanced quotes") from None
        body = api.JobRun(
            template=fields["template"] or None,
            image=fields["image"].strip() or None,
            name=fields["name"].strip() or None,
            env=[line.strip() for line in fields["env"].splitlines() if line.strip()],
            command=command,
            lifeSpan=fields["life_span"].strip() or None,
        )
        ticket = _text(data, "_ticket")
        report = PROGRESS.reporter(ticket) if len(ticket) == 24 else None
        try:
            # in a worker thread: the server goes on answering (the page's progress polls) while the job starts
            job_id = (await run_in_threadpool(api.start_job, body, report)).job_id
        except LaunchError as exc:
            PROGRESS.done(ticket)  # the form again, with the error (env lines are references or the user's text)
            status = api.STATUS.get(exc.code, 500)
            rows = jobs_app.list_jobs(all=True)
            return render(
                request,
                "jobs",
                status=status,
                jobs=rows,
                templates=templates_app.list_templates(),
                chosen=fields["template"],
                form=fields,
                error=exc.message,
            )
        PROGRESS.done(ticket)
        return _see(f"/jobs/{job_id}", f"started job {job_id}")

    @app.get("/jobs/progress/{ticket}", include_in_schema=False)
    def job_progress(ticket: str):
        """What the run form's job is doing while it starts (an image pull's latest line), for the page to show."""
        return {"line": PROGRESS.get(ticket)}

    @app.get("/jobs/{job}", include_in_schema=False)
    def job_page(request: Request, job: str):
        import yaml

        data = jobs_app.inspect(job)
        row = next((r for r in jobs_app.list_jobs(all=True) if r["id"] == data["id"]), {})
        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
        return render(request, "job", job=data, inspect=text, stale=row.get("stale_secrets", []))

    @app.post("/jobs/{job}/stop", include_in_schema=False)
    async def job_stop(request: Request, job: str):
        await form(request)
        stopped = jobs_app.stop([job])[0]
        return _see(f"/jobs/{stopped}", f"stopped job {stopped}")

    @app.post("/jobs/{job}/remove", include_in_schema=False)
    async def job_remove(request: Request, job: str):
        data = await form(request)
        removed = jobs_app.remove([job], force=_text(data, "force") == "1")[0]
        return _see("/jobs", f"removed job {removed}")

"""The server of `launch ui`: one FastAPI app (API + pages) behind `security.Guard`, served by uvicorn on
127.0.0.1, with a runtime file ui.json (0600, in the launch home) naming its URL and token while it runs.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from launcher.console import api, pages, security
from launcher.errors import LaunchError, UsageError

LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
UI_FILE = "ui.json"


def create_app(token: str, hosts: list[str]) -> tuple[security.Guard, FastAPI]:
    """(the app behind its guard, the app itself: its `openapi()` is the schema)."""
    app = FastAPI(
        title="launch",
        version="1",
        summary="Secrets, templates and jobs of one launch store (RunPod's REST v2 secrets routes).",
        docs_url=None,  # Swagger UI and ReDoc load scripts from a CDN: not here
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.include_router(api.router)
    pages.mount(app)

    @app.exception_handler(LaunchError)
    async def launch_error(_request: Request, exc: LaunchError):
        return pages.error(_request, exc) or api.error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError):
        # names the field and what is wrong, never the input (it may be a value)
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        return api.problem(422, "; ".join(parts) or "invalid request")

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException):
        return api.problem(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def internal(_request: Request, exc: Exception):
        # Starlette sends this, then re-raises the exception: `security.Guard` logs it as one line
        return api.problem(500, f"internal error ({type(exc).__name__})")

    sessions = security.Sessions()
    app.state.sessions = sessions
    app.state.token = token
    return security.Guard(app, token=token, hosts=hosts, sessions=sessions), app


def _hosts(host: str, port: int) -> list[str]:
    names = [*LOOPBACK] if host in ("127.0.0.1", "localhost", "::1") else [*LOOPBACK, _bracketed(host)]
    return [f"{name}:{port}" for name in names] + (names if port == 80 else [])


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def write_runtime_file(path: Path, url: str, token: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"url": url, "token": token, "pid": os.getpid()}, out)
    os.replace(temp, path)


def serve(host: str = "127.0.0.1", port: int = 8765, open_browser: bool = True, token: str | None = None) -> None:
    """Serve until interrupted; ui.json exists exactly while it serves."""
    import uvicorn

    from launcher import paths

    token = token or security.new_token()
    sock = _bind(host, port)
    port = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("127.0.0.1", "localhost") else _bracketed(host)
    url = f"http://{shown}:{port}/"
    guarded, _app = create_app(token, _hosts(host, port))
    config = uvicorn.Config(guarded, log_level="warning", access_log=False, server_header=False, lifespan="off")
    server = uvicorn.Server(config)
    # Ctrl-C and SIGTERM end the server gracefully, also when they arrive before uvicorn installs its own
    # handlers (it restores these afterwards and re-raises the signal into them), so ui.json always goes.
    import signal

    def stop(_signum, _frame):
        server.should_exit = True

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    runtime = paths.home() / UI_FILE
    write_runtime_file(runtime, url, token)
    sys.stderr.write(
        f"launch: the console is at {url}?token={token}\n"
        f"launch: (URL and token are in {runtime} while it runs; Ctrl-C stops it)\n"
    )
    sys.stderr.flush()
    if open_browser:
        import webbrowser

        try:
            webbrowser.open(f"{url}?token={token}")
        except Exception:  # no browser here: the URL is printed
            pass
    try:
        server.run(sockets=[sock])
    finally:
        try:
            runtime.unlink()
        except FileNotFoundError:
            pass
        sock.close()

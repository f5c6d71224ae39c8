"""What stands between a local server that can read every secret and the rest of the world.

A pure ASGI middleware (no BaseHTTPMiddleware: it would buffer the streamed logs), applied to every request:

1. `Host` must be one of the server's own names (127.0.0.1, localhost, [::1] with its port, or the address given
   with --host): a page on another site that rebinds its DNS name to 127.0.0.1 sends its own name, and gets 403
   (DNS rebinding).
2. `Origin`, when a browser sends one, must be this server: another site's script gets 403 before anything runs.
3. Authentication: `Authorization: Bearer TOKEN`, or the session cookie that `/?token=TOKEN` is exchanged for
   (HttpOnly: no script reads it; SameSite=Strict: no other site's request carries it). Without either: 401.
4. CSRF: a request that changes something (POST, PUT, PATCH, DELETE) authenticated by the cookie must carry the
   session's CSRF token (header X-CSRF-Token or form field `_csrf`); the bearer token is no ambient authority, so
   requests carrying it need none.
5. Bodies are bounded (413), and every response says `Cache-Control: no-store` (no page with secret metadata in a
   cache), carries a Content-Security-Policy with no outside source (`'self'` only, no inline script, no frames),
   `X-Content-Type-Options: nosniff`, `Referrer-Policy: same-origin` (no URL of ours in a Referer to another site;
   `no-referrer` would make a browser send `Origin: null` on our own forms) and `X-Frame-Options: DENY`.
"""

from __future__ import annotations

import hmac
import json
import os
import sys
from collections.abc import Iterable
from urllib.parse import parse_qs

COOKIE = "launch_session"
MAX_BODY = 4 * 1024 * 1024  # a secret is at most 1 MiB; base64, JSON and multipart framing fit in this
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
HEADERS = [
    (b"cache-control", b"no-store"),
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]
_CHANGES = {"POST", "PUT", "PATCH", "DELETE"}


def new_token() -> str:
    return os.urandom(24).hex()


class Sessions:
    """Session id -> its CSRF token, in memory: a restart of the server ends every session (the token changes)."""

    def __init__(self) -> None:
        self._csrf: dict[str, str] = {}

    def new(self) -> tuple[str, str]:
        session, csrf = new_token(), new_token()
        self._csrf[session] = csrf
        return session, csrf

    def csrf(self, session: str | None) -> str | None:
        return self._csrf.get(session) if session else None


def _problem(status: int, title: str, detail: str) -> tuple[int, bytes]:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return status, json.dumps(body).encode()


def _cookies(header: str) -> dict[str, str]:
    jar = {}
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key:
            jar[key] = value
    return jar


class _TooLarge(Exception):
    pass


class Guard:
    """The ASGI middleware described above. `hosts`: the Host header values this server answers to."""

    def __init__(self, app, *, token: str, hosts: Iterable[str], sessions: Sessions, log=sys.stderr):
        self.app = app
        self.token = token
        self.hosts = {h.lower() for h in hosts}
        self.sessions = sessions
        self.log = log

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status_seen = []

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                status_seen.append(message["status"])
                message = dict(message)
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in HEADERS if h[0] not in names)]
            await send(message)

        try:
            refused = self._check(scope)
            if refused is not None:
                status, body = refused
                await _send_problem(send_with_headers, status, body)
            else:
                await self.app(scope, self._bounded(scope, receive), send_with_headers)
        except _TooLarge:
            if not status_seen:
                await _send_problem(
                    send_with_headers, *_problem(413, "Payload Too Large", f"the body exceeds {MAX_BODY} bytes")
                )
        except Exception as exc:  # a bug: one line with the type only (a traceback or message could quote input)
            self.log.write(f"launch ui: internal error ({type(exc).__name__}) in {scope['method']} {scope['path']}\n")
            if not status_seen:
                await _send_problem(send_with_headers, *_problem(500, "Internal Server Error", "internal error"))
        finally:
            # an access line: method, path (never the query: it may hold the token) and status; never a body
            self.log.write(f"launch ui: {scope['method']} {scope['path']} {status_seen[0] if status_seen else '-'}\n")
            self.log.flush()

    def _check(self, scope) -> tuple[int, bytes] | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "").lower()
        if host not in self.hosts:
            return _problem(403, "Forbidden", "this server answers only to its own address (Host header refused)")
        origin = headers.get("origin")
        if origin is not None and origin.lower() not in {f"http://{h}" for h in self.hosts}:
            return _problem(403, "Forbidden", "requests from another origin are refused")
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return _problem(413, "Payload Too Large", f"the body exceeds {MAX_BODY} bytes")
        auth = headers.get("authorization", "")
        if auth:
            scheme, _, given = auth.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
                return _problem(401, "Unauthorized", "the bearer token is not this server's (see ui.json)")
            scope["launch.auth"] = "bearer"
            return None
        if scope["path"] == "/" and scope["method"] == "GET":
            given = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
            if given:
                if not hmac.compare_digest(given.encode(), self.token.encode()):
                    return _problem(401, "Unauthorized", "the token in the URL is not this server's")
                scope["launch.auth"] = "login"  # the page sets the session cookie and drops the token from the URL
                return None
        session = _cookies(headers.get("cookie", "")).get(COOKIE)
        csrf = self.sessions.csrf(session)
        if csrf is None:
            return _problem(
                401,
                "Unauthorized",
                "send `Authorization: Bearer TOKEN`, or open the URL `launch ui` printed (token in ui.json)",
            )
        scope["launch.auth"] = "cookie"
        scope["launch.csrf"] = csrf
        if scope["method"] in _CHANGES:
            sent = headers.get("x-csrf-token")
            is_form = headers.get("content-type", "").startswith(
                ("application/x-www-form-urlencoded", "multipart/form-data")
            )
            if sent is None and is_form and not scope["path"].startswith("/v2/"):
                return None  # a page's form: its handler checks the `_csrf` field (launcher.console.pages.form)
            if sent is None or not hmac.compare_digest(sent.encode(), csrf.encode()):
                return _problem(403, "Forbidden", "missing or wrong CSRF token")
        return None

    def _bounded(self, scope, receive):
        total = 0

        async def bounded():
            nonlocal total
            message = await receive()
            if message["type"] == "http.request":
                total += len(message.get("body", b""))
                if total > MAX_BODY:
                    raise _TooLarge()
            return message

        return bounded


async def _send_problem(send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def form_csrf_ok(scope, form_value: str | None) -> bool:
    """Whether a cookie-authenticated form carried its session's CSRF token (bearer requests need none)."""
    if scope.get("launch.auth") == "bearer":
        return True
    csrf = scope.get("launch.csrf")
    return bool(csrf and form_value and hmac.compare_digest(form_value.encode(), csrf.encode()))

"""How a client meets its engine (launcher.runtime.common._new_client): the API version comes from the engine's
`GET /_ping` (its `API-Version` header), not from docker-py's `GET /version` (10-20 ms here, half a second on
podman's socket). Against a real HTTP server on a unix socket that answers as an engine would, and counts."""

from __future__ import annotations

import http.server
import socketserver
import threading
from pathlib import Path

import pytest
from docker.constants import DEFAULT_DOCKER_API_VERSION

from launcher.errors import EngineError
from launcher.runtime.common import _new_client


class _Engine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, ping_status: int, api_version: str | None):
        self.asked: list[str] = []
        self.ping_status, self.api_version = ping_status, api_version
        super().__init__(str(path), _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def address_string(self) -> str:  # a unix socket has no client address
        return "local"

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        engine: _Engine = self.server  # type: ignore[assignment]
        engine.asked.append(self.path)
        if self.path == "/_ping":
            status, body = engine.ping_status, b"OK"
        elif self.path.endswith("/version"):
            status, body = 200, b'{"ApiVersion": "1.40", "Version": "19.03"}'
        else:
            status, body = 404, b"{}"
        self.send_response(status)
        if engine.api_version is not None:
            self.send_header("API-Version", engine.api_version)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def engine(tmp_path, monkeypatch):
    made = []

    def start(ping_status: int = 200, api_version: str | None = "1.41") -> _Engine:
        server = _Engine(tmp_path / f"engine{len(made)}.sock", ping_status, api_version)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        made.append(server)
        monkeypatch.setenv("DOCKER_HOST", f"unix://{server.server_address}")
        return server

    yield start
    for server in made:
        server.shutdown()
        server.server_close()


def test_an_older_engine_is_spoken_to_in_its_own_version_learnt_from_one_ping(engine):
    server = engine(api_version="1.41")
    client = _new_client()
    assert client.api.api_version == "1.41"
    assert server.asked == ["/_ping"]


def test_a_newer_engine_is_spoken_to_in_the_newest_version_docker_py_knows(engine):
    server = engine(api_version="9.99")
    assert _new_client().api.api_version == DEFAULT_DOCKER_API_VERSION
    assert server.asked == ["/_ping"]


def test_an_engine_whose_ping_names_no_version_is_asked_for_it(engine):
    server = engine(api_version=None)
    assert _new_client().api.api_version == "1.40"
    assert server.asked == ["/_ping", "/version"]


def test_an_engine_whose_ping_fails_is_one_clear_error(engine):
    engine(ping_status=500)
    with pytest.raises(EngineError, match=r"cannot reach the Docker engine at unix://.*\(HTTP 500 from /_ping\)"):
        _new_client()


def test_no_engine_at_all_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    with pytest.raises(EngineError, match=r"cannot reach the Docker engine at unix://.*none\.sock \(ConnectionError\)"):
        _new_client()

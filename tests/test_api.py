"""The API of `launch ui` against a real server process, a real store on disk and (for jobs) the real engine:
RunPod's REST v2 secrets routes and fields, templates, jobs; the token, Host, Origin and CSRF checks; no value in
any response or in the server's log (a canary)."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess

import httpx
import pytest

from tests.conftest import TEST_IMAGE, UIServer, wait_for

CANARY = "CANARY-v4lue-9f1e2d"  # a value that must never come back
CANARY2 = "CANARY-second-77a1b3"


def client(server: UIServer, **kwargs) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=120, **kwargs)


def no_canary(response: httpx.Response) -> httpx.Response:
    assert CANARY not in response.text and CANARY2 not in response.text
    return response


def test_ui_json_is_private_names_the_server_and_goes_with_it(ui_server):
    data = json.loads(ui_server.runtime.read_text())
    assert set(data) >= {"url", "token"} and data["url"].startswith("http://127.0.0.1:")
    assert stat.S_IMODE(os.stat(ui_server.runtime).st_mode) == 0o600
    assert f"?token={ui_server.token}" in ui_server.output()  # the URL with the token, printed on stderr
    assert ui_server.stop() == 0
    assert not ui_server.runtime.exists()


def test_launch_ui_token_from_the_environment(launch_home, tmp_path):
    server = UIServer(launch_home, tmp_path, env={"LAUNCH_UI_TOKEN": "a-fixed-token-for-scripts"})
    try:
        assert server.token == "a-fixed-token-for-scripts"
        with client(server) as http:
            assert http.get("/v2/account/secrets", headers=server.auth).status_code == 200
    finally:
        server.stop()


def test_every_route_refuses_a_request_without_the_token(ui_server):
    with client(ui_server) as http:
        schema = http.get("/openapi.json", headers=ui_server.auth).json()
        paths = [*schema["paths"], "/openapi.json", "/secrets", "/templates", "/jobs", "/static/app.js"]
        assert len(schema["paths"]) >= 8
        for path in paths:
            url = path.replace("{id}", "x").replace("{name}", "x").replace("{job}", "x")
            for method in ("GET", "POST", "DELETE"):
                for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": ui_server.token}):
                    response = http.request(method, url, headers=headers)
                    assert response.status_code == 401, (method, url, headers)
                    assert response.headers["content-type"] == "application/problem+json"
                    assert response.json()["detail"]


def test_a_foreign_host_or_origin_is_refused_even_with_the_token(ui_server):
    with client(ui_server) as http:
        for headers in ({"Host": "evil.example:80"}, {"Host": f"rebind.example:{ui_server.url.rsplit(':', 1)[1]}"}):
            response = http.get("/v2/account/secrets", headers={**ui_server.auth, **headers})
            assert response.status_code == 403 and "Host" in response.json()["detail"]
        response = http.get("/v2/account/secrets", headers={**ui_server.auth, "Origin": "http://evil.example"})
        assert response.status_code == 403 and "origin" in response.json()["detail"]
        ok = http.get("/v2/account/secrets", headers={**ui_server.auth, "Origin": ui_server.url})
        assert ok.status_code == 200
        local = http.get(
            "/v2/account/secrets", headers={**ui_server.auth, "Host": ui_server.host.replace("127.0.0.1", "localhost")}
        )
        assert local.status_code == 200


def test_the_token_becomes_a_session_cookie_and_changes_need_the_csrf_token(ui_server):
    with client(ui_server) as http:
        login = http.get(f"/?token={ui_server.token}")
        assert login.status_code == 303 and login.headers["location"] == "/secrets"
        cookie = login.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        page = http.get("/secrets")
        assert page.status_code == 200 and "Create a secret" in page.text
        csrf = page.text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        body = {"name": "k1", "value": CANARY}
        refused = http.post("/v2/account/secrets", json=body)
        assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
        wrong = http.post("/v2/account/secrets", json=body, headers={"X-CSRF-Token": "0" * 48})
        assert wrong.status_code == 403
        form = http.post("/secrets", data={"name": "k1", "value": CANARY})  # a form without its _csrf field
        assert form.status_code == 403
        form_to_api = http.post("/v2/jobs/x/stop", data={"a": "b"})
        assert form_to_api.status_code == 403  # a form never reaches the API without the header
        assert http.get("/v2/account/secrets").json() == []  # nothing was created by the refused requests
        created = no_canary(http.post("/v2/account/secrets", json=body, headers={"X-CSRF-Token": csrf}))
        assert created.status_code == 201
        posted = http.post("/secrets", data={"name": "k2", "value": CANARY2, "_csrf": csrf})
        assert posted.status_code == 303
        assert [s["name"] for s in http.get("/v2/account/secrets").json()] == ["k1", "k2"]
        assert http.get(f"/?token={ui_server.token}x").status_code == 401


def test_headers_on_every_response(ui_server):
    with client(ui_server) as http:
        for response in (http.get("/v2/account/secrets", headers=ui_server.auth), http.get("/v2/nope")):
            assert response.headers["cache-control"] == "no-store"
            csp = response.headers["content-security-policy"]
            assert "default-src 'self'" in csp and "http" not in csp and "unsafe-inline" not in csp
            assert response.headers["x-frame-options"] == "DENY"


def test_secrets_routes_and_fields(ui_server):
    with client(ui_server, headers=ui_server.auth) as http:
        created = no_canary(
            http.post("/v2/account/secrets", json={"name": "db.pass", "value": CANARY, "description": "db"})
        )
        assert created.status_code == 201
        secret = created.json()
        assert "value" not in secret
        assert {"id", "name", "description", "createdAt", "valueLastUpdatedAt", "version", "lastUsedAt"} <= set(secret)
        assert secret["id"] == secret["name"] == "db.pass" and secret["version"] == 1 and secret["lastUsedAt"] is None
        assert secret["createdAt"].endswith("Z")
        duplicate = no_canary(http.post("/v2/account/secrets", json={"name": "db.pass", "value": CANARY2}))
        assert duplicate.status_code == 409 and duplicate.headers["content-type"] == "application/problem+json"
        assert "db.pass" in duplicate.json()["detail"]
        assert no_canary(http.get("/v2/account/secrets/db.pass")).json()["description"] == "db"
        edited = no_canary(http.patch("/v2/account/secrets/db.pass", json={"value": CANARY2}))
        assert edited.status_code == 200 and edited.json()["version"] == 2
        described = http.patch("/v2/account/secrets/db.pass", json={"description": "the db"}).json()
        assert described["version"] == 2 and described["description"] == "the db"
        binary = bytes(range(256))
        made = http.post("/v2/account/secrets", json={"name": "blob", "valueBase64": base64.b64encode(binary).decode()})
        assert made.status_code == 201 and made.json()["size"] == 256
        listing = no_canary(http.get("/v2/account/secrets")).json()
        assert [s["name"] for s in listing] == ["blob", "db.pass"]
        bad = http.post("/v2/account/secrets", json={"name": ".hidden", "value": "x"})
        assert bad.status_code == 400 and "'.hidden'" in bad.json()["detail"]
        missing_value = http.post("/v2/account/secrets", json={"name": "nv"})
        assert missing_value.status_code == 400 and "value" in missing_value.json()["detail"]
        wrong_type = no_canary(http.post("/v2/account/secrets", json={"name": "t", "value": 5, "extra": CANARY}))
        assert wrong_type.status_code == 422
        assert http.get("/v2/account/secrets/nope").status_code == 404
        assert http.delete("/v2/account/secrets/db.pass").status_code == 204
        assert http.get("/v2/account/secrets/db.pass").status_code == 404
        assert http.delete("/v2/account/secrets/db.pass").status_code == 404
    # the store on disk is the one the CLI reads
    result = subprocess.run(["python3", "-m", "launcher", "secret", "ls", "--json"], capture_output=True, text=True)
    assert [s["name"] for s in json.loads(result.stdout)] == ["blob"]


def test_templates_routes(ui_server):
    with client(ui_server, headers=ui_server.auth) as http:
        listing = http.get("/v2/templates").json()
        assert {"jupyter", "python-batch"} <= {t["name"] for t in listing if t["builtin"]}
        jupyter = http.get("/v2/templates/jupyter").json()
        assert jupyter["yaml"].startswith(("#", "description", "image")) and "jupyter_token" in jupyter["secrets"]
        text = f"image: {TEST_IMAGE}\ncommand: [sh, -c, 'echo $T']\nenv:\n  T: secret:tok\n"
        created = http.post("/v2/templates", json={"name": "mine", "yaml": text})
        assert created.status_code == 201 and created.json()["secrets"] == ["tok"] and not created.json()["builtin"]
        assert http.post("/v2/templates", json={"name": "mine", "yaml": text}).status_code == 409
        assert http.post("/v2/templates", json={"name": "jupyter", "yaml": text}).status_code == 409
        invalid = http.put("/v2/templates/mine", json={"yaml": text + "imagee: x\n"})
        assert invalid.status_code == 422
        assert invalid.json()["detail"].startswith("mine.yaml:5:1:") and "did you mean" in invalid.json()["detail"]
        assert http.get("/v2/templates/mine").json()["yaml"] == text  # nothing half-done
        assert http.put("/v2/templates/mine", json={"yaml": text.replace("$T", "hi $T")}).status_code == 200
        assert http.post("/v2/templates", json={"name": "../x", "yaml": text}).status_code == 400
        assert http.delete("/v2/templates/jupyter").status_code == 409
    # `launch templates ls` and `launch run NAME` find it
    listed = subprocess.run(["python3", "-m", "launcher", "templates", "ls", "--json"], capture_output=True, text=True)
    assert "mine" in [t["name"] for t in json.loads(listed.stdout)]
    with client(ui_server, headers=ui_server.auth) as http:
        assert http.delete("/v2/templates/mine").status_code == 204
        assert http.get("/v2/templates/mine").status_code == 404


@pytest.mark.docker
def test_a_secret_made_over_the_api_reaches_a_job_started_over_the_api_masked(ui_server, docker):
    with client(ui_server, headers=ui_server.auth) as http:
        assert http.post("/v2/account/secrets", json={"name": "tok", "value": CANARY}).status_code == 201
        script = 'echo "got $T"; echo "err $T" >&2; sleep 300'
        text = f"image: {TEST_IMAGE}\ncommand: [sh, -c, '{script}']\nenv:\n  T: secret:tok\n"
        assert http.post("/v2/templates", json={"name": "job", "yaml": text}).status_code == 201
        started = no_canary(http.post("/v2/jobs", json={"template": "job", "name": "api-job"}))
        assert started.status_code == 201, started.text
        job = started.json()
        assert job["status"] == "running" and job["secrets"] == {"tok": 1}
        listed = no_canary(http.get("/v2/jobs")).json()
        assert job["id"] in [j["id"] for j in listed]
        # the start's answer (one look at the container it started) is what a later look at the job says
        looked = no_canary(http.get(f"/v2/jobs/{job['id']}")).json()
        assert {**looked, "age": None} == {**job, "age": None}  # the age may have ticked a second meanwhile
        logs = wait_for(lambda: (t := no_canary(http.get(f"/v2/jobs/{job['id']}/logs")).text).count("***") >= 2 and t)
        assert "got ***" in logs and "err ***" in logs
        secret = http.get("/v2/account/secrets/tok").json()
        assert secret["jobs"] == [job["id"]] and secret["lastUsedAt"] and secret["lastUsedBy"] == job["id"]
        assert secret["templates"] == ["job"]
        # an edit: the running job holds the old version, and its logs are still masked
        assert http.patch("/v2/account/secrets/tok", json={"value": CANARY2}).json()["version"] == 2
        assert http.get("/v2/account/secrets/tok").json()["staleJobs"] == [job["id"]]
        assert http.get("/v2/jobs").json()[0]["stale_secrets"] == ["tok"]
        in_use = http.delete("/v2/account/secrets/tok")
        assert in_use.status_code == 409 and job["id"] in in_use.json()["detail"]
        with http.stream("GET", f"/v2/jobs/{job['id']}/logs", params={"follow": "true"}) as stream:
            first = next(stream.iter_text())
            assert "***" in first and CANARY not in first
        assert http.get(f"/v2/jobs/{job['id']}").json()["spec"]["env"]["T"] == "secret:tok"
        assert http.delete(f"/v2/jobs/{job['id']}").status_code == 409  # running: stop it first
        assert http.post(f"/v2/jobs/{job['id']}/stop", params={"grace": 0}).json() == {"id": job["id"]}
        assert http.get(f"/v2/jobs/{job['id']}").json()["status"] == "exited"
        assert http.delete("/v2/account/secrets/tok", params={"force": "true"}).status_code == 204
        assert http.delete(f"/v2/jobs/{job['id']}").status_code == 204
        assert http.get(f"/v2/jobs/{job['id']}").status_code == 404
        refused = http.post("/v2/jobs", json={"image": TEST_IMAGE, "env": ["A=secret:missing"], "command": ["true"]})
        assert refused.status_code == 404 and "missing" in refused.json()["detail"]
        no_image = http.post("/v2/jobs", json={"image": "launch-test/no-such-image:1", "command": ["true"]})
        assert no_image.status_code == 502
    log = ui_server.output()
    assert CANARY not in log and CANARY2 not in log and ui_server.token not in log.split("\n", 2)[-1]
    assert "Traceback" not in log


def _engine_connections(pid: int) -> int:
    """How many unix sockets the server process holds (its connections to the engine among them)."""
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return count


def test_a_followed_log_whose_reader_goes_away_frees_its_engine_connection(ui_server, docker):
    """A browser tab closed on a followed log of a quiet job: the server ends its wait on the engine at once,
    instead of holding a worker thread and a connection until the job prints again."""
    with client(ui_server, headers=ui_server.auth) as http:
        started = http.post("/v2/jobs", json={"image": TEST_IMAGE, "command": ["sh", "-c", "echo hi; sleep 300"]})
        assert started.status_code == 201, started.text
        job = started.json()["id"]
        wait_for(lambda: "hi" in http.get(f"/v2/jobs/{job}/logs").text)
        before = _engine_connections(ui_server.proc.pid)
        for _ in range(3):
            with client(ui_server, headers=ui_server.auth) as reader:
                with reader.stream("GET", f"/v2/jobs/{job}/logs", params={"follow": "true"}) as stream:
                    assert next(stream.iter_text()) == "hi\n"
                    assert _engine_connections(ui_server.proc.pid) > before  # the follow holds one
        wait_for(lambda: _engine_connections(ui_server.proc.pid) <= before, timeout=10, what="the follows to end")
        assert http.post(f"/v2/jobs/{job}/stop", params={"grace": 0}).status_code == 200
        assert http.delete(f"/v2/jobs/{job}").status_code == 204


def test_openapi_is_valid_and_describes_the_routes(ui_server):
    from openapi_spec_validator import validate

    with client(ui_server, headers=ui_server.auth) as http:
        schema = http.get("/openapi.json").json()
    validate(schema)
    assert {
        "/v2/account/secrets",
        "/v2/account/secrets/{id}",
        "/v2/templates",
        "/v2/jobs",
        "/v2/jobs/{job}/logs",
    } <= set(schema["paths"])
    secret = schema["components"]["schemas"]["Secret"]["properties"]
    assert "value" not in secret and "valueLastUpdatedAt" in secret


def test_the_server_log_and_no_response_hold_a_value(ui_server):
    """A canary created through the API and through a form never shows up in a response, a page or the log."""
    with client(ui_server) as http:
        http.get(f"/?token={ui_server.token}")
        csrf = http.get("/secrets").text.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
        seen = [
            http.post("/secrets", data={"name": "c1", "value": CANARY, "_csrf": csrf}, follow_redirects=True),
            http.post("/secrets", data={"name": "c1", "value": CANARY2, "_csrf": csrf}),  # a duplicate: the form again
            http.post("/secrets", files={"file": ("v.bin", CANARY2.encode())}, data={"name": "c2", "_csrf": csrf}),
            http.post("/secrets/c1/value", data={"value": CANARY2, "_csrf": csrf}, follow_redirects=True),
            http.get("/secrets"),
            http.get("/secrets/c1"),
            http.get("/secrets/c2"),
            http.get("/templates/new"),
            http.get("/v2/account/secrets"),
        ]
        assert seen[1].status_code == 409 and "already exists" in seen[1].text
        for response in seen:
            no_canary(response)
        assert http.get("/v2/account/secrets/c2").json()["size"] == len(CANARY2)
    log = ui_server.output()
    assert CANARY not in log and CANARY2 not in log and "Traceback" not in log


def test_ui_command_line_errors_are_one_line():
    from tests.conftest import run_launch

    bad_port = run_launch("ui", "--no-browser", "--port", "70000")
    assert bad_port.returncode == 2 and bad_port.stderr.decode().count("\n") == 1
    assert "--port: 70000" in bad_port.stderr.decode()
    elsewhere = run_launch("ui", "--no-browser", "--port", "1", "--host", "203.0.113.1")
    lines = elsewhere.stderr.decode().splitlines()
    assert elsewhere.returncode == 2 and len(lines) == 2, lines
    assert lines[0].startswith("launch: warning: --host 203.0.113.1") and "cannot listen on 203.0.113.1:1" in lines[1]
    short = run_launch("ui", "--no-browser", env={"LAUNCH_UI_TOKEN": "short"})
    assert short.returncode == 2 and "LAUNCH_UI_TOKEN" in short.stderr.decode()

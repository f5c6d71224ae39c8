"""A real image pull, from a registry on 127.0.0.1 (Debian's docker-registry; no outside registry is reached): the
CLI pulls a missing image and runs it; the console's run form shows the pull's progress while the job starts."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
import uuid

import httpx
import pytest
from conftest import TEST_IMAGE, UIServer, add_secret, engine_required, run_launch

pytestmark = pytest.mark.docker


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def registry(tmp_path_factory, docker_api):
    exe = shutil.which("docker-registry")
    if exe is None:
        message = "docker-registry is not installed (scripts/setup.sh installs it)"
        if engine_required():
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("registry")
    port = _free_port()
    config = root / "config.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\nlog:\n  level: error\n"
    )
    proc = subprocess.Popen([exe, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            pytest.fail("the local registry did not start")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _pushed(docker_api, registry: str) -> str:
    """A fresh tag of the test image pushed to the registry and removed locally: the next run must pull it."""
    image = f"{registry}/pulltest/busybox:{uuid.uuid4().hex[:8]}"
    repo, tag = image.rsplit(":", 1)
    docker_api.tag(TEST_IMAGE, repo, tag)
    for event in docker_api.push(repo, tag=tag, stream=True, decode=True):
        assert "error" not in event, event
    docker_api.remove_image(image)
    return image


def test_the_cli_pulls_a_missing_image_and_runs_it(docker, registry):
    add_secret("tok", "pull-canary")
    image = _pushed(docker, registry)
    result = run_launch("run", "--rm", "--image", image, "-e", "T=secret:tok", "--", "sh", "-c", 'echo "got $T"')
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"got ***\n"
    assert f"pulled {image}".encode() in result.stderr
    docker.remove_image(image)


def test_the_console_shows_a_pulls_progress_while_the_job_starts(docker, registry, launch_home, tmp_path):
    image = _pushed(docker, registry)
    server = UIServer(launch_home, tmp_path)
    seen: list[str] = []
    try:
        with httpx.Client(base_url=server.url, timeout=60, follow_redirects=False) as http:
            assert http.get(f"/?token={server.token}").status_code == 303
            page = http.get("/jobs").text
            csrf = page.split('name="_csrf" value="', 1)[1].split('"', 1)[0]
            ticket = page.split('name="_ticket" id="run-ticket" value="', 1)[1].split('"', 1)[0]
            answer: list[httpx.Response] = []
            form = {"_csrf": csrf, "_ticket": ticket, "image": image, "command": "sleep 5", "name": "pulled-job"}
            post = threading.Thread(target=lambda: answer.append(http.post("/jobs", data=form)))
            post.start()
            while post.is_alive():
                line = http.get(f"/jobs/progress/{ticket}").json()["line"]
                if line and line not in seen:
                    seen.append(line)
                time.sleep(0.02)
            post.join()
            assert answer[0].status_code == 303, answer[0].text[-2000:]
            assert http.get(f"/jobs/progress/{ticket}").json()["line"] == ""  # forgotten once the job runs
        assert seen, "no progress was shown while the image was pulled"
        assert any(image in line or "Pull" in line or "Download" in line or "Digest" in line for line in seen), seen
    finally:
        server.stop()
        run_launch("rm", "--force", "pulled-job")
        docker.remove_image(image, force=True)

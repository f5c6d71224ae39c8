"""The console in a real headless Chromium (Debian's chromium + chromium-driver, driven by selenium) against a real
server process, store and engine: create a secret, build a template with the secret picker, run it, watch the
masked logs, edit the value, delete by typing the name. A screenshot of each page is kept in docs/."""

from __future__ import annotations

import os

import pytest

from tests.conftest import REPO, engine_required, wait_for

CANARY = "CANARY-browser-5c0ffee"
DOCS = REPO / "docs"
CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture
def browser(tmp_path):
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        message = "no chromium / chromium-driver (apt-get install chromium chromium-driver; scripts/setup.sh does)"
        if engine_required():
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1000"):
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium'}")
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def shot(driver, name: str) -> None:
    DOCS.mkdir(exist_ok=True)
    driver.save_screenshot(str(DOCS / f"console-{name}.png"))


def never_shown(driver) -> None:
    assert CANARY not in driver.page_source
    for field in driver.find_elements("css selector", "input[type=password]"):
        assert field.get_attribute("value") == ""


@pytest.mark.docker
def test_create_pick_run_watch_edit_delete(browser, ui_server, docker, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    b = browser
    b.get(f"{ui_server.url}/?token={ui_server.token}")
    assert b.current_url == f"{ui_server.url}/secrets"  # the token left the URL for a session cookie
    assert not any(c["name"] == "launch_session" and not c["httpOnly"] for c in b.get_cookies())

    # create a secret with the masked field, and one from a file (exact bytes)
    b.find_element(By.ID, "name").send_keys("api_token")
    b.find_element(By.ID, "description").send_keys("the service's key")
    b.find_element(By.ID, "value").send_keys(CANARY)
    assert b.find_element(By.ID, "value").get_attribute("type") == "password"
    b.find_element(By.ID, "create").click()
    assert "created secret api_token" in b.find_element(By.ID, "notice").text
    never_shown(b)
    upload = tmp_path / "cert.pem"
    upload.write_bytes(b"-----BEGIN X-----\n\x00\x01binary\n")
    b.get(f"{ui_server.url}/secrets")
    b.find_element(By.ID, "name").send_keys("cert")
    b.find_element(By.ID, "file").send_keys(str(upload))
    b.find_element(By.ID, "create").click()
    assert "created secret cert" in b.find_element(By.ID, "notice").text
    assert f"{upload.stat().st_size} bytes" in b.find_element(By.ID, "details").text
    b.get(f"{ui_server.url}/secrets")
    rows = [r.get_attribute("data-name") for r in b.find_elements(By.CSS_SELECTOR, "#secrets tbody tr")]
    assert rows == ["api_token", "cert"]
    never_shown(b)
    shot(b, "secrets")

    # a template built with the picker
    b.get(f"{ui_server.url}/templates/new")
    b.find_element(By.ID, "template-name").send_keys("hello")
    area = b.find_element(By.ID, "yaml")
    area.clear()
    area.send_keys(
        "image: launch-test/busybox:latest\n"
        'command: [sh, -c, \'echo "token: $TOKEN"; echo "url: $URL"; wc -c < /run/secrets/cert; sleep 300\']\n'
        "env:\n  TOKEN: "
    )
    Select(b.find_element(By.ID, "picker-secret")).select_by_value("api_token")
    Select(b.find_element(By.ID, "picker-kind")).select_by_value("env")
    b.find_element(By.ID, "picker-insert").click()
    area.send_keys('\n  URL: "https://x:')
    Select(b.find_element(By.ID, "picker-kind")).select_by_value("runpod")
    b.find_element(By.ID, "picker-insert").click()
    area.send_keys('@host/"\nvolumes:\n  - ')
    Select(b.find_element(By.ID, "picker-secret")).select_by_value("cert")
    Select(b.find_element(By.ID, "picker-kind")).select_by_value("file")
    b.find_element(By.ID, "picker-insert").click()
    text = area.get_attribute("value")
    assert "TOKEN: secret:api_token" in text and "{{ RUNPOD_SECRET_api_token }}" in text
    assert "- secret:cert:/run/secrets/cert" in text
    shot(b, "template")
    # an error is shown with line:col, and the YAML stays as typed
    area.send_keys("\nimagee: typo")
    b.find_element(By.ID, "save-template").click()
    error = b.find_element(By.ID, "error").text
    assert error.startswith("hello.yaml:8:1:") and "did you mean" in error
    area = b.find_element(By.ID, "yaml")
    area.send_keys("\b" * len("\nimagee: typo"))
    b.find_element(By.ID, "save-template").click()
    assert "template saved" in b.find_element(By.ID, "notice").text

    # run it, watch the masked logs
    b.get(f"{ui_server.url}/jobs?template=hello")
    assert Select(b.find_element(By.ID, "run-template")).first_selected_option.get_attribute("value") == "hello"
    b.find_element(By.ID, "run-name").send_keys("from-the-console")
    b.find_element(By.ID, "run").click()
    assert "started job" in b.find_element(By.ID, "notice").text
    job_id = b.find_element(By.ID, "logs").get_attribute("data-job")
    logs = wait_for(lambda: "bytes" in (t := b.find_element(By.ID, "logs").text) or ("\n" in t and t), 30, "logs")
    wait_for(lambda: "url:" in b.find_element(By.ID, "logs").text, 30, "the url line")
    logs = b.find_element(By.ID, "logs").text
    assert "token: ***" in logs and "url: https://x:***@host/" in logs and CANARY not in logs
    never_shown(b)
    shot(b, "job")

    # edit the value: a new version; the running job holds the old one
    b.get(f"{ui_server.url}/secrets/api_token")
    b.find_element(By.ID, "new-value").send_keys(CANARY + "-v2")
    b.find_element(By.ID, "save-value").click()
    assert "version 2" in b.find_element(By.ID, "notice").text
    assert "holds an old version" in b.find_element(By.ID, "jobs").text
    b.get(f"{ui_server.url}/jobs")
    assert "(old)" in b.find_element(By.CSS_SELECTOR, f'#jobs tr[data-id="{job_id}"]').text
    shot(b, "jobs")

    # delete by typing the name: warned that a running job and a saved template use it
    b.get(f"{ui_server.url}/secrets/api_token")
    assert job_id in b.find_element(By.ID, "in-use").text
    assert "hello" in b.find_element(By.ID, "templates").text
    button = b.find_element(By.ID, "delete")
    assert not button.is_enabled()
    b.find_element(By.ID, "confirm").send_keys("api_toke")
    assert not button.is_enabled()
    b.find_element(By.ID, "confirm").send_keys("n")
    assert button.is_enabled()
    never_shown(b)
    shot(b, "secret")
    button.click()  # refused: a running job uses it and "delete anyway" is not ticked
    assert "in use by running jobs" in b.find_element(By.ID, "error").text
    b.get(f"{ui_server.url}/jobs/{job_id}")
    b.find_element(By.ID, "stop").click()
    assert "stopped job" in b.find_element(By.ID, "notice").text
    b.get(f"{ui_server.url}/secrets/api_token")
    b.find_element(By.ID, "confirm").send_keys("api_token")
    b.find_element(By.ID, "delete").click()
    assert "deleted secret api_token" in b.find_element(By.ID, "notice").text
    names = [r.get_attribute("data-name") for r in b.find_elements(By.CSS_SELECTOR, "#secrets tbody tr")]
    assert names == ["cert"]
    b.get(f"{ui_server.url}/jobs/{job_id}")
    b.find_element(By.ID, "remove").click()
    assert "removed job" in b.find_element(By.ID, "notice").text
    b.get(f"{ui_server.url}/templates")
    shot(b, "templates")
    log = ui_server.output()
    assert CANARY not in log and "Traceback" not in log


def test_a_page_without_the_token_is_refused(browser, ui_server):
    browser.get(f"{ui_server.url}/secrets")
    assert "Unauthorized" in browser.page_source and "Create a secret" not in browser.page_source

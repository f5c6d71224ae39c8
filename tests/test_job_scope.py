"""Issue 13 through the real CLI and engine: jobs belong to the store that started them (`ps` shows this store's,
`--all-stores` every one); `logs` masks the version a job holds after `secret edit`; one time format in
`inspect` and `ps --json`, nothing for what has not happened."""

from __future__ import annotations

import json
import re

import pytest
from conftest import add_secret, detach, run_launch, sh_job, wait_for

from launcher import jobs as jobmod
from launcher.store import Store

ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
LOOP = "echo value=$T; trap 'exit 0' TERM; while true; do sleep 0.1; done"


def ps_json(*flags: str, env: dict | None = None) -> list[dict]:
    result = run_launch("ps", "--json", *flags, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.docker
def test_ps_shows_this_stores_jobs_and_all_stores_shows_every_one(docker, tmp_path, launch_home):
    other = {"LAUNCH_HOME": str(tmp_path / "other-store")}
    add_secret("tok", "mine-0123456789")
    assert run_launch("secret", "add", "tok", "-", input="theirs-0123456789\n", env=other).returncode == 0
    mine = detach(*sh_job(LOOP))
    theirs_run = run_launch("run", "--detach", *sh_job(LOOP), env=other)
    assert theirs_run.returncode == 0, theirs_run.stderr
    theirs = theirs_run.stdout.decode().strip()
    try:
        ids = [row["id"] for row in ps_json()]
        assert mine in ids and theirs not in ids
        assert theirs not in run_launch("ps", "-a").stdout.decode()
        every = {row["id"]: row for row in ps_json("--all-stores")}
        assert mine in every and theirs in every
        tags = {every[mine]["store"], every[theirs]["store"]}
        assert len(tags) == 2 and all(re.fullmatch(r"[0-9a-f]{20}", tag) for tag in tags)
        assert every[mine]["store"] == Store.open().tag()
        assert [row["id"] for row in ps_json(env=other) if row["id"] in (mine, theirs)] == [theirs]
        # another store's job: reachable by its full id, not by a prefix; its output is not masked with our values
        assert run_launch("logs", theirs[:6]).returncode == 3
        wait_for(lambda: b"value=" in run_launch("logs", theirs).stdout, what="the other job's output")
        logs = run_launch("logs", theirs)
        assert logs.returncode == 0
        assert f"job {theirs} was not started from this store".encode() in logs.stderr
        assert run_launch("inspect", theirs).returncode == 0
        # a store with none of the jobs says where the others are
        empty = {"LAUNCH_HOME": str(tmp_path / "empty-store")}
        listing = run_launch("ps", env=empty)
        assert listing.returncode == 0 and listing.stdout == b""
        assert b"--all-stores" in listing.stderr
    finally:
        docker.remove_container(
            docker.containers(all=True, filters={"label": f"launch.job={theirs}"})[0]["Id"], force=True
        )


@pytest.mark.docker
def test_logs_mask_the_version_a_job_holds_after_an_edit(docker):
    old, new = "old-value-0123456789", "new-value-9876543210"
    add_secret("tok", old)
    job = detach(*sh_job(LOOP))
    wait_for(lambda: b"value=" in run_launch("logs", job).stdout, what="the job's output")
    edit = run_launch("secret", "edit", "tok", "-", input=new + "\n")
    assert edit.returncode == 0, edit.stderr
    logs = run_launch("logs", job)
    assert logs.stdout == b"value=***\n"
    assert old.encode() not in logs.stdout + logs.stderr
    assert b"warning" not in logs.stderr
    assert b"(old)" in run_launch("ps").stderr  # still flagged as holding an edited secret
    # the old version is kept (sealed) while the job exists, and dropped once it is removed
    assert Store.open().reveal_versions({"tok": 1})[1] == []
    assert run_launch("rm", "--force", job).returncode == 0
    assert Store.open().reveal_versions({"tok": 1})[1] == ["tok v1"]


@pytest.mark.docker
def test_logs_warn_when_a_held_version_is_gone(docker):
    add_secret("tok", "gone-value-0123456789")
    job = detach(*sh_job(LOOP))
    wait_for(lambda: b"value=" in run_launch("logs", job).stdout, what="the job's output")
    assert run_launch("secret", "rm", "--yes", "--force", "tok").returncode == 0
    logs = run_launch("logs", job)
    assert logs.returncode == 0
    assert "launch: warning: cannot mask secrets no longer in the store: tok v1" in logs.stderr.decode()


@pytest.mark.docker
def test_inspect_and_ps_use_one_time_format(docker):
    add_secret("tok", "time-value-0123456789")
    job = detach("--life-span", "1h", *sh_job(LOOP))
    data = json.loads(run_launch("inspect", "--json", job).stdout)
    assert ISO.fullmatch(data["created"]) and ISO.fullmatch(data["started_at"]) and ISO.fullmatch(data["deadline"])
    assert data["finished_at"] is None  # running: it has not finished
    text = run_launch("inspect", job).stdout.decode()
    assert "0001-01-01" not in text and not re.search(r"created: [0-9.]+$", text, re.M)
    assert re.search(r"^created: '?\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ'?$", text, re.M)
    (row,) = [r for r in ps_json() if r["id"] == job]
    assert ISO.fullmatch(row["created"])
    assert run_launch("stop", "-t", "1", job).returncode == 0
    ended = json.loads(run_launch("inspect", "--json", job).stdout)
    assert ISO.fullmatch(ended["finished_at"]) and ended["finished_at"] >= ended["started_at"]


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (1796276271.0, "2026-12-03T05:37:51Z"),
        ("2026-12-03T11:37:51.123456789Z", "2026-12-03T11:37:51Z"),
        ("2026-12-03T13:37:51.5+02:00", "2026-12-03T11:37:51Z"),
        ("0001-01-01T00:00:00Z", None),
        ("", None),
        (None, None),
        (0, None),
    ],
)
def test_iso_time(value, shown):
    assert jobmod.iso_time(value) == shown

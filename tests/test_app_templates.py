"""Saved templates (launcher.app.templates) on a real launch home: validated before they are written, private,
never a built-in's name, and found by `launch run NAME` after files and built-ins."""

from __future__ import annotations

import os
import stat

import pytest

from launcher.app import templates
from launcher.errors import Conflict, NotFound, TemplateError, UsageError
from tests.conftest import run_launch

GOOD = "description: mine\nimage: launch-test/busybox:latest\nenv:\n  T: secret:tok\n"


def test_save_list_find_delete(launch_home, tmp_path, monkeypatch):
    info = templates.save("mine", GOOD, create=True)
    assert not info.builtin and info.description == "mine"
    assert stat.S_IMODE(os.stat(info.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(templates.folder()).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(launch_home).st_mode) == 0o700  # the store accepts the home a save made
    assert [t.name for t in templates.list_templates() if not t.builtin] == ["mine"]
    assert templates.using_secret("tok") == ["mine"] and templates.using_secret("other") == []
    assert templates.find("mine") == info.path
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").write_text("image: x\n")  # a file of that name comes first, as before
    assert templates.find("mine").resolve() == tmp_path / "mine"
    templates.delete("mine")
    with pytest.raises(NotFound, match="no saved template 'mine'"):
        templates.delete("mine")


def test_an_invalid_template_is_not_written_and_names_line_and_column():
    with pytest.raises(TemplateError, match=r"^bad\.yaml:2:1: unknown key 'imagee'"):
        templates.save("bad", "image: x\nimagee: y\n", create=True)
    assert templates.saved_names() == []


def test_names_that_cannot_be_saved():
    with pytest.raises(Conflict, match="built-in"):
        templates.save("jupyter", GOOD, create=True)
    for name in ("../escape", ".hidden", "a/b", ""):
        with pytest.raises(UsageError, match="invalid template name"):
            templates.save(name, GOOD, create=True)
    templates.save("once", GOOD, create=True)
    with pytest.raises(Conflict, match="exists already"):
        templates.save("once", GOOD, create=True)
    with pytest.raises(NotFound):
        templates.save("never", GOOD, create=False)


def test_the_cli_lists_shows_and_runs_a_saved_template():
    templates.save("mine", GOOD, create=True)
    listed = run_launch("templates", "ls")
    assert listed.returncode == 0 and any(
        line.split()[:2] == ["mine", "mine"] for line in listed.stdout.decode().splitlines()
    )
    shown = run_launch("templates", "show", "mine")
    assert shown.stdout.decode() == GOOD
    missing = run_launch("run", "--dry-run", "mine")  # found, then its secret is missing: exit 3 naming it
    assert missing.returncode == 3 and "tok" in missing.stderr.decode()
    unknown = run_launch("run", "nope")
    assert unknown.returncode == 3 and "saved: mine" in unknown.stderr.decode()

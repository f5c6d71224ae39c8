"""Pure pieces of the Docker runtime and job model, tested without an engine."""

from __future__ import annotations

import os
import subprocess

import pytest

from launcher import jobs as jobmod
from launcher.errors import NotFound, UsageError
from launcher.runtime import docker as rt
from launcher.runtime import secretfs
from launcher.spec import BindMount, EnvVar, Port, Resources, Restart, SecretFile, SecretRef, Spec


class FakePlan:
    """Just the attributes a Plan has (launcher.plan.Plan); the runtime reads nothing else."""

    def __init__(self, spec, env=(), secret_env=(), files=(), versions=None):
        self.spec, self.env, self.secret_env, self.files = spec, env, secret_env, files
        self.versions = versions or {}


IMAGE = rt.ImageConfig(entrypoint=("/bin/entry",), cmd=("serve", "--port", "80"), user="app", workdir="/w")


def test_job_argv_follows_docker_rules():
    spec = Spec(image="x")
    assert rt.job_argv(FakePlan(spec), IMAGE) == ["/bin/entry", "serve", "--port", "80"]
    assert rt.job_argv(FakePlan(Spec(image="x", command=("a", "b"))), IMAGE) == ["/bin/entry", "a", "b"]
    # a new entrypoint drops the image's CMD, as `docker run --entrypoint` does
    assert rt.job_argv(FakePlan(Spec(image="x", entrypoint=("/bin/sh",))), IMAGE) == ["/bin/sh"]
    assert rt.job_argv(FakePlan(Spec(image="x", entrypoint=("/bin/sh",), command=("-c", "true"))), IMAGE) == [
        "/bin/sh",
        "-c",
        "true",
    ]


def test_container_args_sealed_env_keeps_values_out_of_the_config():
    canary = "canary-3b1f'\"$x\nline2"
    spec = Spec(
        image="img",
        env=(EnvVar("PLAIN", ("v",)), EnvVar("TOKEN", (SecretRef("tok"),))),
        secret_files=(SecretFile("cert", "/run/secrets/cert", 0o440),),
        binds=(BindMount("/data", "/data", True),),
        ports=(Port(8888),),
        resources=Resources(cpus=1.5, memory=1 << 30, gpus=-1),
        restart=Restart("on-failure", 3),
        network="none",
        user="1000:1000",
        workdir="/w",
    )
    plan = FakePlan(spec, env=(("PLAIN", "v"),), secret_env=(("TOKEN", canary),), files=((spec.secret_files[0], b"c"),))
    args = rt.container_args(
        plan, "abc", image=IMAGE, secret_dir="/dev/shm/x", labels={"l": "1"}, sealed=True, options=rt.RunOptions()
    )
    assert canary not in repr(args)
    create, host = args["create"], args["host_config"]
    assert create["environment"] == ["PLAIN=v"]
    assert create["entrypoint"] == ["/bin/sh", rt.SHIM_PATH]
    assert create["command"] == ["/bin/entry", "serve", "--port", "80"]
    assert create["name"] == "launch-abc"
    assert create["user"] == "1000:1000" and create["working_dir"] == "/w"
    assert host["binds"] == [
        "/dev/shm/x/f0:/run/secrets/cert:ro",
        "/data:/data:ro",
        f"/dev/shm/x/shim:{rt.SHIM_PATH}:ro",
        f"/dev/shm/x/env:{rt.ENV_PATH}:ro",
    ]
    assert host["port_bindings"] == {"8888/tcp": ("127.0.0.1", 8888)}
    assert host["restart_policy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert host["nano_cpus"] == 1_500_000_000 and host["mem_limit"] == 1 << 30
    assert host["device_requests"][0]["Count"] == -1
    assert host["network_mode"] == "none"


def test_container_args_plain_env_is_explicit():
    spec = Spec(image="img", env=(EnvVar("TOKEN", (SecretRef("tok"),)),), command=("env",))
    plan = FakePlan(spec, secret_env=(("TOKEN", "v1"),))
    args = rt.container_args(
        plan, "abc", image=IMAGE, secret_dir=None, labels={}, sealed=False, options=rt.RunOptions()
    )
    assert args["create"]["environment"] == ["TOKEN=v1"]
    assert args["create"]["entrypoint"] is None and args["create"]["command"] == ["env"]


@pytest.mark.parametrize(
    "value",
    ["plain", "it's", 'double "quoted"', "$HOME `id` $(id) \\n", "multi\nline\n", "unicode: é ✓", " lead", ""],
)
def test_env_file_round_trips_through_a_real_shell(value, tmp_path):
    env_file = tmp_path / "env"
    env_file.write_bytes(rt.env_file_bytes((("V", value), ("W", "x"))))
    out = subprocess.run(
        ["/bin/busybox", "sh", "-c", f'. {env_file}; printf %s "$V"'], capture_output=True, check=True
    ).stdout
    assert out.decode() == value


PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n"
GROUP = "root:x:0:\nstaff:x:50:\napp:x:1001:\n"


def _files(path):
    return {"/etc/passwd": PASSWD, "/etc/group": GROUP}.get(path)


@pytest.mark.parametrize(
    "user, expected",
    [
        ("", (0, 0)),
        ("app", (1000, 1001)),
        ("1000", (1000, 1001)),
        ("4242", (4242, 0)),
        ("app:staff", (1000, 50)),
        ("1000:77", (1000, 77)),
        ("root", (0, 0)),
    ],
)
def test_resolve_user_like_the_engine(user, expected):
    assert rt.resolve_user(user, _files) == expected


def test_resolve_user_unknown_names_are_clear_errors():
    with pytest.raises(UsageError, match="'ghost' is not in the image's /etc/passwd"):
        rt.resolve_user("ghost", _files)
    with pytest.raises(UsageError, match="group 'nope'"):
        rt.resolve_user("app:nope", _files)


@pytest.mark.parametrize(
    "text, seconds", [("90s", 90), ("30m", 1800), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), (" 5M ", 300)]
)
def test_parse_duration(text, seconds):
    assert jobmod.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "0s", "10", "1x", "m5", "1h 30m", "-1h"])
def test_parse_duration_rejects(text):
    with pytest.raises(UsageError, match="invalid duration"):
        jobmod.parse_duration(text)


def _job(id, name=None):
    return jobmod.Job(id=id, name=name, image="i", status="running", created=0, exit_code=None)


def test_match_by_id_prefix_and_name():
    jobs = [_job("abc1230000", "web"), _job("abd4560000"), _job("ffff000000", "abc"), _job("abc1990000")]
    assert jobmod.match(jobs, "abc1230000").id == "abc1230000"
    assert jobmod.match(jobs, "web").id == "abc1230000"
    assert jobmod.match(jobs, "abd4").id == "abd4560000"
    assert jobmod.match(jobs, "abc").id == "ffff000000"  # an exact name beats an id prefix, however short
    with pytest.raises(UsageError, match="ambiguous"):
        jobmod.match(jobs, "abc1")
    with pytest.raises(UsageError, match="at least 4 characters"):
        jobmod.match(jobs, "abd")  # a prefix shorter than 4 names nothing
    with pytest.raises(NotFound):
        jobmod.match(jobs, "zzzz")


def test_labels_hold_names_and_versions_only():
    labels = jobmod.job_labels("j1", "web", {"tok": 2}, {"env": {"T": "secret:tok"}}, deadline=100.4, remove=True)
    assert labels[jobmod.LABEL_JOB] == "j1" and labels[jobmod.LABEL_NAME] == "web"
    assert jobmod.secrets_from_labels(labels) == {"tok": 2}
    assert labels[jobmod.LABEL_DEADLINE] == "100" and labels[jobmod.LABEL_RM] == "1"


def test_secret_dir_files_are_private_and_exclusive(monkeypatch, tmp_path):
    d = secretfs.SecretDir.create("job1")
    try:
        assert secretfs.is_tmpfs(d.path)
        assert os.stat(d.path).st_mode & 0o777 == 0o700
        path = d.write("f0", b"value", 0o400, os.getuid(), os.getgid())
        st = os.stat(path)
        assert st.st_mode & 0o777 == 0o400
        with pytest.raises(FileExistsError):
            d.write("f0", b"again")
        os.symlink("/etc/passwd", os.path.join(d.path, "link"))
        with pytest.raises(FileExistsError):  # O_EXCL|O_NOFOLLOW never writes through a planted link
            d.write("link", b"x")
        with pytest.raises(ValueError):
            d.write("../escape", b"x")
    finally:
        d.remove()
    assert not os.path.exists(d.path)


def test_sweep_spares_live_and_locked_folders():
    live = secretfs.SecretDir.create("live1")
    busy = secretfs.SecretDir.create("busy1")  # born locked: its launcher is still setting it up
    dead = secretfs.SecretDir.create("dead1")
    live.release()
    dead.release()  # its launcher is gone
    try:
        assert not secretfs.unlocked(busy.path) and secretfs.unlocked(dead.path)
        removed = secretfs.sweep({"live1"})
        assert dead.path in removed
        assert os.path.exists(live.path) and os.path.exists(busy.path) and not os.path.exists(dead.path)
    finally:
        live.remove()
        busy.remove()
        dead.remove()


def test_a_folder_is_locked_before_sweep_can_see_it(monkeypatch):
    """SecretDir.create makes the folder under a name sweep ignores, locks it, then renames it into place."""
    seen = []
    real_rename = os.rename

    def spy(src, dst):
        seen.append((os.path.basename(src), secretfs.leftovers()))
        assert not secretfs.unlocked(src)
        real_rename(src, dst)

    monkeypatch.setattr(secretfs.os, "rename", spy)
    d = secretfs.SecretDir.create("job2")
    try:
        ((name, visible),) = seen
        assert name.startswith(secretfs.NEW_PREFIX)
        assert all(job != "job2" for job, _ in visible)  # not a leftover while unborn
        assert d.path not in secretfs.sweep(set())  # locked by its launcher (this process)
        assert os.path.exists(d.path)
    finally:
        d.remove()


def test_base_dir_refuses_a_non_tmpfs(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))  # tmp_path is on disk here
    if secretfs.is_tmpfs(str(tmp_path)):
        pytest.skip("tmp_path is itself on a tmpfs")
    assert secretfs.base_dir() == "/dev/shm"

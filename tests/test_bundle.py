"""The bundle and the shim as pure logic, and the printf encoding through real shells (dash and busybox ash)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest

from launcher.errors import UsageError
from launcher.plan import resolve
from launcher.runtime import bundle
from launcher.runtime.common import ImageConfig, RunOptions
from launcher.runtime.docker import container_args
from launcher.spec import BindMount, EnvVar, SecretFile, SecretRef, Spec

SHELLS = [s for s in ("/bin/dash", "/bin/busybox") if os.path.exists(s)]


class _Value:
    def __init__(self, value: bytes, version: int = 1):
        self.value, self.version = value, version


def _plan(files=(), env=(), binds=()):
    spec = Spec(
        image="img",
        command=("run",),
        env=tuple(EnvVar(name, (SecretRef(key),)) for name, key in env),
        secret_files=tuple(SecretFile(key, target) for key, target in files),
        binds=tuple(binds),
    )
    values = {
        "bin": _Value(bytes(range(256)) * 3),
        "text": _Value("multi\nline 'quoted' \\ % $HOME `x` é\n\n".encode()),
        "dash": _Value(b"-n not an option"),
    }
    return resolve(spec, values)


def _shell(sh: str) -> list[str]:
    return [sh, "sh"] if sh.endswith("busybox") else [sh]


@pytest.mark.parametrize("sh", SHELLS)
def test_printf_format_prints_every_byte_exactly(sh):
    for data in (bytes(range(256)), b"-e\\n%s%%'\"\n\n", b"\x00\x00end", "ünï".encode()):
        out = subprocess.run([*_shell(sh), "-c", 'printf "$1"', "sh", bundle.printf_format(data)], capture_output=True)
        assert out.returncode == 0 and out.stdout == data, (sh, data)


def test_the_bundle_is_framed_counted_and_checksummed():
    plan = _plan(files=[("bin", "/run/secrets/b")], env=[("TEXT", "text")])
    made = bundle.build(plan)
    header, _, payload = made.data.partition(b"\n")
    magic, version, lines, digest, end = header.decode().split()
    assert (magic, version) == ("launch-bundle", "1")
    assert int(lines) == payload.count(b"\n") == made.lines
    assert digest == hashlib.sha256(payload).hexdigest()
    assert payload.endswith(f": launch-end {end}\n".encode())
    assert "bytes=" in repr(made) and "multi" not in repr(made)  # no value in its repr


@pytest.mark.parametrize("sh", SHELLS)
def test_the_bundles_code_exports_and_writes_exactly(sh, tmp_path):
    """Source the bundle's body in a real shell, with the shim's `_f`, as the shim does (targets moved to tmp)."""
    plan = _plan(files=[("bin", "/run/secrets/b"), ("dash", "/run/secrets/d")], env=[("TEXT", "text")])
    payload = bundle.build(plan).data.partition(b"\n")[2].decode().replace("/run/secrets", str(tmp_path))
    script = tmp_path / "body"
    script.write_text(payload)
    shim_f = next(line for line in bundle.SHIM.splitlines() if line.startswith("_f()"))
    code = f'_no() {{ echo "$*" >&2; exit 126; }}\n{shim_f}\n. {script}\nprintf %s "$TEXT"'
    out = subprocess.run([*_shell(sh), "-c", code], capture_output=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "multi\nline 'quoted' \\ % $HOME `x` é\n\n".encode()
    assert (tmp_path / "b").read_bytes() == bytes(range(256)) * 3
    assert (tmp_path / "d").read_bytes() == b"-n not an option"
    assert oct((tmp_path / "b").stat().st_mode & 0o777) == "0o400"


def test_container_config_holds_no_value():
    plan = _plan(files=[("bin", "/run/secrets/b")], env=[("TEXT", "text")])
    args = container_args(
        plan, "job1", image=ImageConfig(("/entry",), ("cmd",), "", ""), labels={}, options=RunOptions()
    )
    config = args["config"]
    text = json.dumps(config)
    assert "multi" not in text and "TEXT=" not in text
    assert config["Entrypoint"][:2] == ["/bin/sh", "-c"] and config["Entrypoint"][-1] == "run"
    assert config["OpenStdin"] and config["StdinOnce"] and config["AttachStdin"]
    assert set(config["HostConfig"]["Tmpfs"]) == {"/.launch", "/run/secrets"}
    assert all("mode=1777" in o and "noexec" in o for o in config["HostConfig"]["Tmpfs"].values())


def test_plain_env_goes_to_docker_env_and_needs_no_shim():
    plan = _plan(env=[("TEXT", "text")])
    args = container_args(
        plan, "job1", image=ImageConfig((), ("cmd",), "", ""), labels={}, options=RunOptions(plain_env=True)
    )
    assert not args["config"]["OpenStdin"] and "Tmpfs" not in args["config"]["HostConfig"]
    assert any(e.startswith("TEXT=multi") for e in args["config"]["Env"])


@pytest.mark.parametrize("target", ["/cert.pem", "/proc/x", "/.launch/x", "/dev/k"])
def test_folders_that_cannot_hold_secret_files_are_refused(target):
    with pytest.raises(UsageError, match="cannot hold secret files"):
        bundle.file_folders(_plan(files=[("bin", target)]))


def test_a_secret_folder_that_is_also_a_volume_is_refused():
    with pytest.raises(UsageError, match="also a volume mount"):
        bundle.file_folders(_plan(files=[("bin", "/data/key")], binds=[BindMount("/srv", "/data")]))


def test_shim_recognised_in_top_output():
    assert bundle.is_shim(" ".join(bundle.shim_entrypoint(["python", "train.py"])).replace("\n", " "))
    assert not bundle.is_shim("python train.py")
    assert not bundle.is_shim("/bin/sh -c echo launch-shim")

"""Command-line overrides on a template, and the final validation of a job."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from launcher import overrides, template
from launcher.errors import ExitCode, NotFound, TemplateError, UsageError
from launcher.spec import BindMount, EnvVar, SecretFile, SecretRef, Spec

CANARY = "sk-CANARY-4f9a1c"

TEMPLATE = """\
image: base:1
command: [echo, template]
env:
  X: secret:a
  Y: from-template
  Z: from-template
  PW_FILE: secret-file:pw
volumes:
  - secret:a:/s/file
  - /host/data:/data
"""


def spec_of(text: str = TEMPLATE) -> Spec:
    return template.parse(textwrap.dedent(text), "job.yaml", Path("/tpl"))


def apply(spec: Spec | None = None, environ: dict[str, str] | None = None, **kwargs) -> Spec:
    return overrides.apply(spec if spec is not None else spec_of(), environ=environ or {}, **kwargs)


def env_of(spec: Spec) -> dict[str, tuple]:
    return {v.name: v.parts for v in spec.env}


def usage_error(**kwargs) -> str:
    with pytest.raises(UsageError) as info:
        apply(**kwargs)
    assert info.value.code == ExitCode.USAGE
    return str(info.value)


def test_no_overrides_keep_the_template():
    spec = spec_of()
    assert apply(spec) == spec


def test_precedence_template_then_env_files_then_env_flags(tmp_path):
    first = tmp_path / "first.env"
    first.write_text("Y=from-first\nZ=from-first\nW=from-first\n")
    second = tmp_path / "second.env"
    second.write_text("Z=from-second\n")
    spec = apply(
        env_files=[str(first), str(second)],
        env=["W=from-flag", "W=from-last-flag", "NEW=1"],
    )
    env = env_of(spec)
    assert env["X"] == (SecretRef("a"),)
    assert env["Y"] == ("from-first",)
    assert env["Z"] == ("from-second",)
    assert env["W"] == ("from-last-flag",)
    assert env["NEW"] == ("1",)
    assert list(env)[:4] == ["X", "Y", "Z", "PW_FILE"], "overridden variables keep their place"


def test_env_flag_values_follow_the_reference_rules():
    env = env_of(
        apply(
            env=[
                "A=secret:b",
                "B=postgres://u:{{ RUNPOD_SECRET_db }}@h/d",
                "C=\\secret:literal",
                "D=",
                "E=a=b=c",
                "F_FILE=secret-file:cert",
            ]
        )
    )
    assert env["A"] == (SecretRef("b"),)
    assert env["B"] == ("postgres://u:", SecretRef("db"), "@h/d")
    assert env["C"] == ("secret:literal",)
    assert env["D"] == ()
    assert env["E"] == ("a=b=c",)
    assert env["F_FILE"] == ("/run/secrets/cert",)


def test_env_flag_secret_file_adds_the_file():
    spec = apply(env=["CERT_FILE=secret-file:cert"])
    assert SecretFile("cert", "/run/secrets/cert", 0o400, "--env CERT_FILE") in spec.secret_files


def test_env_flag_without_value_copies_the_callers_environment_literally():
    spec = apply(env=["HOME_DIR", "LOOKS_LIKE_REF"], environ={"HOME_DIR": "/home/u", "LOOKS_LIKE_REF": "secret:x"})
    env = env_of(spec)
    assert env["HOME_DIR"] == ("/home/u",)
    assert env["LOOKS_LIKE_REF"] == ("secret:x",), "a value from the environment is never interpreted"
    assert "x" not in spec.secret_keys()


def test_env_flag_missing_from_the_environment():
    assert usage_error(env=["NOT_SET"]) == (
        "--env NOT_SET: NOT_SET is not set in your environment (write NOT_SET=VALUE to set it)"
    )


def test_env_flag_origins():
    spec = apply(env=["Q=1"])
    assert [v.origin for v in spec.env if v.name == "Q"] == ["--env Q"]


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        ("A B=x", "--env 'A B=...': invalid variable name"),
        ("1A=x", "--env '1A=...': invalid variable name"),
        ("=x", "--env '=...': invalid variable name"),
        ("A=secret:", "--env A: no secret name after 'secret:'"),
        ("A=secret:.bad", "--env A: invalid secret name after 'secret:'"),
        ("A={{ RUNPOD_SECRET_ }}", "--env A: no secret name"),
        ("A=secret-file:", "--env A: no secret name after 'secret-file:'"),
    ],
)
def test_env_flag_errors(arg, expected):
    assert usage_error(env=[arg]).startswith(expected)


def test_env_flag_errors_never_quote_a_value():
    for arg in (f"A B={CANARY}", CANARY, f"{CANARY} x", f"A=secret:{CANARY} x", f"A=x\0{CANARY}"):
        message = usage_error(env=[arg])
        assert CANARY not in message, message
        assert message.startswith("--env")


def test_env_file_entries_and_origins(tmp_path):
    path = tmp_path / "job.env"
    path.write_text(
        "# comment\nexport A=secret:k\nB='{{ RUNPOD_SECRET_j }}'\nC=\"\\\\secret:x\"\nD_FILE=secret-file:f\n"
    )
    spec = apply(env_files=[str(path)])
    by_name = {v.name: v for v in spec.env}
    assert by_name["A"] == EnvVar("A", (SecretRef("k"),), f"{path}:2")
    assert by_name["B"].parts == (SecretRef("j"),)
    assert by_name["C"].parts == ("secret:x",)
    assert by_name["D_FILE"].parts == ("/run/secrets/f",)
    assert SecretFile("f", "/run/secrets/f", 0o400, f"{path}:5") in spec.secret_files


def test_env_file_errors(tmp_path):
    missing = tmp_path / "missing.env"
    with pytest.raises(NotFound, match=r"--env-file .*missing\.env: no such file"):
        apply(env_files=[str(missing)])
    dotted = tmp_path / "dotted.env"
    dotted.write_text("OK=1\na.b=2\n")
    assert usage_error(env_files=[str(dotted)]) == f"{dotted}:2: invalid variable name 'a.b' " + (
        "(use letters, digits and '_', not starting with a digit)"
    )
    bad_ref = tmp_path / "ref.env"
    bad_ref.write_text(f"\nA=secret:{CANARY}!\n")
    message = usage_error(env_files=[str(bad_ref)])
    assert message.startswith(f"{bad_ref}:2: A: invalid secret name")
    assert CANARY not in message
    malformed = tmp_path / "malformed.env"
    malformed.write_text(f"{CANARY}\n")
    message = usage_error(env_files=[str(malformed)])
    assert message == f"{malformed}:1: not a KEY=VALUE line"
    binary = tmp_path / "binary.env"
    binary.write_bytes(b"A=\xff\n")
    assert "not UTF-8" in usage_error(env_files=[str(binary)])
    assert "cannot read" in usage_error(env_files=[str(tmp_path)])


def test_volume_on_a_template_path_replaces_the_templates_mount():
    spec = apply(volumes=["secret:b:/s/file", "/elsewhere:/data:ro"])
    assert [(f.key, f.target) for f in spec.secret_files if f.target == "/s/file"] == [("b", "/s/file")]
    assert spec.binds == (BindMount("/elsewhere", "/data", True, "--volume /elsewhere:/data:ro"),)


def test_volume_adds_new_mounts_and_resolves_relative_paths_against_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = apply(volumes=["./code:/code", "cache:/cache"])
    assert {b.target: b.source for b in spec.binds} == {
        "/data": "/host/data",
        "/code": str(tmp_path / "code"),
        "/cache": "cache",
    }


def test_two_volumes_on_one_path_on_the_command_line_are_an_error():
    message = usage_error(volumes=["/a:/m", "/b:/m"])
    assert message == "--volume /b:/m: two mounts on container path /m (the other at --volume /a:/m)"
    message = usage_error(env=["K_FILE=secret-file:k"], volumes=["/b:/run/secrets/k"])
    assert message.startswith("--volume /b:/run/secrets/k: two mounts on container path /run/secrets/k")


def test_the_same_secret_file_twice_on_the_command_line_is_one_mount():
    spec = apply(env=["A=secret-file:k", "B=secret-file:k"])
    assert [f.target for f in spec.secret_files].count("/run/secrets/k") == 1


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("secret:k:rel", "--volume secret:k:rel: container path 'rel' must be absolute"),
        ("/a:/b/../c", "--volume /a:/b/../c: container path '/b/../c' must not contain '..'"),
        ("nocolon", "--volume nocolon: expected HOST:/container/path"),
        ("/a:/b:rx", "'ro' or 'rw'"),
    ],
)
def test_volume_errors(spec, needle):
    assert needle in usage_error(volumes=[spec])


def test_overriding_a_secret_file_variable_drops_its_file():
    spec = apply(env=["PW_FILE=/mnt/pw"])
    assert env_of(spec)["PW_FILE"] == ("/mnt/pw",)
    assert "pw" not in spec.secret_keys(), "the replaced secret-file: mount is neither mounted nor required"
    assert [f.target for f in spec.secret_files] == ["/s/file"]


def test_overriding_one_of_two_variables_sharing_a_file_keeps_the_file():
    base = spec_of("image: x\nenv:\n  A_FILE: secret-file:k\n  B_FILE: secret-file:k\n")
    spec = apply(base, env=["A_FILE=/other"])
    assert [f.key for f in spec.secret_files] == ["k"]


def test_overriding_a_secret_file_variable_with_another_secret_file():
    spec = apply(env=["PW_FILE=secret-file:pw2"])
    assert {f.key for f in spec.secret_files} == {"a", "pw2"}


def test_image_name_and_command_replace():
    spec = apply(image="other:2", name="job-1", command=["sh", "-c", "echo hi"])
    assert (spec.image, spec.name, spec.command) == ("other:2", "job-1", ("sh", "-c", "echo hi"))


def test_an_empty_command_keeps_the_templates():
    assert apply(command=[]).command == ("echo", "template")
    assert apply(command=None).command == ("echo", "template")


def test_image_and_name_errors():
    assert usage_error(image="two words") == "--image: expected an image name without spaces"
    assert usage_error(image="") == "--image: expected an image name without spaces"
    assert usage_error(name="bad name").startswith("--name: invalid job name 'bad name': use 1 to 63 letters")
    assert usage_error(name="x" * 64).startswith("--name: invalid job name 'xxx")


def test_missing_image():
    with pytest.raises(UsageError) as info:
        overrides.apply(Spec(command=("true",)), environ={})
    assert str(info.value) == "no image: pass --image or use a template with `image:`"
    assert overrides.apply(Spec(), image="busybox", environ={}).image == "busybox"


# --- validate: final checks on any Spec --------------------------------------------------------------------------


def test_validate_returns_a_valid_spec_unchanged():
    spec = spec_of()
    assert overrides.validate(spec) is spec


@pytest.mark.parametrize(
    ("spec", "error", "expected"),
    [
        (Spec(), UsageError, "no image"),
        (
            Spec(image="x", env=(EnvVar("A B", ("x",), "job.yaml:3:3"),)),
            TemplateError,
            "job.yaml:3:3: invalid variable name 'A B'",
        ),
        (Spec(image="x", env=(EnvVar("A-B", ("x",), "--env A-B"),)), UsageError, "--env A-B: invalid variable name"),
        (
            Spec(image="x", env=(EnvVar("A", (), "--env A"), EnvVar("A", (), ".env:2"))),
            UsageError,
            ".env:2: variable A is set twice",
        ),
        (
            Spec(image="x", binds=(BindMount("/h", "rel", False, "job.yaml:5:5"),)),
            TemplateError,
            "job.yaml:5:5: container path 'rel' must be absolute",
        ),
        (
            Spec(image="x", secret_files=(SecretFile("k", "/a/../b", 0o400, "--volume x"),)),
            UsageError,
            "--volume x: container path '/a/../b' must not contain '..'",
        ),
        (
            Spec(
                image="x",
                secret_files=(SecretFile("k", "/m", 0o400, "job.yaml:2:3"),),
                binds=(BindMount("/h", "/m/", False, "job.yaml:4:5"),),
            ),
            TemplateError,
            "job.yaml:4:5: two mounts on container path /m (the other at job.yaml:2:3)",
        ),
        (
            Spec(image="x", secret_files=(SecretFile("k", "/m", 0o400, "a"), SecretFile("k", "/m", 0o400, "b"))),
            UsageError,
            "b: two mounts on container path /m",
        ),
    ],
)
def test_validate_errors(spec, error, expected):
    with pytest.raises(error) as info:
        overrides.validate(spec)
    assert type(info.value) is error
    assert str(info.value).startswith(expected)

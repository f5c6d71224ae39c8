"""YAML templates -> Spec: every key in every form, and every error with its FILE:LINE:COL."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from launcher import template
from launcher.errors import ExitCode, NotFound, TemplateError
from launcher.spec import BindMount, EnvVar, Port, Resources, Restart, SecretFile, SecretRef, Spec

CANARY = "sk-CANARY-4f9a1c"


def parse(text: str, base_dir: Path | None = Path("/tpl")) -> Spec:
    return template.parse(textwrap.dedent(text), "job.yaml", base_dir)


def error(text: str) -> str:
    """The message of the TemplateError that `text` raises (checked to be one line, exit code 6)."""
    with pytest.raises(TemplateError) as info:
        parse(text)
    assert info.value.code == ExitCode.TEMPLATE
    message = str(info.value)
    assert "\n" not in message
    return message


# --- every key, every form ---------------------------------------------------------------------------------------


def test_minimal_template():
    assert parse("image: python:3.11-slim\n") == Spec(image="python:3.11-slim", source="job.yaml")


def test_image_is_optional_in_a_template():
    assert parse("command: [echo, hi]\n").image is None


def test_every_scalar_key():
    spec = parse(
        """
        description: a job
        image: repo/img:1.2
        workdir: /srv/app/
        user: 1000:1000
        restart: on-failure:3
        name: my-job.1
        network: none
        labels: {team: ml, tier: 2}
        backend: swarm
        constraints: [node.labels.gpu==true]
        """
    )
    assert spec.image == "repo/img:1.2"
    assert spec.workdir == "/srv/app"
    assert spec.user == "1000:1000"
    assert spec.restart == Restart("on-failure", 3)
    assert spec.name == "my-job.1"
    assert spec.network == "none"
    assert spec.labels == (("team", "ml"), ("tier", "2"))
    assert spec.backend == "swarm"
    assert spec.constraints == ("node.labels.gpu==true",)


@pytest.mark.parametrize("user", ["1000", "app", "app:staff", "1000:1000"])
def test_user_forms(user):
    assert parse(f"user: {user}\n").user == user


@pytest.mark.parametrize(
    ("text", "restart"),
    [
        ("no", Restart("no")),  # YAML 1.1 would read `no` as false: templates read the text as written
        ('"no"', Restart("no")),
        ("always", Restart("always")),
        ("unless-stopped", Restart("unless-stopped")),
        ("on-failure", Restart("on-failure", 0)),
        ("on-failure:5", Restart("on-failure", 5)),
    ],
)
def test_restart_forms(text, restart):
    assert parse(f"restart: {text}\n").restart == restart


@pytest.mark.parametrize(
    ("text", "argv"),
    [
        ("[python, -c, 'print(1)']", ("python", "-c", "print(1)")),
        ("python main.py --flag 'two words'", ("python", "main.py", "--flag", "two words")),
        ("[sleep, 10, true]", ("sleep", "10", "true")),  # numbers and bools as written
        ("[]", ()),
    ],
)
def test_command_and_entrypoint_forms(text, argv):
    spec = parse(f"command: {text}\nentrypoint: {text}\n")
    assert spec.command == argv
    assert spec.entrypoint == argv


def test_no_command_means_the_images():
    spec = parse("image: x\n")
    assert spec.command is None
    assert spec.entrypoint is None


def test_env_string_forms():
    spec = parse(
        """
        env:
          PLAIN: hello world
          NUMBER: 8080
          FLOAT: 1.50
          BOOL: true
          YES_WORD: yes
          EMPTY: ""
          APOLO: secret:api_key
          RUNPOD: "postgres://app:{{ RUNPOD_SECRET_db_pass }}@db/app"
          ESCAPED: \\secret:not_a_ref
          BACKSLASH: '\\\\x'
          PW_FILE: secret-file:db_pass
        """
    )
    values = {v.name: v.parts for v in spec.env}
    assert values == {
        "PLAIN": ("hello world",),
        "NUMBER": ("8080",),
        "FLOAT": ("1.50",),
        "BOOL": ("true",),
        "YES_WORD": ("yes",),
        "EMPTY": (),
        "APOLO": (SecretRef("api_key"),),
        "RUNPOD": ("postgres://app:", SecretRef("db_pass"), "@db/app"),
        "ESCAPED": ("secret:not_a_ref",),
        "BACKSLASH": ("\\x",),
        "PW_FILE": ("/run/secrets/db_pass",),
    }
    assert spec.secret_files == (SecretFile("db_pass", "/run/secrets/db_pass", 0o400, "job.yaml:13:3"),)
    assert spec.secret_keys() == ("api_key", "db_pass")


def test_env_long_forms():
    spec = parse(
        """
        env:
          LITERAL: {value: "secret:kept as text {{ RUNPOD_SECRET_x }}"}
          NUM: {value: 3}
          TOKEN: {secret: hf_token}
          TOKEN_PATH: {secret_file: hf_token}
          CUSTOM: {secret_file: cert, path: /etc/ssl/c.pem, mode: "0440"}
          OCTAL: {secret_file: key, path: /k, mode: 0400}
        """
    )
    values = {v.name: v.parts for v in spec.env}
    assert values == {
        "LITERAL": ("secret:kept as text {{ RUNPOD_SECRET_x }}",),
        "NUM": ("3",),
        "TOKEN": (SecretRef("hf_token"),),
        "TOKEN_PATH": ("/run/secrets/hf_token",),
        "CUSTOM": ("/etc/ssl/c.pem",),
        "OCTAL": ("/k",),
    }
    files = {(f.key, f.target, f.mode) for f in spec.secret_files}
    assert files == {
        ("hf_token", "/run/secrets/hf_token", 0o400),
        ("cert", "/etc/ssl/c.pem", 0o440),
        ("key", "/k", 0o400),
    }


def test_env_origins_are_the_entries_positions():
    spec = parse("image: x\nenv:\n  A: 1\n  B: secret-file:k\n")
    assert [v.origin for v in spec.env] == ["job.yaml:3:3", "job.yaml:4:3"]
    assert spec.secret_files[0].origin == "job.yaml:4:3"


def test_two_secret_file_variables_share_one_file():
    spec = parse("env:\n  A_FILE: secret-file:k\n  B_FILE: secret-file:k\n")
    assert len(spec.env) == 2
    assert [f.target for f in spec.secret_files] == ["/run/secrets/k"]


def test_volume_forms():
    spec = parse(
        """
        volumes:
          - secret:tls_key:/etc/tls/key.pem
          - secret:tls_crt:/etc/tls/crt.pem:0444
          - {secret: ca, path: /etc/tls/ca.pem, mode: "0440"}
          - /srv/data:/data:ro
          - ./code:/code
          - cache:/root/.cache
          - {host: ../shared, path: /shared, read_only: true}
          - {host: models, path: /models}
        """
    )
    assert [(f.key, f.target, f.mode) for f in spec.secret_files] == [
        ("tls_key", "/etc/tls/key.pem", 0o400),
        ("tls_crt", "/etc/tls/crt.pem", 0o444),
        ("ca", "/etc/tls/ca.pem", 0o440),
    ]
    assert [(b.source, b.target, b.read_only) for b in spec.binds] == [
        ("/srv/data", "/data", True),
        ("/tpl/code", "/code", False),
        ("cache", "/root/.cache", False),
        ("/shared", "/shared", True),
        ("models", "/models", False),
    ]
    assert spec.binds[0].origin == "job.yaml:6:5"


def test_load_resolves_relative_host_paths_against_the_template_folder(tmp_path, monkeypatch):
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "job.yaml").write_text("image: x\nvolumes:\n  - ./data:/data\n")
    monkeypatch.chdir(tmp_path)
    spec = template.load("project/job.yaml")
    assert spec.binds == (BindMount(str(folder / "data"), "/data", False, "project/job.yaml:3:5"),)
    assert spec.source == "project/job.yaml"


@pytest.mark.parametrize(
    ("text", "port"),
    [
        ("8888", Port(8888)),
        ('"8888"', Port(8888)),
        ("8080:80", Port(80, 8080)),
        ("80:22", Port(22, 80)),  # YAML 1.1 would read 80:22 as the number 4822
        ("127.0.0.1:8080:80", Port(80, 8080, "127.0.0.1")),
        ("0.0.0.0:8080:80", Port(80, 8080, "0.0.0.0")),
        ("10.0.0.1:8080:80/udp", Port(80, 8080, "10.0.0.1", "udp")),
        ("'[::1]:8080:80'", Port(80, 8080, "::1")),
        ("53/udp", Port(53, None, "127.0.0.1", "udp")),
        ("{container: 8888}", Port(8888)),
        ("{container: 80, host: 8080, host_ip: 0.0.0.0, protocol: udp}", Port(80, 8080, "0.0.0.0", "udp")),
    ],
)
def test_port_forms(text, port):
    assert parse(f"ports:\n  - {text}\n").ports == (port,)


def test_ports_default_to_loopback():
    assert {p.host_ip for p in parse("ports: [80, '9000:90', {container: 70}]\n").ports} == {"127.0.0.1"}


@pytest.mark.parametrize(
    ("text", "resources"),
    [
        ("{cpus: 1.5}", Resources(cpus=1.5)),
        ("{cpus: 2}", Resources(cpus=2.0)),
        ("{memory: 512m}", Resources(memory=512 * 1024**2)),
        ("{memory: 2g}", Resources(memory=2 * 1024**3)),
        ("{memory: 2G}", Resources(memory=2 * 1024**3)),
        ("{memory: 1.5g}", Resources(memory=int(1.5 * 1024**3))),
        ("{memory: 64kb}", Resources(memory=64 * 1024)),
        ("{memory: 1t}", Resources(memory=1024**4)),
        ("{memory: 100b}", Resources(memory=100)),
        ("{memory: 1048576}", Resources(memory=1048576)),
        ("{memory: '4096'}", Resources(memory=4096)),
        ("{gpus: 2}", Resources(gpus=2)),
        ("{gpus: all}", Resources(gpus=-1)),
    ],
)
def test_resources_forms(text, resources):
    assert parse(f"resources: {text}\n").resources == resources


def test_yaml_anchors_and_merge_keys_work():
    spec = parse("labels: &common {A: '1', B: '2'}\nenv:\n  <<: *common\n  C: '3'\n")
    assert [(v.name, v.parts) for v in spec.env] == [("A", ("1",)), ("B", ("2",)), ("C", ("3",))]


# --- errors: each names FILE:LINE:COL ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("imgae: x\n", "job.yaml:1:1: unknown key 'imgae'; did you mean 'image'?"),
        ("image: x\nenvv: {}\n", "job.yaml:2:1: unknown key 'envv'; did you mean 'env'?"),
        ("image: x\nresources:\n  cpu: 1\n", "job.yaml:3:3: resources: unknown key 'cpu'; did you mean 'cpus'?"),
        ("image: x\nzzz: 1\n", "job.yaml:2:1: unknown key 'zzz' (expected one of: description, image,"),
        ("image: x\nimage: y\n", "job.yaml:2:1: duplicate key 'image'"),
        ("image: [unclosed\n", "job.yaml:2:1: invalid YAML: "),
        ("image: [unclosed\n", "(while parsing a flow sequence at job.yaml:1:8)"),
        ("image: x\n  bad: indent\n", "job.yaml:2:6: invalid YAML: mapping values are not allowed here"),
        ("- image: x\n", "job.yaml:1:1: a template must be a map of keys"),
        ("", "job.yaml:1:1: a template must be a map of keys (image:, env:, ...), got nothing"),
        ("just text\n", "got text"),
        ("image: [a, b]\n", "job.yaml:1:8: image: expected an image name without spaces, got a list"),
        ("image: two words\n", "job.yaml:1:8: image: expected an image name without spaces"),
        ("image:\n", "job.yaml:1:7: image: expected an image name without spaces, got nothing"),
        ("env: [A=1]\n", "job.yaml:1:6: env: expected a map, got a list"),
        ("env:\n  A B: x\n", "job.yaml:2:3: env: invalid variable name 'A B'"),
        ("env:\n  1A: x\n", "job.yaml:2:3: env: invalid variable name '1A'"),
        ("env:\n  A: [x]\n", "job.yaml:2:6: env.A: expected text, a map with 'value'"),
        ("env:\n  A:\n", "job.yaml:2:5: env.A: expected text"),
        ("env:\n  A: {value: x, secret: y}\n", "job.yaml:2:6: env.A: use only one of 'value' and 'secret'"),
        ("env:\n  A: {secrt: y}\n", "job.yaml:2:7: env.A: unknown key 'secrt'; did you mean 'secret'?"),
        ("env:\n  A: {}\n", "job.yaml:2:6: env.A: a map here needs one of the keys value, secret, secret_file"),
        ("env:\n  A: {secret: .x}\n", "job.yaml:2:15: env.A.secret: expected a secret name"),
        ("env:\n  A: {secret_file: k, path: rel}\n", "job.yaml:2:29: env.A.path: expected an absolute container path"),
        (
            "env:\n  A: {secret_file: k, path: /a/../b}\n",
            "job.yaml:2:29: env.A.path: container path '/a/../b' must not",
        ),
        ("env:\n  A: {secret_file: k, mode: 777x}\n", "job.yaml:2:29: env.A.mode: expected an octal file mode"),
        ("env:\n  A: 'secret:'\n", "job.yaml:2:6: env.A: no secret name after 'secret:'"),
        ("env:\n  A: secret:.x\n", "job.yaml:2:6: env.A: invalid secret name after 'secret:'"),
        ("env:\n  A: secret-file:a/b\n", "job.yaml:2:6: env.A: invalid secret name after 'secret-file:'"),
        ("env:\n  A: '{{ RUNPOD_SECRET_ }}'\n", "job.yaml:2:6: env.A: no secret name after '{{ RUNPOD_SECRET_'"),
        ('env:\n  A: "a\\0b"\n', "job.yaml:2:6: env.A: contains a NUL character"),
        ("volumes: /a:/a\n", "job.yaml:1:10: volumes: expected a list, got text"),
        ("volumes:\n  - secret:k:rel\n", "job.yaml:2:5: volumes[0]: container path 'rel' must be absolute"),
        ("volumes:\n  - /h:/a/../b\n", "job.yaml:2:5: volumes[0]: container path '/a/../b' must not contain '..'"),
        ("volumes:\n  - /h\n", "job.yaml:2:5: volumes[0]: expected HOST:/container/path"),
        ("volumes:\n  - {secret: k}\n", "job.yaml:2:5: volumes[0]: missing key 'path'"),
        ("volumes:\n  - {path: /a}\n", "job.yaml:2:5: volumes[0]: a map here needs one of the keys secret, host"),
        (
            "volumes:\n  - {host: /h, path: /a, read_only: maybe}\n",
            "job.yaml:2:37: volumes[0].read_only: expected true",
        ),
        ("volumes:\n  - {host: /h, path: a}\n", "job.yaml:2:22: volumes[0].path: expected an absolute container path"),
        ("volumes:\n  - {host: '-x', path: /a}\n", "job.yaml:2:12: volumes[0].host: invalid volume name"),
        (
            "volumes:\n  - /a:/m\n  - /b:/m/\n",
            "job.yaml:3:5: two mounts on container path /m (the other at job.yaml:2:5)",
        ),
        ("volumes:\n  - secret:k:/m\n  - secret:k:/m\n", "job.yaml:3:5: two mounts on container path /m"),
        (
            "env:\n  F: secret-file:k\nvolumes:\n  - /h:/run/secrets/k\n",
            "job.yaml:4:5: two mounts on container path /run/secrets/k (the other at job.yaml:2:3)",
        ),
        ("workdir: rel\n", "job.yaml:1:10: workdir: expected an absolute container path"),
        ("workdir: /a/../b\n", "job.yaml:1:10: workdir: container path '/a/../b' must not contain '..'"),
        ("user: a b\n", "job.yaml:1:7: user: expected a user like"),
        ("ports: 80\n", "job.yaml:1:8: ports: expected a list, got a number"),
        ("ports:\n  - 0\n", "job.yaml:2:5: ports[0]: port 0 is out of range (1-65535)"),
        ("ports:\n  - 65536\n", "job.yaml:2:5: ports[0]: port 65536 is out of range (1-65535)"),
        ("ports:\n  - 70000:80\n", "job.yaml:2:5: ports[0]: port 70000 is out of range"),
        ("ports:\n  - 999.0.0.1:80:80\n", "job.yaml:2:5: ports[0]: invalid host IP address"),
        ("ports:\n  - http\n", "job.yaml:2:5: ports[0]: expected a port like 8888"),
        ("ports:\n  - 80/sctp\n", "job.yaml:2:5: ports[0]: expected a port like"),
        ("ports:\n  - {container: 0}\n", "job.yaml:2:17: ports[0].container: expected a whole number from 1 to 65535"),
        ("ports:\n  - {container: '80'}\n", "ports[0].container: expected a whole number from 1 to 65535, got text"),
        ("ports:\n  - {container: 80, host_ip: nope}\n", "job.yaml:2:30: ports[0].host_ip: invalid host IP"),
        ("ports:\n  - {container: 80, protocol: sctp}\n", "ports[0].protocol: expected tcp or udp"),
        ("ports:\n  - {host: 80}\n", "job.yaml:2:5: ports[0]: a map here needs one of the keys container"),
        ("ports: [80, '8080:80']\n", "job.yaml:1:13: ports[1]: container port 80/tcp is listed twice"),
        ("ports: ['9000:80', '9000:81']\n", "job.yaml:1:20: ports[1]: host port 9000/tcp is published twice"),
        ("resources: 2\n", "job.yaml:1:12: resources: expected a map, got a number"),
        ("resources:\n  cpus: 0\n", "job.yaml:2:9: resources.cpus: expected a number greater than 0"),
        ("resources:\n  cpus: two\n", "resources.cpus: expected a number greater than 0, got text"),
        ("resources:\n  memory: 12q\n", "job.yaml:2:11: resources.memory: expected a size like 512m or 2g"),
        ("resources:\n  memory: 0\n", "job.yaml:2:11: resources.memory: the size '0' must be at least 1 byte"),
        ("resources:\n  gpus: 0\n", "job.yaml:2:9: resources.gpus: expected a number of GPUs or 'all'"),
        ("resources:\n  gpus: some\n", "resources.gpus: expected a number of GPUs or 'all'"),
        ("restart: sometimes\n", "job.yaml:1:10: restart: expected one of no, always, unless-stopped, on-failure"),
        ("restart: on-failure:x\n", "restart: expected one of"),
        ("labels: [a]\n", "job.yaml:1:9: labels: expected a map, got a list"),
        ("labels:\n  a: {b: c}\n", "job.yaml:2:6: labels.a: expected text, got a map"),
        ("name: -bad\n", "job.yaml:1:7: name: expected a job name of 1 to 63 letters"),
        ("network: a b\n", "job.yaml:1:10: network: expected a network name"),
        ("backend: k8s\n", "job.yaml:1:10: backend: expected docker, swarm or kubernetes"),
        ("command: 'a \"b'\n", "job.yaml:1:10: command: unbalanced quotes"),
        ("command: [a, [b]]\n", "job.yaml:1:14: command[1]: expected text, got a list"),
        ("command: {a: b}\n", "job.yaml:1:10: command: expected text or a list, got a map"),
        ("? [a, b]\n: x\n", "job.yaml:1:3: a key must be text"),
        ("image: !!python/object:os.system x\n", "job.yaml:1:8: invalid YAML: could not determine a constructor"),
        ("env: !!set {A: null}\n", "job.yaml:1:6: env: unsupported YAML tag"),
        ("env: !custom {A: x}\n", "job.yaml:1:6: env: unsupported YAML tag '!custom'"),
        ("image: x\n---\nimage: y\n", "job.yaml:2:1: invalid YAML: but found another document"),
    ],
)
def test_errors_name_file_line_and_column(text, expected):
    assert error(text).startswith(expected) or expected in error(text)
    assert error(text).startswith("job.yaml")


def test_env_errors_never_quote_the_value():
    for text in (
        f"env:\n  A: secret:{CANARY} x\n",
        f"env:\n  A: 'x{{{{ RUNPOD_SECRET_{CANARY} x }}}}'\n",
        f"env:\n  A: secret-file:{CANARY}/x\n",
        f"env:\n  A: {{secret: '{CANARY}/x'}}\n",
        f'env:\n  A: "{CANARY}\\0"\n',
        f"env:\n  A: [{CANARY}]\n",
        f"env:\n  A: {{{CANARY}: 1}}\n",
    ):
        message = error(text)
        assert CANARY not in message, message
        assert "env.A" in message


def test_yaml_syntax_errors_never_quote_the_line():
    message = error(f"env:\n  A: {CANARY}\n  B: [unclosed {CANARY}\n")
    assert CANARY not in message


def test_alias_bombs_are_refused_quickly():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    message = error("\n".join(lines) + "\n")
    assert "too large" in message


def test_recursive_aliases_are_an_error_not_a_hang():
    assert "nested too deeply" in error("labels: &a [*a]\n")


def test_an_alias_used_in_two_places_is_fine():
    spec = parse("labels: &l {a: b}\nenv: *l\n")
    assert spec.env == (EnvVar("a", ("b",), "job.yaml:1:13"),)


# --- files -------------------------------------------------------------------------------------------------------


def test_load_missing_file_is_not_found(tmp_path):
    with pytest.raises(NotFound, match="not found"):
        template.load(tmp_path / "nope.yaml")


def test_load_a_folder_or_binary_file_is_a_template_error(tmp_path):
    with pytest.raises(TemplateError, match="cannot read"):
        template.load(tmp_path)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"image: \xff\xfe\n")
    with pytest.raises(TemplateError, match="not UTF-8"):
        template.load(binary)


def test_errors_from_load_name_the_path_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("t.yaml").write_text("image: x\nports: [http]\n")
    with pytest.raises(TemplateError, match=r"^t\.yaml:2:9: ports\[0\]"):
        template.load("t.yaml")


# --- built-ins ---------------------------------------------------------------------------------------------------


def test_builtins_are_listed_with_descriptions():
    found = {b.name: b for b in template.builtins()}
    assert {"python-batch", "jupyter", "model-server"} <= set(found)
    assert all(b.description for b in found.values())


@pytest.mark.parametrize("name", template.builtin_names())
def test_every_builtin_parses_and_validates(name):
    from launcher import overrides

    path = template.builtin_path(name)
    assert path is not None
    assert path.is_file()
    text = path.read_text()
    assert "#" in text, "built-ins are meant to be read: they carry comments"
    spec = overrides.validate(template.load(path))
    assert spec.image
    assert spec.secret_keys(), "each built-in shows how a secret is injected"
    assert all(p.host_ip == "127.0.0.1" for p in spec.ports)
    assert all(not b.source.startswith(str(path.parent)) for b in spec.binds), "no host paths inside the package"


def test_the_builtins_named_in_the_brief():
    jupyter = template.load(template.builtin_path("jupyter"))
    assert jupyter.ports == (Port(8888, 8888, "127.0.0.1"),)
    assert [v.name for v in jupyter.env if v.is_secret] == ["JUPYTER_TOKEN"]
    model = template.load(template.builtin_path("model-server"))
    assert {"HF_TOKEN", "HF_TOKEN_PATH"} & {v.name for v in model.env}
    batch = template.load(template.builtin_path("python-batch"))
    assert batch.image.startswith("python:3.11")


def test_builtin_path_only_knows_listed_names():
    assert template.builtin_path("no-such") is None
    assert template.builtin_path("../templates/jupyter") is None
    assert template.builtin_path("jupyter.yaml") is None


def test_builtins_live_in_the_repos_templates_folder():
    repo = Path(__file__).resolve().parents[1]
    assert template.BUILTIN_DIR.resolve() == (repo / "templates").resolve()
    assert sorted(p.stem for p in (repo / "templates").glob("*.yaml")) == template.builtin_names()


def test_find_prefers_a_file_then_a_builtin(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert template.find("jupyter") == template.builtin_path("jupyter")
    Path("jupyter").write_text("image: mine\n")
    assert template.find("jupyter") == Path("jupyter")
    with pytest.raises(NotFound, match=r"no template file 'nope'.*built-ins: jupyter"):
        template.find("nope")

"""The one schema table: the published JSON schema is generated from it, and stays in sync."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from launcher import schema
from launcher.errors import TemplateError

SCHEMA_FILE = Path(schema.__file__).with_name("template.schema.json")


def test_the_published_file_is_what_the_table_generates():
    assert SCHEMA_FILE.read_text() == schema.render(), (
        "launcher/template.schema.json is stale: run `python -m launcher.schema > launcher/template.schema.json`"
    )


def test_the_regenerate_command_prints_the_file():
    result = subprocess.run(
        [sys.executable, "-m", "launcher.schema"], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout == SCHEMA_FILE.read_text()


def test_the_json_schema_covers_every_key_of_the_table():
    published = json.loads(SCHEMA_FILE.read_text())
    assert published["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert published["type"] == "object"
    assert published["additionalProperties"] is False
    assert list(published["properties"]) == list(schema.TEMPLATE.fields)
    assert all(prop.get("description") for prop in published["properties"].values())
    env = published["properties"]["env"]
    assert env["propertyNames"]["pattern"] == "^[A-Za-z_][A-Za-z0-9_]*$"
    assert [option.get("required") for option in env["additionalProperties"]["anyOf"]] == [
        None,
        ["value"],
        ["secret"],
        ["secret_file"],
    ]


def _patterns(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pattern":
                yield value
            else:
                yield from _patterns(value)
    elif isinstance(node, list):
        for item in node:
            yield from _patterns(item)


def test_patterns_mean_the_same_in_python_and_json_schema():
    patterns = list(_patterns(schema.json_schema()))
    assert len(patterns) >= 10
    for pattern in patterns:
        assert pattern.startswith("^"), pattern
        assert pattern.endswith("$"), pattern
        # Python-only syntax, or classes that differ between the dialects (\d is Unicode-wide in Python)
        assert re.search(r"\(\?P|\\[dAZ]", pattern) is None, pattern
        re.compile(pattern)


class _Source:
    """A stand-in for a loaded document: every position is 'f:1:1', every scalar's text is str(value)."""

    def __init__(self, data):
        self.data = data

    def where(self, path, *, key=False):
        return "f:1:1"

    def text(self, path):
        node = self.data
        for part in path:
            node = node[part]
        return str(node)


def check(data):
    schema.validate(data, _Source(data))


def test_validate_accepts_a_full_template():
    check(
        {
            "image": "x",
            "command": "a b",
            "entrypoint": ["a", 1],
            "env": {"A": "x", "B": 1, "C": {"value": "v"}, "D": {"secret": "s"}, "E": {"secret_file": "f"}},
            "volumes": ["/a:/b", {"secret": "k", "path": "/p"}, {"host": "h", "path": "/q", "read_only": True}],
            "ports": [80, "8080:80", {"container": 81}],
            "resources": {"cpus": 0.5, "memory": "1g", "gpus": "all"},
            "labels": {"a": "b"},
        }
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "f:1:1: a template must be a map of keys (image:, env:, ...), got a list"),
        ({"image": None}, "f:1:1: image: expected an image name without spaces, got nothing"),
        ({"ports": [True]}, "f:1:1: ports[0]: expected a port like"),
        (
            {"ports": [{"container": True}]},
            "ports[0].container: expected a whole number from 1 to 65535, got true/false",
        ),
        ({"resources": {"cpus": True}}, "resources.cpus: expected a number greater than 0, got true/false"),
        (
            {"volumes": [{"host": "h", "path": "/p", "read_only": "yes"}]},
            "volumes[0].read_only: expected true or false",
        ),
        ({"env": {"A": {"value": "x", "secret": "y", "secret_file": "z"}}}, "use only one of 'value' and 'secret' and"),
    ],
)
def test_validate_errors(data, message):
    with pytest.raises(TemplateError) as info:
        check(data)
    assert str(info.value).startswith(message) or message in str(info.value)


@pytest.mark.parametrize(
    ("path", "text"),
    [((), ""), (("env", "A"), "env.A"), (("volumes", 2), "volumes[2]"), (("a", 0, "b"), "a[0].b")],
)
def test_dotted(path, text):
    assert schema.dotted(path) == text


@pytest.mark.parametrize(
    ("value", "word"),
    [(None, "nothing"), ({}, "a map"), ([], "a list"), (True, "true/false"), (1, "a number"), ("x", "text")],
)
def test_kind_names_a_type_never_a_value(value, word):
    assert schema.kind(value) == word

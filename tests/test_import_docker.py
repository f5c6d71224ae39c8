"""launcher.runtime.common.import_docker: docker-py without requests' character-set detector (issue 7), and the
plain import when a requests needs one. Each case runs in a fresh interpreter: sys.modules is the subject."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def fresh(code: str, path: str | None = None) -> subprocess.CompletedProcess:
    prelude = f"import sys\nsys.path.insert(0, {path!r})\n" if path else ""
    return subprocess.run(
        [sys.executable, "-W", "default", "-c", prelude + textwrap.dedent(code)],
        check=False,
        capture_output=True,
        text=True,
    )


def test_docker_loads_without_the_detector_and_without_a_warning():
    result = fresh(
        """
        import sys
        from launcher.runtime.common import import_docker
        docker = import_docker()
        import requests.compat
        assert docker.APIClient is not None
        assert "charset_normalizer" not in sys.modules and "chardet" not in sys.modules
        assert requests.compat.chardet is None
        import charset_normalizer  # hidden only while requests loaded
        print("ok")
        """
    )
    assert result.stdout.strip() == "ok", result.stderr
    assert result.stderr == ""  # requests' "Unable to find acceptable character detection" warning is silenced


def test_nothing_is_hidden_once_requests_is_loaded():
    result = fresh(
        """
        import sys, requests
        from launcher.runtime.common import import_docker
        import_docker()
        print("charset_normalizer" in sys.modules)
        """
    )
    assert result.stdout.strip() == "True", result.stderr


def test_a_requests_that_needs_a_detector_gets_a_plain_import(tmp_path):
    """Stand-ins on sys.path: a `requests` that imports charset_normalizer unconditionally, a `docker` on it."""
    (tmp_path / "requests").mkdir()
    (tmp_path / "requests" / "__init__.py").write_text("import charset_normalizer\nNEEDY = True\n")
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "__init__.py").write_text("import requests\nSTAND_IN = True\n")
    result = fresh(
        """
        import sys
        from launcher.runtime.common import import_docker
        docker = import_docker()
        import requests
        print(docker.STAND_IN, requests.NEEDY, sys.modules["charset_normalizer"] is not None)
        """,
        path=str(tmp_path),
    )
    assert result.stdout.split() == ["True", "True", "True"], result.stderr


def test_certifi_is_not_imported_for_docker_yet_requests_gets_the_same_bundle():
    # without site's .pth files (a sandbox's may import certifi at start-up): site-packages on sys.path only
    import site
    from pathlib import Path

    repo = str(Path(__file__).resolve().parents[1])
    code = f"""
import sys
sys.path[:0] = [{repo!r}]
sys.path += {site.getsitepackages()!r}
from launcher.runtime.common import import_docker
import_docker()
import requests.utils
assert "certifi" not in sys.modules
import certifi  # the real one, loaded later by whoever asks
assert requests.utils.DEFAULT_CA_BUNDLE_PATH == certifi.where(), requests.utils.DEFAULT_CA_BUNDLE_PATH
print("ok")
"""
    result = subprocess.run([sys.executable, "-S", "-c", code], check=False, capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr

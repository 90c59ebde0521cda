"""scripts/setup.sh on a Python that cannot make a virtualenv, and after a failed attempt.

Debian and Ubuntu ship venv's pip bootstrap (``ensurepip``) in python3.X-venv; without it
``python -m venv`` fails halfway and leaves a .venv without pip. Here the missing module is
made missing for real: a directory first on PYTHONPATH whose ``ensurepip`` raises
ImportError, as the interpreter of a system without the package does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.packaging.support import clean_env, copy_checkout

BASE_PYTHON = Path(sys.base_prefix) / "bin" / f"python3.{sys.version_info.minor}"


def _setup(checkout: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(checkout / "scripts" / "setup.sh")],
        env=clean_env(**env),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.mark.skipif(
    sys.base_prefix == "/usr", reason="a Debian Python: setup.sh would apt-get python3.X-venv"
)
def test_a_python_without_ensurepip_is_named_instead_of_a_broken_venv(tmp_path: Path) -> None:
    blocker = tmp_path / "no-ensurepip" / "ensurepip"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('ensurepip is not installed')\n")
    checkout = copy_checkout(tmp_path / "checkout")
    done = _setup(checkout, PYTHON=str(BASE_PYTHON), PYTHONPATH=str(blocker.parent))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"setup: {BASE_PYTHON} ({sys.base_prefix}) cannot create a virtualenv: its ensurepip "
        "module is missing; reinstall that Python with venv support or set PYTHON to one "
        "that has it"
    ]
    assert not (checkout / ".venv").exists()


@pytest.mark.install
def test_a_venv_left_without_pip_is_made_anew(tmp_path: Path) -> None:
    checkout = copy_checkout(tmp_path / "checkout")
    venv = checkout / ".venv"
    subprocess.run([str(BASE_PYTHON), "-m", "venv", "--without-pip", str(venv)], check=True)
    done = _setup(checkout, PYTHON=str(BASE_PYTHON))
    assert done.returncode == 0, done.stdout + done.stderr
    imported = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import pip, api.app, sfu.compose; print('ok')"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert imported.stdout == "ok\n", imported.stderr

"""What a user gets from ``pip install .`` (scripts/run.sh's setup, the Dockerfile): a fresh
virtualenv, the project installed non-editable without any extra, and then every console
script and feature run from there, outside the source tree.

Marked ``install`` (deselect with ``-m 'not install'``): it needs PyPI, or pip's cache,
for the build requirements and dependencies.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sfu import compose
from tests.packaging.support import (
    clean_env,
    copy_checkout,
    free_port,
    get,
    project_version,
    running_server,
)
from tests.recording.generated import write_segments
from tests.sfu.test_compose import PUBLISHERS, _cells, _expected_cell

pytestmark = pytest.mark.install

# The compose job, as the server runs it for a stopped recording, with a real SQLite store.
COMPOSE_JOB = """
import asyncio, json, sys
from datetime import datetime, timezone
from pathlib import Path
from api.config import load_settings
from api.recordings.compose_job import run_compose
from api.models import Recording, RecordingFile
from api.store import open_store

async def main() -> None:
    data_dir, folder, files = sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3])
    store = await open_store(load_settings({"DATA_DIR": data_dir}))
    try:
        recording = Recording(
            id="r1", class_id="c1", session_id="s1", started_by="u1",
            started_at=datetime.now(timezone.utc), status="stopped",
            files=tuple(RecordingFile(**f) for f in files),
        )
        await store.put_recording(recording)
        final = await run_compose(store, recording, folder)
        stored = await store.get_recording("r1")
        assert stored is not None
        print(json.dumps({"job": final.job.public(), "stored": stored.job.public()}))
    finally:
        await store.close()

asyncio.run(main())
"""


@dataclass(frozen=True)
class RuntimeInstall:
    """A virtualenv holding only the project and its runtime dependencies."""

    root: Path
    pip_output: str

    def bin(self, name: str) -> str:
        return str(self.root / "bin" / name)

    def run(
        self, *command: str, cwd: Path, timeout: float = 60, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command,
            cwd=cwd,
            env=env or clean_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> RuntimeInstall:
    base = tmp_path_factory.mktemp("runtime-install")
    # A copy, so the in-tree build leaves nothing (build/, *.egg-info) in the checkout.
    source = copy_checkout(base / "source")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-v", "--no-input", str(source)],
        cwd=base,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    return RuntimeInstall(venv, pip.stdout + pip.stderr)


def test_the_install_has_no_extras_and_no_build_warnings(install: RuntimeInstall) -> None:
    assert "SetuptoolsDeprecationWarning" not in install.pip_output
    assert "project.license" not in install.pip_output
    probe = install.run(
        install.bin("python"),
        "-c",
        "import importlib.util as u, api, sfu, sfu.native_send as n;"
        "print(api.__file__);"
        "print([m for m in ('pytest', 'matplotlib', 'playwright') if u.find_spec(m)]);"
        "print(n.AVAILABLE)",
        cwd=install.root,
    )
    assert probe.returncode == 0, probe.stderr
    location, extras, native = probe.stdout.splitlines()
    assert Path(location).is_relative_to(install.root)
    assert extras == "[]"
    assert native == "True"  # the C send path was built (gcc is a setup.sh --test package)
    check = install.run(install.bin("python"), "-m", "pip", "check", cwd=install.root)
    assert check.returncode == 0, check.stdout + check.stderr


def test_both_commands_answer_help_and_version(install: RuntimeInstall) -> None:
    for command, flags in (
        ("classroom-sfu", ["--port", "--data-dir", "--mongodb-uri", "--log-level"]),
        ("classroom-loadtest", ["--url", "--classes", "--students", "--plot"]),
    ):
        helped = install.run(install.bin(command), "--help", cwd=install.root)
        assert helped.returncode == 0, helped.stderr
        assert helped.stdout.startswith(f"usage: {command} ")
        assert all(flag in helped.stdout for flag in ["--version", *flags]), helped.stdout
        versioned = install.run(install.bin(command), "--version", cwd=install.root)
        assert versioned.returncode == 0, versioned.stderr
        assert versioned.stdout == f"{command} {project_version()}\n"


def test_loadtest_plot_without_matplotlib_says_which_extra_to_install(
    install: RuntimeInstall,
) -> None:
    done = install.run(
        install.bin("classroom-loadtest"),
        "--url", "http://127.0.0.1:9", "--plot", "load.png", "--no-progress",
        cwd=install.root,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "classroom-loadtest: --plot needs matplotlib: pip install 'classroom-sfu[plot]'"
    ]


def test_the_compose_job_composes_a_recording(install: RuntimeInstall, tmp_path: Path) -> None:
    folder = tmp_path / "recording"
    tracks = write_segments(folder, PUBLISHERS)
    files = [
        {
            "name": t.path.name,
            "user_id": t.participant_id,
            "kind": t.kind,
            "offset": t.offset,
            "duration": t.duration,
            "size": t.size,
        }
        for t in tracks
    ]
    done = install.run(
        install.bin("python"),
        "-c",
        COMPOSE_JOB,
        str(tmp_path / "data"),
        str(folder),
        json.dumps(files),
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["job"]["status"] == "done", result["job"]["error"]
    frames = 32  # as in tests/sfu/test_compose.py: the same segments
    assert result["job"] == {
        "status": "done",
        "progress": 1.0,
        "error": None,
        "file": "composed.webm",
        "size": (folder / "composed.webm").stat().st_size,
        "duration": frames / compose.FPS,
    }
    assert result["stored"] == result["job"]
    size, barcodes, samples = _cells(folder / "composed.webm", len(PUBLISHERS))
    assert size == (2 * compose.CELL[0], 2 * compose.CELL[1])
    assert barcodes == [_expected_cell(p, frames) for p in PUBLISHERS]
    assert samples == frames * compose.BLOCK


@pytest.fixture
def server(install: RuntimeInstall, tmp_path: Path) -> Iterator[str]:
    """``classroom-sfu`` from the install, on a free loopback port; its base URL."""
    port = free_port()
    command = [
        install.bin("classroom-sfu"),
        "--host", "127.0.0.1", "--port", str(port), "--data-dir", str(tmp_path / "data"),
        "--ice-addresses", "127.0.0.1",
    ]  # fmt: skip
    with running_server(
        command, port=port, cwd=tmp_path, env=clean_env(), log=tmp_path / "server.log"
    ) as base:
        yield base


def test_the_server_runs_serves_the_page_and_a_load_test_joins_it(
    install: RuntimeInstall, server: str, tmp_path: Path
) -> None:
    status, body = get(f"{server}/health")
    assert status == 200
    # A runtime-only install builds both C extensions where a compiler exists (CI has one).
    health = json.loads(body)["data"]
    assert isinstance(health.pop("eventLoopLagMs"), float)
    assert health == {
        "status": "ok",
        "store": "sqlite",
        "sockets": 0,
        "media": {"receive": "native", "send": "native"},
        "presenceBuffer": {
            "pending": 0,
            "oldestSeconds": None,
            "merged": 0,
            "dropped": 0,
            "failed": 0,
        },
    }
    status, page = get(f"{server}/")  # redirected to the page in the installed package
    assert status == 200 and "<html" in page.lower()
    load = install.run(
        install.bin("classroom-loadtest"),
        "--url", server, "--classes", "1", "--students", "1", "--duration", "2",
        "--no-progress", "--json", str(tmp_path / "load.json"),
        cwd=tmp_path,
        timeout=120,
    )  # fmt: skip
    assert load.returncode == 0, load.stdout + load.stderr
    summary = json.loads((tmp_path / "load.json").read_text())
    assert (summary["joins"]["ok"], summary["joins"]["failed"]) == (2, 0)

"""The two console scripts' command lines: help, version, flags over the environment, and a
one-line error with exit code 2 for anything they cannot run with."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from api.__main__ import FLAGS, environment
from tests.packaging.support import (
    REPO,
    answers,
    clean_env,
    free_port,
    project_version,
    running_server,
)

BIN = Path(sys.executable).parent


def _run(
    command: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / command), *args],
        cwd=REPO,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_server_help_lists_every_flag_and_its_variable_without_starting() -> None:
    done = _run("classroom-sfu", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: classroom-sfu ")
    for flag in FLAGS:
        assert flag.flag in done.stdout and f"[{flag.env}]" in done.stdout
    names = {flag.flag for flag in FLAGS}
    assert names >= {"--host", "--port", "--data-dir", "--mongodb-uri", "--log-level"}
    assert "--version" in done.stdout


@pytest.mark.parametrize("command", ["classroom-sfu", "classroom-loadtest"])
def test_version_is_the_project_version(command: str) -> None:
    done = _run(command, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{command} {project_version()}\n"


def test_loadtest_help_lists_its_options() -> None:
    done = _run("classroom-loadtest", "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: classroom-loadtest ")
    for option in ("--url", "--classes", "--students", "--duration", "--json", "--plot"):
        assert option in done.stdout
    assert "(needs matplotlib, the 'plot' extra)" in " ".join(done.stdout.split())


def test_a_flag_overrides_its_variable_and_the_rest_stay() -> None:
    base = {"PORT": "3000", "HOST": "0.0.0.0", "TOKEN_TTL_SECONDS": "600"}
    env, given = environment(["--port", "4000", "--data-dir", "/srv/data"], base)
    assert env == {**base, "PORT": "4000", "DATA_DIR": "/srv/data"}
    assert given == {"PORT", "DATA_DIR"}
    assert environment([], base) == (base, set())


SERVER_CONFIG = "classroom-sfu: configuration error: "
SERVER_USAGE = "classroom-sfu: error: {} (see classroom-sfu --help)"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--port", "abc"], SERVER_CONFIG + "--port must be an integer, got 'abc'"),
        (["--port", "70000"], SERVER_CONFIG + "--port must be between 0 and 65535, got 70000"),
        (
            ["--log-level", "LOUD"],
            SERVER_CONFIG + "--log-level must be DEBUG, INFO, WARNING or ERROR, got 'LOUD'",
        ),
        (
            ["--ice-addresses", "localhost"],
            SERVER_CONFIG + "--ice-addresses must hold IP addresses, got 'localhost'",
        ),
        (
            ["--mongodb-uri", "postgres://x"],
            SERVER_CONFIG + "--mongodb-uri must start with mongodb:// or mongodb+srv://",
        ),
        (["--port", ""], SERVER_USAGE.format("argument --port: needs a value")),
        (["--port"], SERVER_USAGE.format("argument --port: expected one argument")),
        (["--bogus"], SERVER_USAGE.format("unrecognized arguments: --bogus")),
        (["serve"], SERVER_USAGE.format("unrecognized arguments: serve")),
    ],
)
def test_a_bad_server_flag_exits_2_with_one_line(
    args: list[str], line: str, tmp_path: Path
) -> None:
    done = _run("classroom-sfu", *args, env=clean_env(DATA_DIR=str(tmp_path)))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [line]
    assert not any(tmp_path.iterdir())  # nothing started


def test_a_bad_variable_is_still_named_as_the_variable(tmp_path: Path) -> None:
    env = clean_env(PORT="abc", DATA_DIR=str(tmp_path))
    done = _run("classroom-sfu", "--host", "127.0.0.1", env=env)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "classroom-sfu: configuration error: PORT must be an integer, got 'abc'"
    ]


LOADTEST_USAGE = "classroom-loadtest: error: {} (see classroom-loadtest --help)"


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["--fps", "x"], LOADTEST_USAGE.format("argument --fps: invalid int value: 'x'")),
        (["--duration", "0"], "classroom-loadtest: --duration must be in (0, 3600] seconds"),
        (
            ["--ice-address", "somewhere"],
            "classroom-loadtest: --ice-address must be an IP address, got 'somewhere'",
        ),
        (["--students", "-1"], "classroom-loadtest: --classes must be >= 1 and --students >= 0"),
        (["--progress"], LOADTEST_USAGE.format("unrecognized arguments: --progress")),
    ],
)
def test_a_bad_loadtest_option_exits_2_with_one_line(args: list[str], line: str) -> None:
    done = _run("classroom-loadtest", "--url", "http://127.0.0.1:9", *args)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [line]


def test_the_server_listens_where_its_flags_say_not_where_the_environment_says(
    tmp_path: Path,
) -> None:
    env_port, flag_port = free_port(), free_port()
    env = clean_env(HOST="127.0.0.1", PORT=str(env_port), DATA_DIR=str(tmp_path / "env-data"))
    flags = ["--port", str(flag_port), "--data-dir", str(tmp_path / "flag-data")]
    command = [str(BIN / "classroom-sfu"), *flags]
    with running_server(command, port=flag_port, cwd=tmp_path, env=env, log=tmp_path / "log"):
        assert not answers(f"http://127.0.0.1:{env_port}/health")
        assert (tmp_path / "flag-data").is_dir() and not (tmp_path / "env-data").exists()

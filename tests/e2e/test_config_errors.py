"""A server that cannot start says why in one line naming the setting and
exits 2: no traceback, nothing created on the way."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.postgres import free_port
from tests.server_process import BIN
from tests.support import PRINCIPALS_FILE


def _serve(tmp: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    defaults = {
        "--listen": f"127.0.0.1:{free_port()}",
        "--database-url": f"sqlite:///{tmp}/govex.db",
        "--principals-file": PRINCIPALS_FILE,
    }
    flags = dict(zip(args[::2], args[1::2], strict=True))
    command = [str(BIN / "govex-server"), "serve"]
    for flag, value in {**defaults, **flags}.items():
        command += [flag, value]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={
            **os.environ,
            "GOVEX_METRICS_LISTEN": "127.0.0.1:0",
            "GOVEX_CONSOLE_LISTEN": "127.0.0.1:0",
            **env,
        },
    )


def _one_line(done: subprocess.CompletedProcess[str], setting: str) -> str:
    """The one line that is not a (JSON) log line of what went before."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    plain = [line for line in done.stderr.splitlines() if not line.startswith("{")]
    assert len(plain) == 1, done.stderr
    assert plain[0].startswith(f"govex-server: configuration error: {setting}: "), plain
    assert done.stderr.rstrip().endswith(plain[0])
    return plain[0]


def test_a_listen_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _serve(tmp_path, "--listen", f"127.0.0.1:{port}")
    assert f"127.0.0.1:{port}" in _one_line(done, "listen")


@pytest.mark.parametrize("setting", ["metrics_listen", "console_listen"])
def test_a_metrics_or_console_port_in_use(tmp_path: Path, setting: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _serve(tmp_path, **{f"GOVEX_{setting.upper()}": f"127.0.0.1:{port}"})
    assert "in use" in _one_line(done, setting)


def test_an_unreachable_postgresql_says_database(tmp_path: Path) -> None:
    url = f"postgresql://govex:secret@127.0.0.1:{free_port()}/govex"
    line = _one_line(_serve(tmp_path, "--database-url", url), "database_url")
    assert "cannot use the database at" in line
    assert "secret" not in line  # never the password


@pytest.mark.parametrize(
    ("env", "setting"),
    [
        ({"GOVEX_LOG_LEVEL": "verbose"}, "log_level"),
        ({"GOVEX_DATABASE_URL": "foo://bar"}, "database_url"),
    ],
)
def test_bad_settings_from_the_environment(
    tmp_path: Path, env: dict[str, str], setting: str
) -> None:
    command = [str(BIN / "govex-server"), "serve", "--principals-file", PRINCIPALS_FILE]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=60, check=False, env={**os.environ, **env}
    )
    _one_line(done, setting)


def test_a_mistyped_sqlite_directory_is_not_created(tmp_path: Path) -> None:
    wrong = tmp_path / "tpyo" / "govex.db"
    line = _one_line(_serve(tmp_path, "--database-url", f"sqlite:///{wrong}"), "database_url")
    assert "does not exist" in line
    assert not (tmp_path / "tpyo").exists()

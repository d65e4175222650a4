"""The README's quick start, run as a script against `make run`'s defaults
(the development server: SQLite under var/, the paper exchange, the
development principals), line by line in order, as a newcomer pastes it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.postgres import free_port

README = Path("README.md")


def quickstart() -> str:
    """The shell block after the README's ``<!-- quickstart -->`` marker."""
    text = README.read_text()
    found = re.search(r"<!-- quickstart -->\n```sh\n(.*?)\n```", text, re.DOTALL)
    assert found, "README.md has no quick start block"
    return found[1]


def test_the_readme_quick_start_runs_in_order_against_make_run(tmp_path: Path) -> None:
    # make run's server, from a directory of its own (it creates var/ there).
    shutil.copytree("config", tmp_path / "config")
    listen, metrics = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    log = tmp_path / "make-run.log"
    with open(log, "wb") as sink:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "govex_server.devrun",
                "--listen",
                listen,
                "--metrics-listen",
                metrics,
                "--console-listen",
                f"127.0.0.1:{free_port()}",
            ],
            cwd=tmp_path,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while b"Ctrl-C stops the server" not in log.read_bytes():
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert f"export GOVEX={listen}" in log.read_text()
        # The instructions come once the server answers, so they work at once.
        printed = log.read_text()
        assert printed.index("govex serving on") < printed.index("Ctrl-C stops the server")
        script = quickstart().replace(
            "export GOVEX=127.0.0.1:50051 GOVEX_METRICS=127.0.0.1:9464",
            f"export GOVEX={listen} GOVEX_METRICS={metrics}",
        )
        assert script != quickstart(), "the quick start must start by naming the address"
        env = {k: v for k, v in os.environ.items() if not k.startswith("GOVEX_")}
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-x", "-c", script],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            env=env,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        out = done.stdout
        assert "PURCHASE is blocked" in out  # the kill switch held
        assert "execution ended: CANCELLED" in out
        assert re.search(r'^govex_plans\{state="ACTIVE"\} 1\.0$', out, re.MULTILINE), out
        assert re.search(r'^govex_executions\{state="CANCELLED"\} 1\.0$', out, re.MULTILINE)
        assert re.search(r'^govex_executions\{state="SIMULATED"\} 1\.0$', out, re.MULTILINE)
        assert (tmp_path / "var" / "govex.db").exists()
    finally:
        server.terminate()
        server.wait(30)

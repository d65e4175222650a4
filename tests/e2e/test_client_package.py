"""govex-client as another team installs it: into a fresh virtualenv, with
none of the server's dependencies, and a consumer project that calls it
type-checks under mypy --strict against the installed distribution."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.server_process import BIN

CONSUMER = '''"""A project of another team, calling govex."""

import asyncio

from govex.governance.v1 import plan_pb2
from govex_client import ClientConfig, GovexClient, GovexRpcError


async def propose() -> str:
    async with GovexClient(ClientConfig.from_env()) as client:
        try:
            plan: plan_pb2.Plan = await client.propose_plan([("BTC", 60.0), ("USDT", 40.0)], "x")
        except GovexRpcError as error:
            return error.reason
        async for message in client.watch_freeze_events():
            return str(message.event.sequence)
        return plan.etag


print(asyncio.run(propose()))
'''
WRONG = CONSUMER.replace('[("BTC", 60.0), ("USDT", 40.0)], "x"', '"BTC=60", 40')


def _run(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=600, check=False, cwd=cwd
    )


def test_the_client_installs_alone_and_type_checks_in_a_consumer(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    assert _run(sys.executable, "-m", "venv", str(venv)).returncode == 0
    python = str(venv / "bin" / "python")
    installed = _run(python, "-m", "pip", "install", "--quiet", "clients/")
    assert installed.returncode == 0, installed.stderr
    listed = _run(python, "-m", "pip", "list", "--format=freeze")
    names = {line.split("==")[0].lower() for line in listed.stdout.splitlines()}
    assert "govex-client" in names
    for server_only in ("ccxt", "sqlalchemy", "asyncpg", "alembic", "govex", "cryptography"):
        assert server_only not in names, names
    project = tmp_path / "consumer"
    project.mkdir()
    (project / "consumer.py").write_text(CONSUMER)
    mypy = [str(BIN / "mypy"), "--strict", "--python-executable", python, "consumer.py"]
    checked = _run(*mypy, cwd=project)
    assert checked.returncode == 0, checked.stdout
    # ... and the check is real: a call with wrong argument types fails it.
    (project / "consumer.py").write_text(WRONG)
    wrong = _run(*mypy, cwd=project)
    assert wrong.returncode == 1 and "propose_plan" in wrong.stdout, wrong.stdout

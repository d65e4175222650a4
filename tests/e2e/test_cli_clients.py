"""End to end: the installed ``govex-server`` as a subprocess, driven by real
clients nobody here wrote: grpcurl (through reflection) and ``buf curl``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.postgres import free_port
from tests.support import PRINCIPALS_FILE, token

BIN = Path(sys.executable).parent
GOV = "govex.governance.v1.GovernanceService"


class Server:
    """``govex-server serve`` on a free port and a fresh SQLite file."""

    def __init__(self, tmp: Path) -> None:
        self.address = f"127.0.0.1:{free_port()}"
        self.log = tmp / "server.log"
        env = {
            **os.environ,
            "GOVEX_COOLDOWN_HOURS": "24",
            "GOVEX_LOG_FORMAT": "json",
            # One slice per leg, so an execution ends at once on the paper account.
            "GOVEX_MIN_TRADE_USD": "4000",
        }
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [
                    str(BIN / "govex-server"),
                    "serve",
                    "--listen",
                    self.address,
                    "--database-url",
                    f"sqlite:///{tmp}/govex.db",
                    "--principals-file",
                    PRINCIPALS_FILE,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("govex-server exited:\n" + self.log.read_text())
            if self.grpcurl("grpc.health.v1.Health/Check", data={}).returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("govex-server did not become healthy:\n" + self.log.read_text())

    def close(self) -> None:
        """Kills the server if it still runs (a test's end)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def grpcurl(
        self,
        *command: str,
        data: object = None,
        who: str | None = None,
        max_time: float | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """``grpcurl -plaintext [token] [-d data] ADDRESS command...``."""
        flags = ["-H", f"authorization: Bearer {token(who)}"] if who else []
        if max_time is not None:
            flags += ["-max-time", str(max_time)]
        if data is not None:
            flags += ["-d", json.dumps(data)]
        return subprocess.run(
            [str(BIN / "grpcurl"), "-plaintext", *flags, self.address, *command],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def call(self, method: str, body: Mapping[str, object], who: str) -> dict[str, Any]:
        """A successful call's JSON answer."""
        result = self.grpcurl(f"{GOV}/{method}", data=body, who=who)
        assert result.returncode == 0, result.stderr
        answer: dict[str, Any] = json.loads(result.stdout)
        return answer

    def stop(self) -> int:
        """SIGTERM, then the exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


def test_grpcurl_lists_both_services_through_reflection(server: Server) -> None:
    result = server.grpcurl("list")
    assert result.returncode == 0, result.stderr
    services = result.stdout.split()
    assert GOV in services
    assert "govex.execution.v1.ExecutionService" in services


def test_grpcurl_describes_a_message(server: Server) -> None:
    result = server.grpcurl("describe", "govex.governance.v1.ProposePlanRequest")
    assert result.returncode == 0, result.stderr
    assert "repeated .govex.governance.v1.TargetWeight targets = 1" in result.stdout
    # Reflection carries the contract's comments (the message's and a field's).
    assert "// Request of ProposePlan." in result.stdout
    assert "// Why the plan is proposed. At most 1000 characters." in result.stdout
    order = server.grpcurl("describe", "govex.execution.v1.Order")
    assert "// One order sent (or to be sent) to an exchange." in order.stdout, order.stdout
    service = server.grpcurl("describe", "govex.execution.v1.ExecutionService")
    assert "// Returns one exchange account with its balances and markets" in service.stdout


def test_the_protoset_command_prints_the_documented_contract(tmp_path: Path) -> None:
    from google.protobuf import descriptor_pb2

    out = subprocess.run(
        [str(BIN / "govex-server"), "protoset"], capture_output=True, timeout=60, check=True
    ).stdout
    files = {f.name: f for f in descriptor_pb2.FileDescriptorSet.FromString(out).file}
    assert "govex/execution/v1/execution.proto" in files
    assert "google/type/decimal.proto" in files  # imports included: usable on its own
    comments = [
        loc.leading_comments
        for loc in files["govex/execution/v1/execution.proto"].source_code_info.location
    ]
    assert (
        " One order sent (or to be sent) to an exchange. Every field is set by the\n server.\n"
        in comments
    )
    protoset = tmp_path / "govex.protoset"
    protoset.write_bytes(out)
    described = subprocess.run(
        [
            str(BIN / "grpcurl"),
            "-protoset",
            str(protoset),
            "describe",
            "govex.execution.v1.Balance",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "// What an account holds of one asset" in described.stdout


def test_grpcurl_checks_health_per_service(server: Server) -> None:
    for service in ("", GOV, "govex.execution.v1.ExecutionService"):
        result = server.grpcurl("grpc.health.v1.Health/Check", data={"service": service})
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["status"] == "SERVING"


def test_grpcurl_walks_a_plan_to_active_with_two_principals(server: Server) -> None:
    body = {
        "targets": [
            {"asset": "BTC", "weight_percent": 60},
            {"asset": "USDT", "weight_percent": 40},
        ],
        "reason": "e2e",
    }
    plan = server.call("ProposePlan", body, "alice")["plan"]
    assert isinstance(plan, dict)
    for method, who in (("ReviewPlan", "bob"), ("ApprovePlan", "bob"), ("ActivatePlan", "carol")):
        plan = server.call(method, {"name": plan["name"], "etag": plan["etag"]}, who)["plan"]
        assert isinstance(plan, dict)
    assert plan["state"] == "PLAN_STATE_ACTIVE"
    state = server.call("GetGovernanceState", {}, "victor")["state"]
    assert isinstance(state, dict)
    assert state["active_plan"]["name"] == plan["name"]


def test_grpcurl_shows_aborted_with_the_reason_for_a_stale_etag(server: Server) -> None:
    body = {"targets": [{"asset": "BTC", "weight_percent": 100}]}
    plan = server.call("ProposePlan", body, "alice")["plan"]
    assert isinstance(plan, dict)
    server.call("ReviewPlan", {"name": plan["name"], "etag": plan["etag"]}, "bob")
    stale = server.grpcurl(
        f"{GOV}/ApprovePlan", data={"name": plan["name"], "etag": plan["etag"]}, who="bob"
    )
    assert stale.returncode != 0
    assert "Code: Aborted" in stale.stderr
    assert "ETAG_MISMATCH" in stale.stderr
    assert "currentEtag" in stale.stderr


def test_buf_curl_makes_a_call(server: Server) -> None:
    result = subprocess.run(
        [
            str(BIN / "buf"),
            "curl",
            "--protocol",
            "grpc",
            "--http2-prior-knowledge",
            "-H",
            f"authorization: Bearer {token('victor')}",
            "--data",
            "{}",
            f"http://{server.address}/{GOV}/GetCooldownStatus",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["cooldown"]["publishingAllowed"] is True


def test_sigterm_shuts_down_gracefully(server: Server) -> None:
    assert server.stop() == 0
    log = server.log.read_text()
    assert "shutting down" in log
    assert "stopped" in log


def test_migrate_subcommand_creates_the_schema(tmp_path: Path) -> None:
    database = tmp_path / "migrated.db"
    result = subprocess.run(
        [str(BIN / "govex-server"), "migrate", "--database-url", f"sqlite:///{database}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    import sqlite3

    with sqlite3.connect(database) as db:
        names = {row[0] for row in db.execute("select name from sqlite_master where type='table'")}
        revision = db.execute("select version_num from alembic_version").fetchone()[0]
    assert {"plans", "governance_mode", "audit_log", "idempotency_keys"} <= names
    from alembic.script import ScriptDirectory

    import govex_server.store.migrate as migrations

    head = ScriptDirectory(str(migrations._SCRIPTS)).get_current_head()
    assert revision == head


def test_serve_without_principals_refuses_to_start(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVEX_")}
    result = subprocess.run(
        [
            str(BIN / "govex-server"),
            "serve",
            "--database-url",
            f"sqlite:///{tmp_path}/x.db",
            "--listen",
            f"127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert result.returncode == 2
    assert "principals_file: required" in result.stderr


def test_grpcurl_freezes_lists_checks_and_reads_the_event(server: Server) -> None:
    created = server.call(
        "Freeze",
        {"type": "FREEZE_TYPE_S3_ALERT_FREEZE", "reason": "e2e alert", "ttl": "600s"},
        "carol",
    )["freeze"]
    assert created["type"] == "FREEZE_TYPE_S3_ALERT_FREEZE"
    listed = server.call("ListFreezes", {}, "victor")
    assert [f["name"] for f in listed["freezes"]] == [created["name"]]
    verdict = server.call("CheckOperation", {"operation": "OPERATION_PURCHASE"}, "victor")
    assert verdict["verdict"].get("allowed", False) is False
    assert verdict["verdict"]["blocking_freezes"][0]["name"] == created["name"]
    allowed = server.call("CheckOperation", {"operation": "OPERATION_HEDGE"}, "victor")
    assert allowed["verdict"]["allowed"] is True
    # Replay from the oldest event, then the stream stays open: grpcurl stops
    # it after 3 s.
    stream = server.grpcurl(
        f"{GOV}/WatchFreezeEvents", data={"from_oldest": True}, who="victor", max_time=3
    )
    assert "DeadlineExceeded" in stream.stderr
    first = json.loads(stream.stdout.split("\n}\n")[0] + "\n}")
    assert first["event"]["kind"] == "EVENT_KIND_FREEZE_CREATED"
    assert first["event"]["freeze"]["name"] == created["name"]
    assert first["event"]["sequence"] == "1"


def test_grpcurl_publishes_signals_and_reads_the_policy_back(server: Server) -> None:
    import datetime as dt

    as_of = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    published = server.call(
        "PublishSignals",
        {
            "signals": {
                "as_of": as_of,
                "source": "e2e",
                "confidence": 0.9,
                "contradiction_index": 0.1,
                "blended_score": 85,
                "volatility": [{"asset": "BTC", "volatility": 0.6}],
            }
        },
        "model-7",
    )
    assert published["policy"]["mode"] == "POLICY_MODE_AGGRESSIVE"
    state = server.call("GetGovernanceState", {}, "victor")["state"]
    assert state["policy"]["mode"] == "POLICY_MODE_AGGRESSIVE"
    assert state["signals_freshness"] == "SIGNAL_FRESHNESS_FRESH"
    explanation = state["policy"]["explanation"]
    assert any("AGGRESSIVE" in line for line in explanation)
    assert any("smoothed" in line for line in explanation)


def test_grpcurl_dry_run_execution_and_watch_orders_to_the_end(server: Server) -> None:
    import datetime as dt

    as_of = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    server.call(
        "PublishSignals",
        {
            "signals": {
                "as_of": as_of,
                "confidence": 0.9,
                "contradiction_index": 0.1,
                "blended_score": 85,
            }
        },
        "model-7",
    )
    targets = [
        {"asset": "BTC", "weight_percent": 26},
        {"asset": "ETH", "weight_percent": 17},
        {"asset": "USDT", "weight_percent": 57},
    ]
    plan = server.call("ProposePlan", {"targets": targets}, "alice")["plan"]
    for method, who in (("ReviewPlan", "bob"), ("ApprovePlan", "bob"), ("ActivatePlan", "carol")):
        plan = server.call(method, {"name": plan["name"], "etag": plan["etag"]}, who)["plan"]
    exe = "govex.execution.v1.ExecutionService"

    def execute(body: dict[str, Any]) -> dict[str, Any]:
        result = server.grpcurl(f"{exe}/ExecutePlan", data=body, who="carol")
        assert result.returncode == 0, result.stderr
        execution: dict[str, Any] = json.loads(result.stdout)["execution"]
        return execution

    dry = execute({"plan": plan["name"], "etag": plan["etag"], "dry_run": True})
    assert dry["state"] == "EXECUTION_STATE_SIMULATED"
    real = execute({"plan": plan["name"], "etag": plan["etag"]})
    assert real["state"] == "EXECUTION_STATE_RUNNING"
    watched = server.grpcurl(
        f"{exe}/WatchOrders",
        data={"execution": real["name"], "from_oldest": True},
        who="victor",
        max_time=8,
    )
    messages = [json.loads(part) for part in _json_objects(watched.stdout)]
    events = [m["event"] for m in messages if "event" in m]
    assert events, watched.stderr
    last_states = {e["order"]["name"]: e["order"]["state"] for e in events}
    assert set(last_states.values()) == {"ORDER_STATE_FILLED"}
    changes = [m["execution_event"] for m in messages if "execution_event" in m]
    assert [c["type"] for c in changes] == [
        "EXECUTION_EVENT_TYPE_STARTED",
        "EXECUTION_EVENT_TYPE_ENDED",
    ], watched.stderr
    assert changes[-1]["execution"]["state"] == "EXECUTION_STATE_SUCCEEDED"
    got = server.grpcurl(f"{exe}/GetExecution", data={"name": real["name"]}, who="victor")
    assert json.loads(got.stdout)["execution"]["state"] == "EXECUTION_STATE_SUCCEEDED"
    # The example another team copies follows the same execution to its end.
    example = subprocess.run(
        [
            sys.executable,
            "clients/examples/watch_orders.py",
            "--target",
            server.address,
            "--token",
            token("victor"),
            "--execution",
            real["name"],
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert example.returncode == 0, example.stderr
    assert "execution ended: SUCCEEDED" in example.stdout
    assert "FILLED" in example.stdout


def _json_objects(text: str) -> list[str]:
    """Splits grpcurl's stream output (pretty-printed objects one after another)."""
    objects, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "{":
            if depth == 0:
                start = i
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                objects.append(text[start : i + 1])
    return objects

"""Every ``govex`` command against a live server: the plan walk with the
etag the human read, the kill switch, an execution watched to its end,
the listings in tables and in JSON, and the refusals as one line with a
hint and the exit code of their class."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_cli_clients import BIN, Server
from tests.support import token

SIGNALS = {"confidence": 0.9, "contradiction_index": 0.1, "blended_score": 85}


def govex(
    server: Server, who: str | None, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``govex ARGS`` as ``who`` (GOVEX_TOKEN), against ``server`` (GOVEX_TARGET)."""
    env = {**os.environ, "GOVEX_TARGET": server.address}
    env.pop("GOVEX_TOKEN", None)
    if who:
        env["GOVEX_TOKEN"] = token(who)
    return subprocess.run(
        [str(BIN / "govex"), *args],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        env=env,
        input=stdin,
    )


def ok(server: Server, who: str | None, *args: str) -> Any:
    """A command's JSON output; it must succeed."""
    done = govex(server, who, "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def slow_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """A server whose paper exchange takes 3 s per call: an execution lasts
    long enough for a watch started after it to follow it live."""
    book = tmp_path / "paper.toml"
    book.write_text(
        "latency_ms = 3000\n[balances]\nUSDT = 100000\nBTC = 1\nETH = 10\n"
        "[prices]\nBTC = 50000\nETH = 2500\n"
    )
    monkeypatch.setenv("GOVEX_PAPER_EXCHANGE_FILE", str(book))
    s = Server(tmp_path)
    try:
        yield s
    finally:
        s.close()


def start_watch(server: Server, tmp: Path, what: str) -> tuple[subprocess.Popen[bytes], Path]:
    """``govex --json watch WHAT --from-oldest`` in the background, as victor,
    and the file its output goes to."""
    env = {**os.environ, "GOVEX_TARGET": server.address, "GOVEX_TOKEN": token("victor")}
    seen = tmp / f"{what}.jsonl"
    with open(seen, "w") as out:
        command = [str(BIN / "govex"), "--json", "watch", what, "--from-oldest"]
        return subprocess.Popen(command, stdout=out, env=env), seen


def watched_events(watch: tuple[subprocess.Popen[bytes], Path], count: int) -> list[Any]:
    """The first ``count`` events the watcher printed (waited for with a
    deadline), then the watcher is stopped."""
    watcher, seen = watch
    try:
        deadline = time.monotonic() + 60
        while len(seen.read_text().splitlines()) < count:
            assert time.monotonic() < deadline, seen.read_text()
            assert watcher.poll() is None, "the watch ended by itself"
            time.sleep(0.1)
    finally:
        watcher.terminate()
        watcher.wait(30)
    return [json.loads(line) for line in seen.read_text().splitlines()]


def test_a_plan_walked_to_an_execution_watched_to_its_end(
    slow_server: Server, tmp_path: Path
) -> None:
    import datetime as dt

    server = slow_server
    signals = dict(SIGNALS, as_of=(dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    (tmp_path / "signals.json").write_text(json.dumps(signals))
    published = ok(server, "model-7", "signals", "publish", str(tmp_path / "signals.json"))
    assert published["policy"]["mode"] == "POLICY_MODE_AGGRESSIVE"
    assert ok(server, "victor", "signals", "show")["signals"]["confidence"] == 0.9
    plan = ok(server, "alice", "plans", "propose", "BTC=26", "ETH=17", "USDT=57", "--reason", "e2e")
    name = plan["name"]
    # show prints the etag the human reviews; the step is taken at that one.
    shown = govex(server, "bob", "plans", "show", name)
    assert shown.returncode == 0 and plan["etag"] in shown.stdout, shown.stdout
    reviewed = ok(server, "bob", "plans", "review", name, "--etag", plan["etag"])
    assert reviewed["state"] == "PLAN_STATE_REVIEWED"
    # An etag read before the review is stale: a conflict (6), with the hint.
    stale = govex(server, "bob", "plans", "approve", name, "--etag", plan["etag"])
    assert stale.returncode == 6, stale.stderr
    assert stale.stderr.startswith("govex: ABORTED ETAG_MISMATCH")
    assert "hint: it changed since you read it" in stale.stderr
    approved = ok(server, "bob", "plans", "approve", name, "--etag", reviewed["etag"])
    active = ok(server, "carol", "plans", "activate", name, "--etag", approved["etag"])
    assert active["state"] == "PLAN_STATE_ACTIVE"
    diff = ok(server, "victor", "plans", "diff", name)
    assert {a["asset"] for a in diff["assets"]} == {"BTC", "ETH", "USDT"}
    listed = ok(server, "victor", "plans", "list", "--state", "active")
    assert [p["name"] for p in listed] == [name]
    table = govex(server, "victor", "plans", "list")
    assert name in table.stdout and "ACTIVE" in table.stdout

    dry = ok(server, "carol", "execute", name, "--etag", active["etag"], "--dry-run")
    assert dry["state"] == "EXECUTION_STATE_SIMULATED"
    real = ok(server, "carol", "execute", name, "--etag", active["etag"])
    # Followed live, event by event, to its end.
    watched = govex(server, "victor", "watch", "orders", real["name"])
    assert watched.returncode == 0, watched.stderr
    assert "STARTED: RUNNING" in watched.stdout, watched.stdout
    assert " FILLED" in watched.stdout
    assert watched.stdout.rstrip().endswith("execution ended: SUCCEEDED every order filled")
    # Watching it again, now that it has ended: its orders and its end, at once.
    again = govex(server, "victor", "watch", "orders", real["name"])
    assert again.returncode == 0, again.stderr
    assert again.stdout.rstrip().endswith("execution ended: SUCCEEDED every order filled")
    executions = ok(server, "victor", "executions", "--state", "succeeded")
    assert [e["name"] for e in executions] == [real["name"]]
    assert ok(server, "victor", "executions", real["name"])["state"] == "EXECUTION_STATE_SUCCEEDED"
    orders = ok(server, "victor", "orders", real["name"])
    assert orders and {o["state"] for o in orders} == {"ORDER_STATE_FILLED"}
    assert "FILLED" in govex(server, "victor", "orders", real["name"]).stdout
    assert ok(server, "victor", "plans", "show", name)["state"] == "PLAN_STATE_EXECUTED"
    assert ok(server, "victor", "state")["mode"] == "GOVERNANCE_MODE_MANUAL"
    assert "next_allowed_time" in json.dumps(ok(server, "victor", "cooldown"))


def test_the_kill_switch_and_back(server: Server, tmp_path: Path) -> None:
    watch = start_watch(server, tmp_path, "freezes")
    frozen = ok(server, "carol", "freeze", "full_freeze", "--reason", "kill switch", "--ttl", "30m")
    assert frozen["type"] == "FREEZE_TYPE_FULL_FREEZE"
    assert [f["name"] for f in ok(server, "victor", "freezes")] == [frozen["name"]]
    blocked = govex(server, "victor", "check", "purchase")
    assert blocked.returncode == 3, blocked.stdout  # blocked: the exit code says so
    assert "FULL_FREEZE" in blocked.stdout
    lifted = ok(server, "carol", "unfreeze", "--all", "--reason", "all clear")
    assert [f["name"] for f in lifted] == [frozen["name"]]
    assert ok(server, "victor", "freezes") == []
    assert govex(server, "victor", "check", "purchase").returncode == 0
    ended = ok(server, "victor", "freezes", "--ended")
    assert ended[0]["end"] == "FREEZE_END_LIFTED"
    # The watcher saw the freeze come and go, live.
    kinds = [event["kind"] for event in watched_events(watch, 2)]
    assert kinds == ["EVENT_KIND_FREEZE_CREATED", "EVENT_KIND_FREEZE_LIFTED"], kinds


def test_reject_cancel_and_the_event_stream(server: Server, tmp_path: Path) -> None:
    first = ok(server, "alice", "plans", "propose", "BTC=50", "USDT=50")
    reviewed = ok(server, "bob", "plans", "review", first["name"], "--etag", first["etag"])
    missing = govex(server, "bob", "plans", "reject", first["name"], "--etag", reviewed["etag"])
    assert missing.returncode == 2 and "--reason" in missing.stderr  # a rejection says why
    rejected = ok(
        server,
        "bob",
        "plans",
        "reject",
        first["name"],
        "--etag",
        reviewed["etag"],
        "--reason",
        "too much BTC",
    )
    assert rejected["state"] == "PLAN_STATE_CANCELLED"
    second = ok(server, "alice", "plans", "propose", "ETH=50", "USDT=50")
    cancelled = ok(server, "alice", "plans", "cancel", second["name"], "--etag", second["etag"])
    assert cancelled["state"] == "PLAN_STATE_CANCELLED"
    # Every one of those changes is on the event stream, in order.
    events = watched_events(start_watch(server, tmp_path, "events"), 5)
    assert [e["resource"] for e in events[:5]] == [first["name"]] * 3 + [second["name"]] * 2
    sequences = [int(e["sequence"]) for e in events]
    assert sequences == sorted(set(sequences))


def test_mode_is_shown_and_set_at_its_etag(server: Server) -> None:
    mode = ok(server, "victor", "mode")
    assert mode["mode"] == "GOVERNANCE_MODE_MANUAL"
    changed = ok(server, "dana", "mode", "ai_assisted", "--etag", mode["etag"], "--reason", "e2e")
    assert changed["mode"] == "GOVERNANCE_MODE_AI_ASSISTED"
    without = govex(server, "dana", "mode", "manual")
    assert without.returncode == 2 and "needs --etag" in without.stderr


def test_refusals_are_one_line_with_a_hint_and_an_exit_code(server: Server) -> None:
    bogus = govex(server, "victor", "plans", "list", "--state", "bogus")
    assert bogus.returncode == 2
    assert bogus.stderr.strip() == (
        "govex: --state 'bogus' is not one of DRAFT, REVIEWED, APPROVED, ACTIVE, EXECUTED, "
        "CANCELLED"
    )
    anonymous = govex(server, None, "plans", "list")
    assert anonymous.returncode == 4
    assert "pass --token TOKEN or set GOVEX_TOKEN" in anonymous.stderr
    denied = govex(server, "bob", "plans", "propose", "BTC=50", "USDT=50")
    assert denied.returncode == 4 and "PERMISSION_DENIED ROLE_REQUIRED" in denied.stderr
    bad = govex(server, "alice", "plans", "propose", "BTC=50", "USDT=40")
    assert bad.returncode == 3 and "field targets" in bad.stderr, bad.stderr
    missing = govex(server, "victor", "plans", "show", "plans/01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert missing.returncode == 5
    down = subprocess.run(
        [str(BIN / "govex"), "--target", "127.0.0.1:1", "--token", "x", "--timeout", "2", "state"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert down.returncode == 7 and "is govex-server running at 127.0.0.1:1" in down.stderr
    for done in (bogus, anonymous, denied, bad, missing, down):
        assert "Traceback" not in done.stderr


def test_the_examples_run_as_the_readme_says(server: Server) -> None:
    """``clients/examples/*.py`` run directly (shebang, run bit) with the
    virtualenv on PATH, configured by GOVEX_TARGET and GOVEX_TOKEN."""
    env = {
        **os.environ,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "GOVEX_TARGET": server.address,
        "GOVEX_TOKEN": token("alice"),
    }

    def example(*command: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [f"./clients/examples/{command[0]}", *command[1:]],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env={**env, **extra},
        )

    proposed = example("propose_plan.py", "BTC=70", "USDT=30")
    assert proposed.returncode == 0, proposed.stderr
    name, _, state = proposed.stdout.split()[:3]
    assert name.startswith("plans/") and state == "DRAFT", proposed.stdout  # a name, not 1
    refused = example("propose_plan.py", "BTC=70", "USDT=20")
    assert refused.returncode == 1 and "targets" in refused.stdout, refused.stdout
    frozen = ok(server, "carol", "freeze", "ERROR_FREEZE", "--reason", "example", "--ttl", "5m")
    watched = example(
        "watch_freezes.py", "--from-oldest", "--count", "1", GOVEX_TOKEN=token("victor")
    )
    assert watched.returncode == 0, watched.stderr
    assert f"FREEZE_CREATED {frozen['name']} ERROR_FREEZE: example" in watched.stdout

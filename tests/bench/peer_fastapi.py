"""The ProposePlan peer: the same durable write (plan, event with the next
gap-free sequence, audit record; one transaction; SQLite WAL with
synchronous=FULL) in FastAPI + SQLAlchemy, the way such a service is usually
written: a sync endpoint on FastAPI's thread pool, one transaction per
request. ``make bench`` loads it with h2load (HTTP/1.1) in the same run as
govex and counts its rows afterwards."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, insert, select, update

from govex_server.domain import audit_chain
from govex_server.store import tables as t
from tests.bench import h2load
from tests.postgres import free_port

BODY = {
    "reason": "bench",
    "targets": [
        {"asset": "BTC", "weight_percent": 50},
        {"asset": "ETH", "weight_percent": 20},
        {"asset": "USDT", "weight_percent": 30},
    ],
}


def engine_for(path: str) -> Engine:
    """A SQLAlchemy engine with the durability govex keeps."""
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA journal_mode=WAL")
        dbapi_conn.execute("PRAGMA synchronous=FULL")
        dbapi_conn.execute("PRAGMA busy_timeout=30000")

    t.metadata.create_all(engine)
    with engine.begin() as conn:
        if conn.execute(select(t.event_counter)).first() is None:
            conn.execute(insert(t.event_counter).values(id=1, value=0))
            conn.execute(
                insert(t.governance_mode).values(
                    id=1, mode="MANUAL", version=1, updated_at=None, updated_by=""
                )
            )
            conn.execute(insert(t.audit_head).values(id=1, sequence=0, hash=audit_chain.GENESIS))
    return engine


def app(path: str) -> Any:
    """The FastAPI application."""
    from fastapi import FastAPI, HTTPException

    engine = engine_for(path)
    api = FastAPI()

    @api.post("/v1/plans")
    def propose(body: dict[str, Any]) -> dict[str, Any]:
        targets = body.get("targets") or []
        if abs(sum(float(x["weight_percent"]) for x in targets) - 100) > 0.01:
            raise HTTPException(400, "targets must sum to 100")
        now = datetime.now(UTC)
        plan_id = uuid.uuid4().hex[:26].upper()
        step = {"principal": "alice", "kind": "human", "time": now.isoformat(), "comment": ""}
        with engine.begin() as conn:
            mode = conn.execute(select(t.governance_mode.c.mode)).scalar_one()
            conn.execute(
                insert(t.plans).values(
                    id=plan_id,
                    state="DRAFT",
                    version=1,
                    targets=[[x["asset"], x["weight_percent"]] for x in targets],
                    reason=body.get("reason", ""),
                    proposed_by="alice",
                    proposed_under_mode=mode,
                    steps={"proposed": step},
                    activated_at=None,
                    executed_at=None,
                    cooldown_overridden=False,
                    created_at=now,
                    updated_at=now,
                )
            )
            sequence = conn.execute(
                update(t.event_counter)
                .values(value=t.event_counter.c.value + 1)
                .returning(t.event_counter.c.value)
            ).scalar_one()
            payload = json.dumps({"plan": plan_id, "sequence": sequence}).encode()
            conn.execute(
                insert(t.events).values(
                    sequence=sequence,
                    kind="PLAN_PROPOSED",
                    time=now,
                    actor="alice",
                    resource=f"plans/{plan_id}",
                    payload=payload,
                )
            )
            # The same tamper-evident audit record govex writes: the next
            # sequence of the chain, hashed with its predecessor's hash.
            record = {
                "at": now,
                "principal": "alice",
                "principal_kind": "human",
                "mode": mode,
                "rpc": "ProposePlan",
                "resource": f"plans/{plan_id}",
                "etag_before": None,
                "etag_after": None,
                "reason": body.get("reason", ""),
                "details": {},
            }
            head_sequence, head_hash = conn.execute(
                select(t.audit_head.c.sequence, t.audit_head.c.hash)
            ).one()
            audit_sequence = head_sequence + 1
            digest = audit_chain.link(head_hash, audit_chain.content(audit_sequence, record))
            conn.execute(update(t.audit_head).values(sequence=audit_sequence, hash=digest))
            conn.execute(
                insert(t.audit_log).values(
                    **record, sequence=audit_sequence, previous_hash=head_hash, hash=digest
                )
            )
        return {"name": f"plans/{plan_id}", "sequence": sequence}

    return api


def run(tmp: Path, requests: int, clients: int, streams: int) -> tuple[float, int]:
    """Loads the peer; returns (requests per second, rows written)."""
    port = free_port()
    database = tmp / "peer.db"
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.bench.peer_fastapi", str(port), str(database)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with sqlite3.connect(database) as db:
                    db.execute("select 1 from plans limit 1")
                import urllib.request

                urllib.request.urlopen(f"http://127.0.0.1:{port}/docs", timeout=1)
                break
            except Exception:
                time.sleep(0.2)
        url = f"http://127.0.0.1:{port}/v1/plans"
        body = json.dumps(BODY).encode()
        h2load.run_http1(url, body, requests // 10, clients, streams)
        measured = h2load.run_http1(url, body, requests, clients, streams)
    finally:
        server.terminate()
        server.wait(timeout=30)
    with sqlite3.connect(database) as db:
        plans = db.execute("select count(*) from plans").fetchone()[0]
        audits = db.execute("select count(*) from audit_log").fetchone()[0]
        events = db.execute("select count(*) from events").fetchone()[0]
    expected = requests + requests // 10
    if not plans == audits == events == expected:
        raise RuntimeError(f"peer wrote {plans}/{audits}/{events} rows for {expected} requests")
    return measured.requests_per_second, plans


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(app(sys.argv[2]), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")

"""The paper exchange's order side: fills, fees, resting orders, its own
persisted book, and every injectable fault."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from govex_server.exchanges.errors import (
    ExchangeUnavailable,
    InsufficientFunds,
    OrderNotFound,
    OrderRejected,
    OutcomeUnknown,
    RateLimited,
)
from govex_server.exchanges.paper import PaperConfig, PaperExchange
from govex_server.exchanges.paper_book import PaperBook

D = Decimal
CONFIG = PaperConfig(
    balances={"USDT": D(100_000), "BTC": D(1)},
    prices={"BTC": D(50_000)},
    slippage_bps=10,
    fee_rate=D("0.001"),
)


def trading(path: Path, config: PaperConfig = CONFIG) -> PaperExchange:
    return PaperExchange("paper", config, PaperBook(str(path / "book.db"), config.balances))


async def test_buy_fills_at_the_slipped_reference_with_fees(tmp_path: Path) -> None:
    t = trading(tmp_path)
    order = await t.create_order("gxA1", "BTC/USDT", "BUY", D("0.1"), D("50100.0"))
    assert order.status == "closed"
    assert order.filled == D("0.1")
    assert order.average_price == D(50_050)  # 50,000 + 10 bps
    assert order.fee == D("5.005")
    balances = await t.balances()
    # Exact to the last unit: the book keeps decimal text, not floats.
    assert balances["BTC"].total == D("1.1")
    assert balances["USDT"].free == D("94989.995")
    assert balances["USDT"].total == balances["USDT"].free  # nothing left locked


async def test_sell_credits_the_quote_minus_fee(tmp_path: Path) -> None:
    t = trading(tmp_path)
    order = await t.create_order("gxS1", "BTC/USDT", "SELL", D("0.5"), D("49900.0"))
    assert order.status == "closed"
    balances = await t.balances()
    assert balances["BTC"].total == D("0.5")
    assert balances["USDT"].total == D(100_000) + D("0.5") * D(49_950) * D("0.999")


async def test_a_limit_that_does_not_cross_rests_until_cancelled(tmp_path: Path) -> None:
    t = trading(tmp_path)
    order = await t.create_order("gxR1", "BTC/USDT", "BUY", D("0.1"), D("49000.0"))
    assert (order.status, order.filled) == ("open", D(0))
    locked = await t.balances()
    assert locked["USDT"].free == D(100_000) - D("0.1") * D(49_000) * D("1.001")
    assert [o.client_id for o in await t.orders("gx", open_only=True)] == ["gxR1"]
    cancelled = await t.cancel_order("gxR1")
    assert cancelled.status == "canceled"
    assert (await t.balances())["USDT"].free == D(100_000)
    assert (await t.cancel_order("gxR1")).status == "canceled"  # idempotent


async def test_every_create_that_arrives_is_counted_refused_ones_too(tmp_path: Path) -> None:
    # How the crash tests see an order sent twice: the duplicate is refused,
    # yet its arrival is in the book, with the first.
    t = trading(tmp_path)
    await t.create_order("gxC1", "BTC/USDT", "BUY", D("0.01"), D("50100.0"))
    with pytest.raises(OrderRejected, match="Duplicate"):
        await t.create_order("gxC1", "BTC/USDT", "BUY", D("0.01"), D("50100.0"))
    with pytest.raises(InsufficientFunds):
        await t.create_order("gxC2", "BTC/USDT", "BUY", D(100), D("50100.0"))
    with sqlite3.connect(tmp_path / "book.db") as book:
        received = dict(book.execute("SELECT client_id, count FROM received"))
    assert received == {"gxC1": 2, "gxC2": 1}


async def test_client_order_ids_are_remembered(tmp_path: Path) -> None:
    t = trading(tmp_path)
    await t.create_order("gxD1", "BTC/USDT", "BUY", D("0.01"), D("50100.0"))
    with pytest.raises(OrderRejected, match="Duplicate"):
        await t.create_order("gxD1", "BTC/USDT", "BUY", D("0.01"), D("50100.0"))
    assert (await t.fetch_order("gxD1")).filled == D("0.01")
    with pytest.raises(OrderNotFound):
        await t.fetch_order("gxNOPE")
    assert [o.client_id for o in await t.orders("gxD")] == ["gxD1"]
    assert await t.orders("other") == []


async def test_insufficient_funds_places_nothing(tmp_path: Path) -> None:
    t = trading(tmp_path)
    with pytest.raises(InsufficientFunds):
        await t.create_order("gxI1", "BTC/USDT", "SELL", D("2.0"), D("49000.0"))
    with pytest.raises(OrderNotFound):
        await t.fetch_order("gxI1")
    assert (await t.balances())["BTC"].free == D(1)


async def test_the_book_survives_a_restart_of_the_exchange(tmp_path: Path) -> None:
    t = trading(tmp_path)
    await t.create_order("gxP1", "BTC/USDT", "BUY", D("0.1"), D("50100.0"))
    again = trading(tmp_path)  # same file: not seeded again
    assert (await again.fetch_order("gxP1")).status == "closed"
    assert (await again.balances())["BTC"].total == D("1.1")


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("reject", OrderRejected),
        ("insufficient_funds", InsufficientFunds),
        ("rate_limited", RateLimited),
        ("unavailable", ExchangeUnavailable),
        ("timeout_before", OutcomeUnknown),
    ],
)
async def test_faults_that_place_nothing(tmp_path: Path, fault: str, error: type) -> None:
    t = trading(tmp_path)
    t.inject(fault)
    with pytest.raises(error) as caught:
        await t.create_order("gxF1", "BTC/USDT", "BUY", D("0.1"), D("50100.0"))
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after == 2.0
    with pytest.raises(OrderNotFound):
        await t.fetch_order("gxF1")
    # The fault was used up: the same order now goes through.
    assert (
        await t.create_order("gxF1", "BTC/USDT", "BUY", D("0.1"), D("50100.0"))
    ).status == "closed"


async def test_timeout_after_accepting_leaves_the_order_to_be_found(tmp_path: Path) -> None:
    t = trading(tmp_path)
    t.inject("timeout_after")
    with pytest.raises(OutcomeUnknown):
        await t.create_order("gxT1", "BTC/USDT", "BUY", D("0.1"), D("50100.0"))
    found = await t.fetch_order("gxT1")  # resolved by lookup, never by resending
    assert found.status == "closed"


async def test_partial_fill_then_the_rest(tmp_path: Path) -> None:
    t = trading(tmp_path)
    t.inject("partial_fill")
    order = await t.create_order("gxH1", "BTC/USDT", "BUY", D("0.2"), D("50100.0"))
    assert order.status == "open"
    assert order.filled == D("0.1")
    await t.fill_resting()
    done = await t.fetch_order("gxH1")
    assert done.status == "closed"
    assert done.filled == D("0.2")


async def test_a_fill_can_win_the_race_against_a_cancel(tmp_path: Path) -> None:
    t = trading(tmp_path)
    t.inject("partial_fill")
    await t.create_order("gxC1", "BTC/USDT", "BUY", D("0.2"), D("50100.0"))
    t.inject("fill_races_cancel")
    ended = await t.cancel_order("gxC1")
    assert ended.status == "closed"
    assert ended.filled == D("0.2")


def test_unknown_fault_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        trading(tmp_path).inject("gremlins")


async def test_a_book_of_floats_is_upgraded_to_exact_text(tmp_path: Path) -> None:
    # A version-1 book (REAL columns) from before amounts were exact.
    path = tmp_path / "book.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE balances (asset TEXT PRIMARY KEY, free REAL NOT NULL, locked REAL NOT NULL);"
        "CREATE TABLE orders (client_id TEXT PRIMARY KEY, exchange_id TEXT NOT NULL,"
        " symbol TEXT NOT NULL, side TEXT NOT NULL, quantity REAL NOT NULL, price REAL NOT NULL,"
        " filled REAL NOT NULL, average_price REAL NOT NULL, fee REAL NOT NULL,"
        " status TEXT NOT NULL, seq INTEGER NOT NULL);"
        "INSERT INTO balances VALUES ('USDT', 94989.995, 0.0), ('BTC', 1.1, 0.0);"
        "INSERT INTO orders VALUES ('gxOLD', 'P1', 'BTC/USDT', 'BUY', 0.1, 50100.0, 0.1,"
        " 50050.0, 5.005, 'closed', 1);"
    )
    db.commit()
    db.close()
    t = trading(tmp_path)
    balances = await t.balances()
    assert (str(balances["USDT"].free), str(balances["BTC"].total)) == ("94989.995", "1.1")
    old = await t.fetch_order("gxOLD")
    assert (str(old.quantity), str(old.fee)) == ("0.1", "5.005")
    # And it trades exactly from there.
    await t.create_order("gxNEW", "BTC/USDT", "SELL", D("0.1"), D(49_000))
    assert (await t.balances())["BTC"].total == D("1.0")


async def test_balances_keep_more_digits_than_a_float_holds(tmp_path: Path) -> None:
    fine = PaperConfig(
        balances={"USDT": D("100000.000000000000000001"), "BTC": D(1)},
        prices={"BTC": D(50_000)},
        slippage_bps=10,
        fee_rate=D("0.001"),
    )
    t = trading(tmp_path, fine)
    await t.create_order("gxE1", "BTC/USDT", "BUY", D("0.1"), D("50100.0"))
    balances = await t.balances()
    # The book sums in SQLite itself, exactly (its own + is a binary float).
    assert str(balances["USDT"].free) == "94989.995000000000000001"


async def test_closing_waits_for_the_transaction_in_flight(tmp_path: Path) -> None:
    # At shutdown a cancelled send leaves its request running in the book;
    # closing the connection under it crashed the process (sqlite3 segfault).
    book = PaperBook(str(tmp_path / "book.db"), CONFIG.balances)
    inside, release = threading.Event(), threading.Event()

    def slow(db: sqlite3.Connection) -> str:
        inside.set()
        release.wait(30)
        return str(db.execute("SELECT free FROM balances WHERE asset = 'BTC'").fetchone()[0])

    running = asyncio.ensure_future(book.run(slow))
    assert await asyncio.to_thread(inside.wait, 30)
    closer = threading.Thread(target=book.close)
    closer.start()
    # close waits for the transaction in the book's thread, not closing under it.
    closer.join(0.2)
    assert closer.is_alive()
    release.set()
    assert await running == "1"
    await asyncio.to_thread(closer.join, 30)
    assert not closer.is_alive()
    with pytest.raises(RuntimeError, match="paper book is closed"):
        await book.run(slow)


async def test_the_book_counts_the_wall_time_it_is_held_apart_from_its_cpu(
    tmp_path: Path,
) -> None:
    # The execution benchmark prints both: the book serves one transaction at
    # a time, so the time it is held (waits included) bounds a run's rate,
    # which its CPU time alone understates.
    book = PaperBook(str(tmp_path / "book.db"), CONFIG.balances)

    def waits_off_cpu(db: sqlite3.Connection) -> None:
        time.sleep(0.05)  # inside the transaction: held, but no CPU spent

    await book.run(waits_off_cpu)
    assert book.held_seconds >= 0.05
    assert book.busy_seconds < 0.04
    book.close()


async def test_a_create_request_later_than_the_recv_window_places_nothing(
    tmp_path: Path,
) -> None:
    """As Binance's recvWindow: a request held up on its way (its sender
    paused) is refused when it arrives, so it cannot place an order after
    another replica has looked it up and sent the slice again."""
    times = iter([1000.0, 1004.9, 2000.0, 2005.1])
    t = PaperExchange(
        "paper", CONFIG, PaperBook(str(tmp_path / "book.db"), CONFIG.balances), lambda: next(times)
    )
    await t.create_order("gxOnTime", "BTC/USDT", "BUY", D("0.01"), D("50100.0"))
    with pytest.raises(OrderRejected, match="recvWindow"):
        await t.create_order("gxLate", "BTC/USDT", "BUY", D("0.01"), D("50100.0"))
    assert (await t.fetch_order("gxOnTime")).status == "closed"
    with pytest.raises(OrderNotFound):
        await t.fetch_order("gxLate")


async def test_requests_waiting_for_the_book_share_a_transaction_and_fail_alone(
    tmp_path: Path,
) -> None:
    # While the book's thread serves one request, those that arrive wait
    # and are then served together, in one transaction, each in its own
    # savepoint: the one that raises leaves nothing, the other commits.
    book = PaperBook(str(tmp_path / "book.db"), CONFIG.balances)
    inside, release = threading.Event(), threading.Event()

    def holds_the_book(db: sqlite3.Connection) -> None:
        inside.set()
        release.wait(30)

    def refused(db: sqlite3.Connection) -> None:
        db.execute("UPDATE balances SET free = '0' WHERE asset = 'BTC'")
        raise OrderRejected("refused after writing")

    def credited(db: sqlite3.Connection) -> None:
        db.execute("UPDATE balances SET free = '7' WHERE asset = 'USDT'")

    first = asyncio.ensure_future(book.run(holds_the_book))
    assert await asyncio.to_thread(inside.wait, 30)
    waiting = [asyncio.ensure_future(book.run(w)) for w in (refused, credited)]
    # One turn of the loop: each task's first step queues its request (a
    # task's steps run in the order they were scheduled; no timing).
    await asyncio.sleep(0)
    release.set()
    await first
    with pytest.raises(OrderRejected):
        await waiting[0]
    await waiting[1]
    assert book.transactions == 2
    rows = await book.run(lambda db: db.execute("SELECT asset, free FROM balances").fetchall())
    assert dict(rows) == {"USDT": "7", "BTC": "1"}
    book.close()


async def test_the_latency_is_the_round_trip_and_a_refusal_takes_it_too(tmp_path: Path) -> None:
    config = PaperConfig(
        balances=CONFIG.balances, prices=CONFIG.prices, latency_ms=300, fee_rate=D("0.001")
    )
    t = trading(tmp_path, config)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await t.create_order("gxTrip", "BTC/USDT", "BUY", D("0.01"), D("50100.0"))
    # The book is reached after half of it; the answer comes after all of it.
    assert loop.time() - started >= 0.3
    t.inject("reject")
    started = loop.time()
    with pytest.raises(OrderRejected):
        await t.create_order("gxNo", "BTC/USDT", "BUY", D("0.01"), D("50100.0"))
    assert loop.time() - started >= 0.3


async def test_a_request_is_late_by_what_it_took_beyond_its_way_there(tmp_path: Path) -> None:
    # 20 ms round trip: the way there is 10 ms, so a request that arrives
    # 5.015 s after it was sent is 5.005 s late (beyond the 5 s window).
    config = PaperConfig(balances=CONFIG.balances, prices=CONFIG.prices, latency_ms=20)
    times = iter([1000.0, 1005.015, 1005.02])
    t = PaperExchange(
        "paper", config, PaperBook(str(tmp_path / "book.db"), config.balances), lambda: next(times)
    )
    with pytest.raises(OrderRejected, match="recvWindow"):
        await t.create_order("gxLate", "BTC/USDT", "BUY", D("0.01"), D("50100.0"))

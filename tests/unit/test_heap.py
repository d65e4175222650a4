"""The serving process's garbage collector, settled after start-up: every
object alive then frozen, the young threshold raised, the older generations'
thresholds kept."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from govex_server import heap


@pytest.fixture
def collector() -> Iterator[None]:
    """The test process's collector as it was, after the test."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("collector")
def test_settle_freezes_what_is_alive_and_raises_only_the_young_threshold() -> None:
    gc.set_threshold(700, 11, 12)
    alive = len(gc.get_objects())
    frozen = heap.settle()
    assert frozen == gc.get_freeze_count()
    # Everything the collector tracked is frozen (what the call itself made
    # aside): none of it is scanned again.
    assert frozen >= alive - 100
    assert len(gc.get_objects()) < 100
    assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, 11, 12)


@pytest.mark.usefixtures("collector")
def test_cycles_made_after_settling_are_still_collected_on_their_own() -> None:
    heap.settle()
    young = gc.get_stats()[0]["collections"]
    collected = gc.get_stats()[0]["collected"]
    for _ in range(3 * heap.YOUNG_THRESHOLD):
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
    # Nobody called gc.collect(): the collector ran by itself, and freed them.
    assert gc.get_stats()[0]["collections"] >= young + 2
    assert gc.get_stats()[0]["collected"] > collected + heap.YOUNG_THRESHOLD

"""When a GetGovernanceState frame may be answered again (api/state_frame.py):
only from the very inputs it was read from, and only briefly after."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from govex_server.api.state_frame import REUSE_FOR, GovernanceStateFrames

READ = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def remembered(inputs: tuple[int, int] | None = (3, 5)) -> GovernanceStateFrames:
    frames = GovernanceStateFrames()
    frames.remember(b"frame", inputs, READ)
    return frames


def test_the_same_inputs_within_the_window_get_the_frame_read_then() -> None:
    frames = remembered()
    assert frames.reusable((3, 5), READ) == b"frame"
    assert frames.reusable((3, 5), READ + REUSE_FOR - timedelta(microseconds=1)) == b"frame"


def test_other_inputs_are_read_anew() -> None:
    frames = remembered()
    assert frames.reusable((4, 5), READ) is None
    assert frames.reusable((3, 6), READ) is None
    assert frames.reusable(None, READ) is None


def test_a_frame_is_not_reused_from_its_window_on_nor_before_it_was_read() -> None:
    frames = remembered()
    assert frames.reusable((3, 5), READ + REUSE_FOR) is None
    assert frames.reusable((3, 5), READ - timedelta(microseconds=1)) is None


def test_a_frame_built_while_the_inputs_changed_is_never_reused() -> None:
    assert remembered(None).reusable((3, 5), READ) is None
    assert remembered(None).reusable(None, READ) is None
    assert GovernanceStateFrames().reusable((3, 5), READ) is None

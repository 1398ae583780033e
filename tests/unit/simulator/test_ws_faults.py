"""WebSocket faults: settings, seeded per-connection decisions, and how frames are shaped."""

from __future__ import annotations

import msgspec
import pytest

from candlevault.domain.errors import BadValue
from candlevault.simulator.faults import FaultSettings, FaultSwitchboard, WsFrameFault
from candlevault.simulator.ws_hub import FrameShaper


def _always(duplicate: bool = False, reorder: bool = False) -> WsFrameFault:
    return WsFrameFault(duplicate=duplicate, reorder=reorder)


def test_ws_settings_round_trip_through_json() -> None:
    full = FaultSettings(ws_drop_every_s=2.5, ws_silent=True, ws_duplicate=0.1, ws_reorder=0.2)
    encoded = msgspec.json.encode(full)
    assert msgspec.json.decode(encoded, type=FaultSettings) == full
    assert FaultSettings().ws_drop_every_s == 0.0
    assert not FaultSettings().ws_silent


@pytest.mark.parametrize(
    "patch",
    [{"ws_duplicate": 1.5}, {"ws_reorder": -0.1}, {"ws_drop_every_s": -1}, {"ws_silent": "yes"}],
)
def test_bad_ws_settings_are_refused_and_change_nothing(patch: dict[str, object]) -> None:
    board = FaultSwitchboard(FaultSettings(), seed=1)
    with pytest.raises(BadValue):
        board.update(patch)
    assert board.settings == FaultSettings()


def test_ws_decisions_are_seeded_per_connection() -> None:
    settings = FaultSettings(ws_duplicate=0.3, ws_reorder=0.3)

    def decisions(seed: int, skip: int = 0) -> list[WsFrameFault]:
        board = FaultSwitchboard(settings, seed)
        for _ in range(skip):
            board.ws_stream("binance")
        stream = board.ws_stream("binance")
        return [stream.next() for _ in range(200)]

    first = decisions(7)
    assert first == decisions(7)
    assert first != decisions(8)
    assert first != decisions(7, skip=1)  # the second connection has a stream of its own
    assert 20 < sum(d.duplicate for d in first) < 100
    assert 20 < sum(d.reorder for d in first) < 100


def test_changing_one_ws_share_does_not_reshuffle_the_other() -> None:
    def duplicates(reorder: float) -> list[bool]:
        board = FaultSwitchboard(FaultSettings(ws_duplicate=0.5, ws_reorder=reorder), seed=3)
        stream = board.ws_stream("bybit-spot")
        return [stream.next().duplicate for _ in range(100)]

    assert duplicates(0.0) == duplicates(0.9)


def test_ws_decisions_follow_the_settings_in_force() -> None:
    board = FaultSwitchboard(FaultSettings(), seed=1)
    stream = board.ws_stream("binance")
    assert stream.next() == WsFrameFault()
    board.update({"ws_duplicate": 1.0, "ws_reorder": 1.0})
    assert stream.next() == WsFrameFault(duplicate=True, reorder=True)


def test_shaper_passes_frames_through_without_faults() -> None:
    shaper = FrameShaper(_always)
    assert shaper.shape(["1", "2", "3"]) == ["1", "2", "3"]
    assert (shaper.duplicated, shaper.reordered) == (0, 0)


def test_shaper_duplicates_each_frame_in_a_row() -> None:
    shaper = FrameShaper(lambda: _always(duplicate=True))
    assert shaper.shape(["1", "2"]) == ["1", "1", "2", "2"]
    assert shaper.duplicated == 2


def test_shaper_swaps_each_frame_with_the_next_even_across_batches() -> None:
    shaper = FrameShaper(lambda: _always(reorder=True))
    assert shaper.shape(["1", "2", "3", "4", "5"]) == ["2", "1", "4", "3"]
    assert shaper.shape([]) == []
    assert shaper.shape(["6"]) == ["6", "5"]
    assert shaper.reordered == 3
    assert shaper.shape(["7"]) == []
    assert shaper.discard() == 1
    assert shaper.discard() == 0


def test_a_held_frame_keeps_its_own_duplicate_decision() -> None:
    faults = iter([_always(duplicate=True, reorder=True), _always()])
    shaper = FrameShaper(lambda: next(faults))
    assert shaper.shape(["1", "2"]) == ["2", "1", "1"]
    assert (shaper.duplicated, shaper.reordered) == (1, 1)

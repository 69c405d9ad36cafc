"""The latency window: nearest-rank quantiles over the latest measurements, and a reader that asks often gets
them at most `max_age_s` old (a sort of the whole window each time would hold the engine's GIL)."""

from __future__ import annotations

import pytest

from correlator.live.latency import LatencyWindow


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def test_latency_quantiles_are_nearest_rank() -> None:
    window = LatencyWindow(size=100)
    assert window.quantiles() == {}
    window.add(float(n) for n in range(1, 101))
    assert window.quantiles((0.5, 0.99, 1.0)) == {0.5: 50.0, 0.99: 99.0, 1.0: 100.0}
    window.add([1000.0])
    assert window.count == 101
    assert window.quantiles((1.0,)) == {1.0: 1000.0}
    with pytest.raises(ValueError, match="size must be >= 1"):
        LatencyWindow(0)


def test_quantiles_asked_again_within_their_max_age_are_the_last_computed() -> None:
    clock = Clock()
    window = LatencyWindow(size=10, clock=clock)
    window.add([1.0, 2.0, 3.0])
    assert window.quantiles((1.0,), max_age_s=1.0) == {1.0: 3.0}
    window.add([9.0])
    clock.now += 0.5
    assert window.quantiles((1.0,), max_age_s=1.0) == {1.0: 3.0}  # half a second old: kept
    assert window.quantiles((1.0,)) == {1.0: 9.0}  # no max age: computed now
    window.add([20.0])
    assert window.quantiles((0.5, 1.0), max_age_s=1.0) == {0.5: 3.0, 1.0: 20.0}  # other quantiles: computed
    window.add([30.0])
    clock.now += 1.0
    assert window.quantiles((0.5, 1.0), max_age_s=1.0) == {0.5: 3.0, 1.0: 30.0}  # too old: computed again


def test_nothing_measured_since_gives_the_same_quantiles_without_a_sort() -> None:
    clock = Clock()
    window = LatencyWindow(size=10, clock=clock)
    window.add([4.0, 5.0])
    first = window.quantiles((0.5,))
    first[0.5] = -1.0  # a caller's copy: the cached result is not changed through it
    clock.now += 100
    assert window.quantiles((0.5,)) == {0.5: 4.0}

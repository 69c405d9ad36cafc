from __future__ import annotations

import pytest

from correlator.correlation.errors import WindowError
from correlator.correlation.windows import Window, horizon, is_closed, is_late, window_end, window_floor


@pytest.mark.parametrize(
    ("duration", "lateness", "message"),
    [
        (0, 0, "window duration must be at least 1 ms, not 0"),
        (-5, 0, "window duration must be at least 1 ms, not -5"),
        (10, -1, "allowed lateness must not be negative, not -1"),
        (1.5, 0, "window duration must be an integer number of ms, not 1.5"),
        (True, 0, "window duration must be an integer number of ms, not True"),
        (10, "1s", "allowed lateness must be an integer number of ms, not '1s'"),
    ],
    ids=["zero-duration", "negative-duration", "negative-lateness", "float-duration", "bool-duration",
         "string-lateness"],
)
def test_window_rejects_bad_definitions(duration: object, lateness: object, message: str) -> None:
    with pytest.raises(WindowError) as info:
        Window(duration, lateness)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_window_accepts_the_smallest_definition() -> None:
    window = Window(1, 0)
    assert (window.floor(100), window.end(100), window.horizon(100)) == (99, 101, 100)


@pytest.mark.parametrize(
    ("ts", "watermark", "lateness", "late"),
    [(100, 100, 0, False), (99, 100, 0, True), (90, 100, 10, False), (89, 100, 10, True), (200, 100, 0, False)],
    ids=["at-watermark", "behind-no-lateness", "at-horizon", "behind-horizon", "ahead"],
)
def test_is_late(ts: int, watermark: int, lateness: int, late: bool) -> None:
    assert is_late(ts, watermark, lateness) is late


def test_window_maths() -> None:
    assert window_floor(1_000, 300) == 700
    assert window_end(700, 300) == 1_000
    assert horizon(1_000, 250) == 750
    assert is_closed(749, 750)
    assert not is_closed(750, 750)

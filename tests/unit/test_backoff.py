"""The worker's one retry policy: doubling delays up to the cap, stop ends the wait."""

from __future__ import annotations

import threading

import pytest

from metadata_worker.backoff import Backoff


class Flaky:
    """Fails ``failures`` times with ``ConnectionError``, then returns "ok"."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError(f"attempt {self.calls}")
        return "ok"


def test_retries_with_doubling_delays_up_to_the_cap() -> None:
    delays: list[float] = []
    beats: list[int] = []
    flaky = Flaky(5)
    result = Backoff(0.001, 0.004).retry(
        flaky, (ConnectionError,), threading.Event(), lambda _e, d: delays.append(d), lambda: beats.append(1)
    )
    assert result == "ok", f"expected the action's result after 5 failures, got {result!r}"
    assert delays == [0.001, 0.002, 0.004, 0.004, 0.004], f"delays were {delays}"
    assert len(beats) == 5, f"after_wait ran {len(beats)} times, expected once per failure (5)"


def test_stop_ends_the_wait_with_none() -> None:
    stop = threading.Event()

    def fail_and_stop(_exc: BaseException, _delay: float) -> None:
        stop.set()

    flaky = Flaky(10)
    assert Backoff(5.0, 5.0).retry(flaky, (ConnectionError,), stop, fail_and_stop) is None
    assert flaky.calls == 1, f"called {flaky.calls} times after stop, expected 1"


def test_the_action_is_tried_once_even_when_already_stopped() -> None:
    stop = threading.Event()
    stop.set()
    flaky = Flaky(0)
    assert Backoff().retry(flaky, (ConnectionError,), stop, lambda _e, _d: None) == "ok"


def test_other_errors_are_not_retried() -> None:
    def boom() -> None:
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError, match="a bug"):
        Backoff().retry(boom, (ConnectionError,), threading.Event(), lambda _e, _d: None)

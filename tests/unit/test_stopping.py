"""Ctrl-C during a run (issue 22): acknowledged at once, and it wakes every vendor lane's wait (the
rate limiter's, a vendor's Retry-After), so the run stops after the current action instead of after
a 48 s wait, and the call the wait held back is never sent."""

from __future__ import annotations

import _thread
import threading
import time
from typing import Any

import pytest

from offboard.engine import execute
from offboard.engine.execute import STOPPING, _in_lanes
from offboard.plan import Action, Target
from offboard.wire import waits

SLICES_OF_A_LONG_WAIT = 5_000  # a wait the test never lets run out: 1,000 s in 0.2 s slices


def action(vendor: str) -> Action:
    return Action(id=f"{vendor}.x", vendor=vendor, step="s", kind="api", operation="delete",
                  target=Target(type="t", id="1", name="n"), summary="remove it")


def test_ctrl_c_is_said_at_once_and_wakes_every_lanes_rate_limit_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    slices = 0

    def one_slice(_seconds: float) -> None:  # time.sleep as the wire's waits see it
        nonlocal slices
        slices += 1
        if slices > SLICES_OF_A_LONG_WAIT:
            raise AssertionError("a lane slept through the operator's Ctrl-C")
        threading.Event().wait(0.001)

    monkeypatch.setattr("time.sleep", one_slice)
    waiting = threading.Barrier(3)
    sent: list[str] = []
    woken: list[str] = []
    said: list[str] = []

    def one(a: Action) -> None:
        waiting.wait()
        try:
            waits.sleep(1000)  # the rate limiter holds the next call back
        except waits.WaitInterrupted:
            woken.append(a.vendor)
            raise
        sent.append(a.vendor)

    main_waits = threading.Event()
    real_wait = execute.wait

    def watched_wait(*args: Any, **kwargs: Any) -> Any:
        main_waits.set()  # the main thread waits on the lanes now (not still starting them)
        return real_wait(*args, **kwargs)

    monkeypatch.setattr(execute, "wait", watched_wait)

    def ctrl_c() -> None:
        waiting.wait()
        main_waits.wait()
        _thread.interrupt_main()  # the operator's Ctrl-C, in the main thread as a signal is

    threading.Thread(target=ctrl_c).start()
    with pytest.raises(KeyboardInterrupt):
        _in_lanes({"a": [action("a")], "b": [action("b")]}, one, stopping=said.append)
    assert said == [STOPPING] and "Ctrl-C again to stop now" in STOPPING
    assert sorted(woken) == ["a", "b"] and sent == []  # no call was sent after the wait
    waits.sleep(0)  # the stop does not outlive the run: the next run's waits sleep again


def test_a_wait_sleeps_its_time_unless_a_stop_is_requested(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    waits.sleep(1.0)
    assert sum(slept) == pytest.approx(1.0)
    waits.request_stop()
    try:
        with pytest.raises(waits.WaitInterrupted):
            waits.sleep(1.0)
    finally:
        waits.clear_stop()

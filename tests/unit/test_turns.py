"""Ctrl-C reaching a caller queued for its turn on an account must not leave the queue stuck."""

import signal
import threading

import pytest

from offboard.wire.ratelimit import _Turns


def test_a_caller_stopped_by_ctrl_c_while_queued_gives_its_place_up() -> None:
    turns = _Turns()
    holding, release = threading.Event(), threading.Event()

    def holder() -> None:
        with turns.turn():
            holding.set()
            release.wait(30)

    threading.Thread(target=holder, daemon=True).start()
    assert holding.wait(30)

    def interrupt_once_queued() -> None:
        while turns._next < 2:  # the main thread has taken its place in the queue
            threading.Event().wait(0.01)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    threading.Thread(target=interrupt_once_queued, daemon=True).start()
    with pytest.raises(KeyboardInterrupt), turns.turn():
        pytest.fail("the interrupted caller was served")

    served = threading.Event()

    def later() -> None:
        with turns.turn():
            served.set()

    threading.Thread(target=later, daemon=True).start()
    release.set()
    # the caller after the interrupted one is served once the holder is done (it would wait forever)
    assert served.wait(30)

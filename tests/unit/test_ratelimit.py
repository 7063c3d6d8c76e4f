import json
import threading

from offboard.wire.ratelimit import SlidingWindowLimiter
from tests.fakeclock import FakeClock


def test_sixty_calls_fit_the_window_then_the_61st_waits_for_the_oldest_to_expire() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(60, 60.0, margin=0.0, clock=clock, sleep=clock.sleep)
    limiter.acquire()  # T0
    clock.now = 5.0
    limiter.acquire()  # T5
    clock.now = 10.0
    for _ in range(58):
        limiter.acquire()  # 58 more at T10
    assert clock.slept == []
    clock.now = 55.0
    limiter.acquire()  # the docs' worked example: request 61 at T55 must wait until T60
    assert clock.now == 60.0
    limiter.acquire()  # request 62 waits until the T5 request leaves the window
    assert clock.now == 65.0


def test_margin_widens_the_window() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(2, 10.0, margin=0.1, clock=clock, sleep=clock.sleep)
    limiter.acquire()
    limiter.acquire()
    limiter.acquire()
    assert clock.now == 11.0


def test_block_for_holds_every_caller_for_the_vendor_given_time() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(60, 60.0, clock=clock, sleep=clock.sleep)
    limiter.block_for(7.5)
    limiter.acquire()
    assert clock.slept == [7.5]


def test_two_limiters_of_one_account_share_one_window_through_its_budget_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Two exits (or two offboard processes) on one vendor account: the limit is the account's.
    path = tmp_path / "budget.json"
    clock = FakeClock()
    clock.now = 1000.0
    first = SlidingWindowLimiter(3, 60.0, margin=0.0, clock=clock, sleep=clock.sleep)
    second = SlidingWindowLimiter(3, 60.0, margin=0.0, clock=clock, sleep=clock.sleep)
    first.share(path)
    second.share(path)
    for _ in range(2):
        first.acquire()
    clock.now = 1010.0
    second.acquire()  # the third call of the account's window
    assert clock.slept == []
    second.acquire()  # the fourth waits for the first to age out, whoever sent it
    assert clock.now == 1060.0
    first.acquire()
    assert clock.now == 1060.0 + 0.0 and first.in_window() == 3
    assert json.loads(path.read_text())["calls"][0][0] == 1010.0


def test_the_window_outlives_the_process_that_filled_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "budget.json"
    clock = FakeClock()  # the machine's one clock, as both processes read it
    clock.now = 1000.0
    first = SlidingWindowLimiter(3, 60.0, margin=0.0, clock=clock, sleep=clock.sleep)
    first.share(path)
    for _ in range(3):
        first.completed(first.acquire())
    del first  # `plan` has exited
    clock.now = 1001.0
    second = SlidingWindowLimiter(3, 60.0, margin=0.0, clock=clock, sleep=clock.sleep)
    second.share(path)
    second.acquire()  # `apply`, a second later: the window the first process filled is still full
    assert clock.slept == [59.0]


def test_calls_another_process_wrote_into_the_budget_file_are_counted_at_the_next_call(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # This process reuses the window it wrote last only while the file still holds exactly that.
    path = tmp_path / "budget.json"
    clock = FakeClock()
    clock.now = 1000.0
    ours = SlidingWindowLimiter(3, 60.0, margin=0.0, clock=clock, sleep=clock.sleep)
    ours.share(path)
    ours.completed(ours.acquire())
    written = json.loads(path.read_text())
    written["calls"] += [[1000.0, "4242.other"], [1000.0, "4242.other"]]  # another offboard process, meanwhile
    path.write_text(json.dumps(written))
    clock.now = 1001.0
    ours.acquire()  # the account's window is full: three calls at 1000
    assert clock.slept == [59.0]


def test_an_unreadable_budget_file_is_ignored(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "budget.json"
    path.write_text("{not json")
    clock = FakeClock()
    limiter = SlidingWindowLimiter(3, 60.0, clock=clock, sleep=clock.sleep)
    limiter.share(path)
    limiter.acquire()
    assert clock.slept == []


def test_callers_on_one_account_take_turns_so_a_small_exit_is_not_stuck_behind_a_large_one() -> None:
    clock = FakeClock()
    order: list[str] = []
    large_waiting, small_queued = threading.Event(), threading.Event()

    def sleep(seconds: float) -> None:
        # The large exit's first wait for the window (its third call, the account's third turn) lasts
        # until the small exit has queued for the fourth turn: the test's time is the fake clock's.
        if not large_waiting.is_set():
            large_waiting.set()
            assert small_queued.wait(10), "the small exit never queued"
        clock.sleep(seconds)

    limiter = SlidingWindowLimiter(2, 60.0, margin=0.0, clock=clock, sleep=sleep)

    def exit_of(name: str, calls: int) -> None:
        for _ in range(calls):
            limiter.acquire()
            order.append(name)

    large = threading.Thread(target=exit_of, args=("large", 8))
    large.start()
    assert large_waiting.wait(10)
    small = threading.Thread(target=exit_of, args=("small", 2))
    small.start()
    turns = limiter._store.turns
    while small.is_alive() and turns._next < 4:  # the turns handed out: the small exit holds the fourth
        small.join(0.001)
    small_queued.set()
    large.join(10)
    small.join(10)
    # the small exit's two calls come among the large one's, not after all of them
    assert order.count("small") == 2 and order.index("small") <= 4 and order[-1] == "large"
    assert clock.now >= 60.0 * 4  # ten calls, two a window: the waits were the fake clock's


def test_a_vendor_that_reports_fewer_calls_left_than_we_count_slows_us_down() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(60, 60.0, margin=0.0, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        limiter.acquire()
    limiter.observe_remaining(30)  # another tool used 20 of the account's 60
    for _ in range(30):
        limiter.acquire()
    assert clock.slept == []
    limiter.acquire()  # the 31st of ours would be the vendor's 61st: wait a window
    assert clock.now == 60.0
    limiter.observe_remaining(59)  # more left than we count: nothing changes
    assert clock.now == 60.0


def test_a_call_counts_from_its_reply_so_our_window_never_ends_before_the_vendors() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(2, 10.0, margin=0.0, clock=clock, sleep=clock.sleep)
    limiter.acquire()  # sent at 0
    clock.now = 3.0
    limiter.completed()  # its reply came at 3: the vendor saw it somewhere in [0, 3]
    limiter.acquire()
    limiter.completed()
    limiter.acquire()  # the third waits until the first is a whole window old from its reply
    assert clock.now == 13.0


def test_a_429_cuts_offboards_share_of_the_window_and_it_grows_back_once_nobody_else_is_seen() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(60, 60.0, margin=0.0, clock=clock, sleep=clock.sleep)
    limiter.rate_limited()
    assert limiter.current_share() == 0.7
    limiter.rate_limited()
    assert abs(limiter.current_share() - 0.49) < 1e-9
    for _ in range(29):
        limiter.acquire()
    assert clock.slept == []
    limiter.acquire()  # the 30th of 60 is over the share: wait a window, though the vendor's window has room
    assert clock.now == 60.0
    clock.now = 60.0 * 6  # five quiet windows: a tenth of the limit each
    assert limiter.current_share() == 1.0


def test_the_calls_left_header_reserves_what_another_client_uses_until_it_leaves() -> None:
    clock = FakeClock()
    limiter = SlidingWindowLimiter(60, 60.0, margin=0.0, clock=clock, sleep=clock.sleep)
    limiter.observe_remaining(40)  # nothing of ours in the window, yet 20 are taken
    assert abs(limiter.current_share() - 40 / 60) < 1e-9
    clock.now = 50.0
    limiter.observe_remaining(40)  # still there, and nothing new: its calls are counted once
    assert limiter.in_window() == 20 and abs(limiter.current_share() - 40 / 60) < 1e-9
    clock.now = 61.0  # the other client was seen less than a window ago: one more call per window
    assert abs(limiter.current_share() - 41 / 60) < 1e-9
    clock.now = 61.0 + 60.0 * 4  # gone: no one else seen for a window, the share grows a tenth a window
    assert limiter.current_share() == 1.0


def test_a_caller_queued_behind_one_that_waits_for_the_window_hears_how_long_it_lasts() -> None:
    """Issue 22: a batch's other exits on the account sat silently behind the exit whose turn
    waited for the window (their rows said "running" for ~28 s): each queued caller hears the wait."""
    clock = FakeClock()
    first_sleeps, second_queued = threading.Event(), threading.Event()

    def sleep(seconds: float) -> None:
        first_sleeps.set()
        assert second_queued.wait(10), "the second caller never queued"
        clock.sleep(seconds)

    limiter = SlidingWindowLimiter(1, 60.0, margin=0.0, clock=clock, sleep=sleep)
    limiter.acquire()
    heard: dict[str, list[float]] = {"first": [], "second": []}
    first = threading.Thread(target=lambda: limiter.acquire(lambda s, _said: heard["first"].append(s)))
    first.start()
    assert first_sleeps.wait(10)
    clock.now = 20.0  # 20 s into the first caller's 60 s wait, the second asks for a call
    second = threading.Thread(target=lambda: limiter.acquire(lambda s, _said: heard["second"].append(s)))
    second.start()
    while not heard["second"] and second.is_alive():
        second.join(0.001)
    second_queued.set()
    first.join(10)
    second.join(10)
    assert heard["first"] == [60.0]
    assert heard["second"][0] == 40.0  # queued behind it: the rest of its wait, said at once
    assert heard["second"][1:] == [60.0]  # then its own wait for the window

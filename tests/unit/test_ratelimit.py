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


def test_a_second_process_inherits_the_first_ones_recent_calls(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "budget.json"
    first = SlidingWindowLimiter(3, 60.0)
    for _ in range(3):
        first.acquire()
    first.save(path)
    clock = FakeClock()
    clock.now = 1000.0
    second = SlidingWindowLimiter(3, 60.0, margin=0.0, clock=clock, sleep=clock.sleep)
    second.load(path)
    second.acquire()  # the window is already full: it must wait for the first call to age out
    assert len(clock.slept) == 1 and 59.0 < clock.slept[0] <= 60.0


def test_an_unreadable_budget_file_is_ignored(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "budget.json"
    path.write_text("{not json")
    clock = FakeClock()
    limiter = SlidingWindowLimiter(3, 60.0, clock=clock, sleep=clock.sleep)
    limiter.load(path)
    limiter.acquire()
    assert clock.slept == []


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

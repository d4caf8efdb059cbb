"""Budgets: the time a solver call may take, the deadline, progress, and what counts as an interrupt."""
import time

import pytest

from bnnlogic.budget import Budget, Stopped, interruption


def test_call_timeout_is_the_smaller_of_the_per_call_limit_and_the_time_left():
    assert Budget().call_timeout() is None
    assert Budget(per_call=5).call_timeout() == 5
    assert Budget(per_call=5).call_timeout(2) == 2  # the caller's own per-call limit wins over the budget's
    b = Budget(seconds=100, per_call=5)
    assert b.call_timeout() == 5
    assert 99 < Budget(seconds=100).call_timeout(1000) <= 100


def test_check_raises_stopped_time_after_the_deadline_and_tick_reports_progress():
    seen = []
    b = Budget(seconds=0.05, progress=seen.append)
    b.tick(done=1)
    assert seen == [{"done": 1}] and not b.expired()
    time.sleep(0.06)
    assert b.expired() and b.remaining() == 0.0
    with pytest.raises(Stopped) as e:
        b.tick(done=2)
    assert e.value.reason == "time" and seen[-1] == {"done": 2}


def test_interrupts_include_the_exact_bindings_runtime_error():
    assert interruption(KeyboardInterrupt())
    assert interruption(RuntimeError("Program interrupted by user."))
    assert not interruption(RuntimeError("something else"))
    assert not interruption(ValueError("interrupted by user"))


@pytest.mark.parametrize("kw", [dict(seconds=0), dict(per_call=-1)])
def test_non_positive_limits_are_refused(kw):
    with pytest.raises(ValueError):
        Budget(**kw)

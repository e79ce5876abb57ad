"""coord.aio.rejoin's back-off: 1, 2, 4 ... 30 s between restarts in place while the disk fails,
counting again from 1 s after a long good run. (The restart itself is exercised on real processes
in tests/ensemble/test_disk_faults.py.)"""
from coord.aio.rejoin import ATTEMPT, MAX_DELAY_S, REJOIN_RESET_S, delay_s, next_attempt


def test_backoff_doubles_up_to_its_cap():
    assert [delay_s(a) for a in (1, 2, 3, 4, 5, 6, 7)] == [1, 2, 4, 8, 16, 30, 30]
    assert delay_s(50) == MAX_DELAY_S


def test_attempts_count_up_and_reset_after_a_good_run():
    assert next_attempt({}, ran_s=1) == 1
    assert next_attempt({ATTEMPT: "3"}, ran_s=1) == 4
    assert next_attempt({ATTEMPT: "3"}, ran_s=REJOIN_RESET_S) == 1
    assert next_attempt({ATTEMPT: "junk"}, ran_s=1) == 1

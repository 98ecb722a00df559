"""The limits' rules as plain values (server/limits.py): buckets, budgets,
handshake caps, interval logging, the open-file check. Clocks are passed in."""

from __future__ import annotations

from wsconsole.server.limits import (
    ControlBudgets,
    HandshakeLimiter,
    IntervalLog,
    ShedLimit,
    TokenBucket,
    address_key,
    is_loopback_host,
    descriptor_shortfall,
)
from wsconsole.server.protocol import Role


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_its_rate():
    """A bucket lets ``burst`` through at once, then ``rate`` per second."""
    bucket = TokenBucket(2.0, 4.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(5)] == [True] * 4 + [False]
    assert bucket.take(0.5)  # one more after half a second at 2/s
    assert not bucket.take(0.5)


def test_a_bucket_without_a_rate_never_refuses_and_its_burst_defaults_to_twice_the_rate():
    """rate None or 0 is no limit; burst None is twice the rate."""
    assert all(TokenBucket(None, None, 0.0).take(0.0) for _ in range(10_000))
    assert all(TokenBucket(0, 5, 0.0).take(0.0) for _ in range(10_000))
    assert TokenBucket(3.0, None, 0.0).burst == 6.0


def test_budgets_refuse_with_the_scope_that_ran_out_and_take_nothing_then():
    """The first empty budget names itself; a refused request spends no other."""
    clock = Clock()
    budgets = ControlBudgets(connection=(None, None), token=(1.0, 2.0), total=(1.0, 3.0),
                             clock=clock)
    reader, operator = budgets.connection_bucket(), budgets.connection_bucket()
    assert budgets.admit(reader, Role.READ_ONLY) is None
    assert budgets.admit(reader, Role.READ_ONLY) is None
    refusal = budgets.admit(reader, Role.READ_ONLY)
    assert refusal is not None and "read_only token" in refusal
    assert budgets.total.tokens == 1.0  # the refusal took none of it
    assert budgets.admit(operator, Role.OPERATOR) is None
    refusal = budgets.admit(operator, Role.OPERATOR)
    assert refusal is not None and "whole control plane" in refusal
    clock.now += 1.0
    assert budgets.admit(operator, Role.OPERATOR) is None


def test_a_connection_budget_is_its_own():
    """Each connection has its own bucket; one running dry leaves another's."""
    budgets = ControlBudgets(connection=(1.0, 1.0), token=(None, None), total=(None, None),
                             clock=Clock())
    first, second = budgets.connection_bucket(), budgets.connection_bucket()
    assert budgets.admit(first, Role.OPERATOR) is None
    assert "on this connection" in budgets.admit(first, Role.OPERATOR)
    assert budgets.admit(second, Role.OPERATOR) is None


def test_the_handshake_limiter_sheds_past_each_cap_and_counts_why():
    """Past the per-address cap one address is shed while others go on; past
    the total everyone is; releasing makes room again."""
    limiter = HandshakeLimiter(max_total=3, max_per_address=2)
    assert limiter.admit("10.0.0.1") is None
    assert limiter.admit("10.0.0.1") is None
    assert limiter.admit("10.0.0.1") is ShedLimit.PER_ADDRESS
    assert limiter.admit("10.0.0.2") is None
    assert limiter.admit("10.0.0.3") is ShedLimit.TOTAL
    assert limiter.in_progress == 3
    assert limiter.shed == {ShedLimit.PER_ADDRESS: 1, ShedLimit.TOTAL: 1}
    limiter.release("10.0.0.1")
    assert limiter.admit("10.0.0.3") is None
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        limiter.release(address)
    assert limiter.in_progress == 0
    assert limiter.in_progress_from("10.0.0.1") == 0
    limiter.release("10.0.0.9")  # never admitted: nothing changes
    limiter.release(None)
    assert limiter.in_progress == 0


def test_a_handshake_without_an_address_key_skips_the_per_address_cap_not_the_total():
    """Trusted proxies and Unix sockets are admitted with no key: every client
    behind a proxy shares its address, so only the total applies."""
    limiter = HandshakeLimiter(max_total=5, max_per_address=1)
    assert [limiter.admit(None) for _ in range(6)] == [None] * 5 + [ShedLimit.TOTAL]
    limiter.release(None)
    assert limiter.in_progress == 4


def test_no_caps_admit_everything():
    """None or 0 is no cap."""
    limiter = HandshakeLimiter(max_total=0, max_per_address=None)
    assert all(limiter.admit("10.0.0.1") is None for _ in range(10_000))


def test_ipv6_clients_are_counted_by_their_64():
    """One host usually holds a whole IPv6 /64; IPv4-mapped addresses are IPv4."""
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("fe80::1%eth0") == address_key("fe80::2")


def test_loopback_hosts_are_recognised():
    """127.0.0.0/8, ::1 and IPv4-mapped loopback are loopback; nothing else is."""
    assert all(map(is_loopback_host, ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"]))
    assert not any(map(is_loopback_host, ["10.0.0.1", "::2", "1270::1", "fe80::1"]))


def test_an_interval_log_says_the_first_then_the_count_per_window():
    """The first occurrence is logged; the others are counted, reported when its
    window ends, and a window without any closes."""
    log = IntervalLog(10.0)
    assert log.occurred() is True
    assert [log.occurred() for _ in range(99)] == [False] * 99
    assert log.window_ended() == 99
    assert log.window_open  # there were some: another window
    assert log.window_ended() == 0
    assert not log.window_open
    assert log.occurred() is True
    assert log.total == 101


def test_the_open_file_check_warns_only_below_what_is_configured():
    """Below the handshake cap plus the control connections and a reserve: a
    warning that says how to raise it; at or above it, or unlimited, none."""
    warning = descriptor_shortfall(256, 500, 32)
    assert warning is not None
    assert "256" in warning and "500 handshakes" in warning and "ulimit -n" in warning
    assert descriptor_shortfall(1024, 500, 32) is None
    assert descriptor_shortfall(-1, 500, 32) is None
    assert descriptor_shortfall(256, None) is None

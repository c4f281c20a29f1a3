"""The SMS task queue's rate (``kindly.programs.rate_limit``) against models of Temporal matching's limiters.

Each model replays what one task-queue partition does with a backlog and a poller always waiting: it
dispatches as soon as its limiter lets it, from an idle start (full burst), which is the most any
interval can hold. The gateway sees every partition's dispatches, each shifted by a delivery delay
that varies by up to ``DELIVERY_JITTER_SECONDS``; the adversary lines those up, so any ``1 + J``
seconds of dispatches can land in one second at the gateway. No timing, no sleeps.
"""

from __future__ import annotations

import math

import pytest

from kindly.programs.rate_limit import (
    DELIVERY_JITTER_SECONDS,
    TEMPORAL_DEFAULT_READ_PARTITIONS,
    sms_guaranteed_partitions,
    sms_task_queue_rate,
)

SECOND = 1_000_000_000
J = DELIVERY_JITTER_SECONDS


def gcra_dispatches(rate: float, seconds: float, start: int = 60 * SECOND) -> list[int]:
    """Dispatch times (ns) of one partition under the new matcher's limiter: ``simpleLimiter`` of
    ``service/matching/matcher_data.go``, interval ``Duration(1e9 / rate)`` and a 1 s burst; idle (its
    ready time a minute past) when the herd arrives at ``start``."""
    interval = int(SECOND / rate)  # Go's conversion truncates toward zero
    burst = SECOND
    ready, now, times = 0, start, []
    while now < start + seconds * SECOND:
        now = max(now, ready)  # findMatch waits until ready <= now
        times.append(now)
        ready = max(now, ready + burst) - burst + interval  # consume(p, now, 1)
    return times


def token_bucket_dispatches(rate: float, seconds: float) -> list[int]:
    """Dispatch times (ns) under the old matcher's limiter: a golang.org/x/time/rate bucket of
    ``max(ceil(rate), 1)`` tokens, full after an idle spell."""
    capacity = max(math.ceil(rate), 1)
    tokens, now, times = float(capacity), 0.0, []
    while now < seconds:
        if tokens < 1:
            now += (1 - tokens) / rate
            tokens = 1.0
        times.append(round(now * SECOND))
        tokens -= 1
    return times


def most_in_any_interval(times: list[int], seconds: float) -> int:
    """The most dispatches in any half-open interval of ``seconds`` (what the bench counts)."""
    times = sorted(times)
    width = round(seconds * SECOND)
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= width:
            first += 1
        most = max(most, last - first + 1)
    return most


def gateway_peak(task_queue_rate: float, partitions: int, *, model=gcra_dispatches, offsets=None) -> int:
    """The most sends the gateway can see in one second (in ``1 / limit`` seconds below 1/s) from
    ``partitions`` partitions sharing ``task_queue_rate``, all starting a herd at once."""
    per_partition = task_queue_rate / partitions
    times: list[int] = []
    for index in range(partitions):
        shift = offsets[index] if offsets else 0
        times += [at + shift for at in model(per_partition, 8.0)]
    return most_in_any_interval(times, 1 + J)


LIMITS = [0.5, 1, 1.5, 2, 3, 3.9, 4, 5, 7.5, 8, 10, 12, 19, 20, 21, 33.3, 50, 64, 100]


@pytest.mark.parametrize("limit", LIMITS)
def test_the_gateway_never_sees_more_than_the_limit(limit: float) -> None:
    rate = sms_task_queue_rate(limit)
    counted = sms_guaranteed_partitions(limit)
    allowed = math.floor(limit) if limit >= 1 else 1
    window = max(1.0, 1 / limit)
    for partitions in (d for d in (1, 2, 4) if counted % d == 0):
        for model in (gcra_dispatches, token_bucket_dispatches):
            per_partition = rate / partitions
            times = [at for _ in range(partitions) for at in model(per_partition, 8.0 * window)]
            assert most_in_any_interval(times, window + J) <= allowed, (partitions, model.__name__)


def test_partitions_that_start_apart_do_not_add_up_to_more() -> None:
    rate = sms_task_queue_rate(20)
    for offsets in (
        [0, 1, 2, 3],
        [0, SECOND // 3, SECOND // 2, SECOND - 1],
        [0, 0, SECOND // 7, SECOND // 7],
    ):
        assert gateway_peak(rate, 4, offsets=offsets) <= 20


def test_handing_temporal_the_limit_itself_lets_about_twice_through() -> None:
    """The bug this rule fixes: the task-queue rate at the gateway's rate bursts to about 2x."""
    assert gateway_peak(20.0, 4) >= 40
    assert gateway_peak(20.0, 1) >= 40


@pytest.mark.parametrize("limit", [4, 8, 20, 50, 100])
def test_the_rate_is_as_high_as_the_guarantee_allows(limit: float) -> None:
    """A thousandth more and the same worst case lets one more message through."""
    rate = sms_task_queue_rate(limit)
    assert gateway_peak(rate, TEMPORAL_DEFAULT_READ_PARTITIONS) <= limit
    assert gateway_peak(rate * 1.001, TEMPORAL_DEFAULT_READ_PARTITIONS) > limit


def test_the_steady_rate_is_the_limit_less_the_burst_and_the_margin() -> None:
    # Four partitions share 20/s evenly: each may send 5 within 1 + J + 1 seconds.
    assert sms_task_queue_rate(20) == pytest.approx(20 / (2 + J), rel=1e-5)
    assert sms_task_queue_rate(50) == pytest.approx(48 / (2 + J), rel=1e-5)  # 12 per partition
    assert sms_task_queue_rate(20, partitions=1) == pytest.approx(20 / (2 + J), rel=1e-5)
    assert sms_task_queue_rate(7.5, partitions=1) == pytest.approx(7 / (2 + J), rel=1e-5)
    assert sms_task_queue_rate(20, jitter_seconds=0) == pytest.approx(10, rel=1e-5)
    # Below 1/s: one message in any 1 / limit seconds.
    assert sms_task_queue_rate(0.5) == pytest.approx(1 / (2 + J + 1), rel=1e-5)
    assert sms_task_queue_rate(0.5) < 0.5


def test_a_limit_below_the_partitions_counts_on_fewer_partitions() -> None:
    assert sms_guaranteed_partitions(20) == 4
    assert sms_guaranteed_partitions(4) == 4
    assert sms_guaranteed_partitions(3.9) == 2
    assert sms_guaranteed_partitions(2) == 2
    assert sms_guaranteed_partitions(1.5) == 1
    assert sms_guaranteed_partitions(0.2) == 1
    assert sms_guaranteed_partitions(20, partitions=1) == 1
    assert sms_guaranteed_partitions(5, partitions=8) == 4
    # With Temporal's 4 partitions a limit of 3/s cannot be kept: each partition may send at once.
    assert gateway_peak(sms_task_queue_rate(3), 4) == 4
    assert gateway_peak(sms_task_queue_rate(3), 2) <= 3


def test_more_partitions_than_assumed_break_the_guarantee() -> None:
    assert gateway_peak(sms_task_queue_rate(20), 8) > 20


@pytest.mark.parametrize(
    "kwargs",
    [{"limit_per_second": 0}, {"limit_per_second": -1}, {"limit_per_second": 5, "jitter_seconds": -0.1}],
)
def test_nonsense_is_refused(kwargs: dict[str, float]) -> None:
    limit = kwargs.pop("limit_per_second")
    with pytest.raises(ValueError):
        sms_task_queue_rate(limit, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        sms_guaranteed_partitions(5, partitions=0)

"""The SMS task queue's Temporal rate limit, derived from the gateway's accepted rate.

``sms_rate_limit_per_second`` is what the SMS gateway accepts: never more messages than that in any
1-second interval. Temporal's task-queue rate limit (``max_task_queue_activities_per_second``) is not
such a cap, so the worker does not hand it the setting as it is; ``sms_task_queue_rate`` gives the
rate that keeps the gateway under the setting.

How the Temporal server applies it (``service/matching/ratelimit_manager.go``, servers 1.29 to 1.32):

* The rate is split evenly over the task queue's read partitions, ``r = rate / P``, where ``P`` is
  ``matching.numTaskqueueReadPartitions`` (dynamic config, 4 by default) and every partition limits its
  own dispatches alone.
* Each partition lets one second's worth of its rate through at once after an idle spell: the new
  matcher (the default from server 1.31) is a GCRA limiter whose burst duration is one second
  (``defaultBurstDuration``, not configurable); the old one is a token bucket of ``ceil(r)`` tokens
  (``max(ceil(r), matching.minTaskThrottlingBurstSize)``, that minimum being 1 by default).

So with ``rate = L`` the gateway sees about ``2 L`` in the first second of a herd (the burst, then a
second of refill), and more where ``L / P`` rounds up. The bound: two dispatches ``j < k`` of one
partition are at least ``(k - j) / r - B`` apart (``B`` = 1 s), so ``n`` dispatches fit in a window of
``W`` seconds only when ``(n - 1) / r - B < W``: at most ``ceil(r (W + B))``; the token bucket lets
through at most ``ceil(r) + r W``, which is no more. A send reaches the gateway some time after its
dispatch (the worker's poll, the activity's outbox rows, the HTTP request); while no send catches up more
than ``J`` seconds on one dispatched before it, a 1-second interval at the gateway holds sends dispatched
within ``W = 1 + J``. Giving each partition at most ``q = floor(L / P)`` sends in such a window bounds the
gateway at ``P q <= L``:

    rate = P * q / (1 + J + B)        (a millionth less, so no rounding lets one more through)

With ``B = 1`` and ``J = 0.6`` that is about ``L / 2.6``: the steady rate is under half the gateway's,
the price of a limiter that bursts a second's worth, and a herd of ``N`` drains in about ``2.6 N / L``
seconds. The same rate is safe on fewer partitions that divide ``P`` (2 or 1 of Temporal's default 4),
never on more. A limit below ``P`` per second cannot be kept with ``P`` partitions, which can each
release a send at once; the rule then counts on the largest divisor of ``P`` not above the limit (2 or
1), and the SMS queue needs that few read partitions (``sms_guaranteed_partitions``). A limit below 1/s
is read as one message in any ``1 / L`` seconds.
"""

from __future__ import annotations

import math

TEMPORAL_DEFAULT_READ_PARTITIONS = 4
"""Temporal's default ``matching.numTaskqueueReadPartitions``, which the dev server and a cluster use for
the SMS queue unless its dynamic config says otherwise. A worker cannot ask the server for it."""

TEMPORAL_BURST_SECONDS = 1.0
"""How much of its rate a task-queue partition lets through at once after an idle spell."""

DELIVERY_JITTER_SECONDS = 0.6
"""How much sooner, after its dispatch, a send may reach the gateway than one Temporal dispatched shortly
before it: the margin ``J`` of the rule. A herd's first sends wait longest (the worker is busy with the
herd's workflow tasks and their database writes); the herd benchmark measured up to 0.53 s on two
shared cores and reports it each run (``seconds_dispatch_to_gateway``)."""

_ROUNDING_MARGIN = 1e-6


def sms_guaranteed_partitions(
    limit_per_second: float, partitions: int = TEMPORAL_DEFAULT_READ_PARTITIONS
) -> int:
    """The most read partitions of the SMS queue under which ``sms_task_queue_rate`` keeps the limit:
    the largest divisor of ``partitions`` not above the limit (at least 1)."""
    if partitions < 1:
        raise ValueError("partitions must be at least 1")
    return max(
        d for d in range(1, partitions + 1) if partitions % d == 0 and (d == 1 or d <= limit_per_second)
    )


def sms_task_queue_rate(
    limit_per_second: float,
    *,
    partitions: int = TEMPORAL_DEFAULT_READ_PARTITIONS,
    burst_seconds: float = TEMPORAL_BURST_SECONDS,
    jitter_seconds: float = DELIVERY_JITTER_SECONDS,
) -> float:
    """The task-queue rate (``max_task_queue_activities_per_second``) under which the gateway sees at
    most ``limit_per_second`` messages in any 1-second interval, however many workers poll, when the
    SMS queue has ``sms_guaranteed_partitions(limit_per_second, partitions)`` read partitions or a
    divisor of that. The derivation is in this module's docstring."""
    if limit_per_second <= 0:
        raise ValueError("the SMS rate limit must be positive")
    if burst_seconds < 0 or jitter_seconds < 0:
        raise ValueError("burst and jitter must not be negative")
    window = max(1.0, 1.0 / limit_per_second)  # the interval the limit is kept over, in seconds
    allowed = math.floor(limit_per_second * window + 1e-9)  # messages in any such interval
    counted = sms_guaranteed_partitions(limit_per_second, partitions)
    per_partition = allowed // counted
    rate = counted * per_partition / (window + jitter_seconds + burst_seconds)
    return rate * (1 - _ROUNDING_MARGIN)

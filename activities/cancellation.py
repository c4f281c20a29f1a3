"""How an activity that sends something hears of, and honours, the workflow's cancellation.

A cancellation requested while an activity waits for its next attempt (backoff, or a queue) ends it at
once on the server. A running attempt hears of it only through a heartbeat: the answer to a heartbeat says
"cancel requested", and the SDK then cancels the activity's task. The sending activities heartbeat when a
retry begins, so that a retry dispatched just as the workflow cancelled does not make its request, and run
their one outgoing request through :func:`finish_request`: a request already on the wire may be taken by
the other side, so it is finished rather than abandoned. If it was taken, the activity completes as usual
and the workflow counts it (the other side has it); if not, the cancellation stands and Temporal makes no
further attempt.

A first attempt does not heartbeat: a heartbeat is a billed action on Temporal Cloud, first attempts are
every touchpoint's normal path, and their window between dispatch and request is the same few
milliseconds as a retry's. Retries happen during outages, when changes pile up against a waiting message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from temporalio import activity

T = TypeVar("T")


def announce_attempt() -> None:
    """Heartbeat once at the start of a retry: its answer carries a cancellation requested meanwhile,
    which then interrupts the attempt at its next await, before any request is made."""
    if activity.info().attempt > 1:
        activity.heartbeat()


def raise_if_cancelled() -> None:
    """Stop here, before a request, if the workflow's cancellation has already reached this attempt."""
    if activity.is_cancelled():
        raise asyncio.CancelledError("cancelled by the workflow before the request")


async def finish_request(request: Coroutine[Any, Any, T]) -> T:
    """Run ``request`` to its end even if cancellations arrive while it is on the wire.

    Returns its result when it succeeds, cancelled or not: the other side has it. When it fails after a
    cancellation arrived, the cancellation is raised, so Temporal records the attempt as cancelled and
    makes no other; without a cancellation its own error is.
    """
    task = asyncio.ensure_future(request)
    cancellation: asyncio.CancelledError | None = None
    while not task.done():
        try:
            # ``wait`` does not cancel ``task`` when this coroutine is cancelled, and raises nothing of its.
            await asyncio.wait({task})
        except asyncio.CancelledError as err:
            cancellation = err
    if cancellation is not None and (task.cancelled() or task.exception() is not None):
        raise cancellation
    return task.result()

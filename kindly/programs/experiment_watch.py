"""The worker's guardrail watch: every hour, each running experiment's arms are checked against its
guardrails, and an arm above one stops getting new accounts (``enforce_guardrails``), logged and
recorded in the experiment. Several workers may run it at once: closing an arm is idempotent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

from sqlalchemy import Engine

from kindly.programs.experiments import enforce_guardrails

logger = logging.getLogger("kindly.worker")

CHECK_INTERVAL = timedelta(hours=1)
Sleep = Callable[[float], Awaitable[None]]


async def check_guardrails(engine: Engine) -> None:
    """One check; a failure (the database away) is logged, and the next check tries again."""
    try:
        closed = await asyncio.to_thread(enforce_guardrails, engine)
    except Exception:
        logger.exception("experiment guardrail check failed")
        return
    for experiment, arm, reason in closed:
        logger.warning("experiment %s: arm %s closed to new accounts: %s", experiment, arm, reason)


@asynccontextmanager
async def watching_experiments(
    engine: Engine, *, sleep: Sleep = asyncio.sleep, interval: timedelta = CHECK_INTERVAL
) -> AsyncIterator[asyncio.Task[None]]:
    """Check the guardrails every ``interval`` in a task beside the block, cancelled when it ends."""

    async def repeat() -> None:
        while True:
            await sleep(interval.total_seconds())
            await check_guardrails(engine)

    task = asyncio.create_task(repeat(), name="kindly experiment guardrails")
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

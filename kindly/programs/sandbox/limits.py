"""The providers' per-number frequency limits, as the sandbox enforces them: at most so many messages to
one number in any minute, hour and day (Alibaba Cloud's defaults: 1, 5 and 10)."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable

WINDOWS = (("minute", 60.0), ("hour", 3600.0), ("day", 86400.0))


class FrequencyLimiter:
    def __init__(
        self,
        *,
        per_minute: int | None,
        per_hour: int | None,
        per_day: int | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = {"minute": per_minute, "hour": per_hour, "day": per_day}
        self._clock = clock
        self._sent: defaultdict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def take(self, phone: str) -> str | None:
        """Count one message to ``phone`` and None, or the window (``minute``, ``hour``, ``day``) whose
        limit it would break, counting nothing."""
        with self._lock:
            now = self._clock()
            sent = self._sent[phone]
            while sent and now - sent[0] >= WINDOWS[-1][1]:
                sent.popleft()
            for name, seconds in WINDOWS:
                limit = self._limits[name]
                if limit is not None and sum(1 for at in sent if now - at < seconds) >= limit:
                    return name
            sent.append(now)
            return None

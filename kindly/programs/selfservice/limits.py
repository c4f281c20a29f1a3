"""How often the customer's page may be asked: per client address, and per link for choices.

The page is public and its key is in a URL, so it is counted twice: every request per client address
(someone walking through guessed tokens, a script hammering one page) and every choice (a POST) per link
(a forwarded link somebody replays). Both are sliding windows kept in this process's memory: a replica
counts its own requests, so behind a load balancer of N replicas a client may get up to N times the
limit. Nothing is written anywhere, and a link is counted by its hash, so no token is held in clear.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta

MAX_KEYS = 100_000
"""Addresses or links remembered at once; past it the longest idle are forgotten (a flood of addresses
cannot grow the process without bound; forgetting one only lets it start counting afresh)."""


class SlidingWindow:
    """At most ``limit`` hits per key in any ``window``; a refused hit is not counted, so a client that
    backs off gets in again once its oldest hits leave the window."""

    def __init__(self, limit: int, window: timedelta, max_keys: int = MAX_KEYS) -> None:
        if limit < 1:
            raise ValueError("a limit is at least 1")
        self.limit = limit
        self.window = window
        self._max_keys = max_keys
        self._hits: OrderedDict[str, deque[datetime]] = OrderedDict()

    def allow(self, key: str, now: datetime) -> bool:
        """Whether ``key`` may have one more hit at ``now``; counted when it may."""
        hits = self._hits.pop(key, None) or deque()
        since = now - self.window
        while hits and hits[0] <= since:
            hits.popleft()
        allowed = len(hits) < self.limit
        if allowed:
            hits.append(now)
        if hits:
            self._hits[key] = hits  # now the most recently used
            while len(self._hits) > self._max_keys:
                self._hits.popitem(last=False)
        return allowed


@dataclass(frozen=True)
class PageLimits:
    """The page's two limits (``ApiSettings.self_service_requests_per_minute``, ``..._posts_per_hour``)."""

    per_address: SlidingWindow
    per_link: SlidingWindow

    @classmethod
    def of(cls, requests_per_minute: int, posts_per_hour: int) -> PageLimits:
        return cls(
            per_address=SlidingWindow(requests_per_minute, timedelta(minutes=1)),
            per_link=SlidingWindow(posts_per_hour, timedelta(hours=1)),
        )

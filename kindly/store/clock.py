"""The store's clock: timestamps are aware UTC (stored without a zone, read back naive UTC on both
backends), leases and signature expiries are unix seconds, compared in SQL as integers."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def unix_now() -> int:
    return int(time.time())

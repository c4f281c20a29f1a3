"""A shadow arm's planned volume against what its accounts really got: from the ``shadow_plan`` entries
(what the arm's policy would do next) and the ``sms_sent`` entries of the same accounts.

A shadow plan counts as a send the arm would have made when its moment came before the account planned
again (the next ``shadow_plan`` entry) and before ``now``: a plan replaced earlier (a reply, a payment)
was never due. Days are UTC dates, for both sides.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, date, datetime

from pydantic import BaseModel
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from kindly.store import AuditEntry

_WOULD_SEND = re.compile(r"^arm \S+ would send \S+ at (?P<at>\S+)$")


class DayVolume(BaseModel):
    day: date
    planned_sends: int
    actual_sends: int


class ShadowVolumes(BaseModel):
    arm: str
    accounts: int
    planned_sends: int
    """Sends the arm's own policy would have made, by the rule above."""
    actual_sends: int
    """SMS its accounts really got (as the champion's policy sent them)."""
    by_day: list[DayVolume]


def shadow_volumes(engine: Engine, experiment: str, arm: str, now: datetime | None = None) -> ShadowVolumes:
    now = now or datetime.now(UTC)
    with Session(engine) as session:
        accounts = list(
            session.exec(
                select(AuditEntry.account_id).where(
                    AuditEntry.kind == "experiment_assigned",
                    col(AuditEntry.detail).startswith(f"experiment {experiment} arm {arm} "),
                )
            ).all()
        )
        rows = session.exec(
            select(AuditEntry.account_id, AuditEntry.at, AuditEntry.kind, AuditEntry.detail)
            .where(
                col(AuditEntry.account_id).in_(accounts),
                col(AuditEntry.kind).in_(("shadow_plan", "sms_sent")),
            )
            .order_by(col(AuditEntry.account_id), col(AuditEntry.at), col(AuditEntry.id))
        ).all()
    planned: Counter[date] = Counter()
    actual: Counter[date] = Counter()
    plans: dict[str, list[tuple[datetime, datetime | None]]] = {}
    for account_id, at, kind, detail in rows:
        recorded = _utc(at)
        if kind == "sms_sent":
            actual[recorded.date()] += 1
            continue
        match = _WOULD_SEND.match(detail)
        moment = _utc(datetime.fromisoformat(match.group("at"))) if match else None
        plans.setdefault(account_id, []).append((recorded, moment))
    for account_plans in plans.values():
        for index, (_, moment) in enumerate(account_plans):
            replaced = account_plans[index + 1][0] if index + 1 < len(account_plans) else now
            if moment is not None and moment <= replaced and moment <= now:
                planned[moment.date()] += 1
    days = sorted(set(planned) | set(actual))
    return ShadowVolumes(
        arm=arm,
        accounts=len(accounts),
        planned_sends=sum(planned.values()),
        actual_sends=sum(actual.values()),
        by_day=[DayVolume(day=d, planned_sends=planned[d], actual_sends=actual[d]) for d in days],
    )


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

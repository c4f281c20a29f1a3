"""What the phone queue's and the specialists' forms share: a date and time typed at the customer's clock,
and the notice the next page gives after the account took an action.

The notice travels in the redirect's query (POST-redirect-GET), not in the session, whose cookie holds only
its token and the locale. It carries nothing personal: the action's name, the account's masked reference,
its stage, its next step and when; each is checked when read back, so a crafted link shows nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kindly.domain.contract import AccountStatus, Stage
from kindly.domain.masking import mask_reference
from kindly.domain.policy.schedule import StepKind
from kindly.errors import InvalidActionValueError

MASKED = re.compile(r"^\*{4}[A-Za-z0-9._-]{1,4}$")


def local_moment(value: str, zone: str | None, field: str) -> datetime:
    """``value`` (a ``datetime-local`` field: ``2026-12-01T15:00``) as an aware instant at ``zone``, the
    customer's clock; one with an offset is taken as it is. ``InvalidActionValueError`` naming ``field``."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidActionValueError(
            f"{field}: not a date and time (YYYY-MM-DD HH:MM)", field=field
        ) from None
    if moment.tzinfo is not None:
        return moment
    try:
        return moment.replace(tzinfo=ZoneInfo(zone) if zone else UTC)
    except (ZoneInfoNotFoundError, ValueError):
        return moment.replace(tzinfo=UTC)


def local_date(value: str, field: str) -> date:
    """``value`` (a ``date`` field) as a date; ``InvalidActionValueError`` naming ``field``."""
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidActionValueError(f"{field}: not a date (YYYY-MM-DD)", field=field) from None


@dataclass(frozen=True)
class Done:
    """An action the account took, and where the account stands after it."""

    name: str
    """The call outcome or the resolution."""
    reference: str
    """The account's masked reference."""
    stage: Stage
    next_kind: StepKind | None
    at: datetime | None
    """When the next step is due, at the customer's offset."""

    @classmethod
    def after(cls, name: str, account_id: str, status: AccountStatus) -> Done:
        step = status.next_step.kind if status.next_step is not None else None
        return cls(
            name=name,
            reference=mask_reference(account_id),
            stage=status.stage,
            next_kind=StepKind(step) if step in set(StepKind) else None,
            at=status.next_touchpoint_at,
        )

    def query(self) -> str:
        values = {
            "done": self.name,
            "ref": self.reference,
            "stage": self.stage.value,
            "next": self.next_kind.value if self.next_kind else "",
            "at": self.at.isoformat() if self.at else "",
        }
        return urlencode({key: value for key, value in values.items() if value})

    @classmethod
    def of(cls, params: Mapping[str, str], names: Iterable[str]) -> Done | None:
        """The notice a page's query carries, when every part of it is one the console could have sent."""
        name, reference = params.get("done", ""), params.get("ref", "")
        stage, step, at = params.get("stage", ""), params.get("next", ""), params.get("at", "")
        if name not in set(names) or not MASKED.fullmatch(reference) or stage not in set(Stage):
            return None
        if step and step not in set(StepKind):
            return None
        try:
            moment = datetime.fromisoformat(at) if at else None
        except ValueError:
            moment = None
        return cls(name, reference, Stage(stage), StepKind(step) if step else None, moment)

"""The operator actions the account page offers, who may take each (``kindly.domain.roles``), the form
fields each asks for, and how a form becomes the contract's payload.

Each is the workflow update of the same name (``operations.act_on_account``). Changing the customer's
contact details is not offered: it needs the phone number, which the console never shows or takes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ValidationError

from kindly.domain.contract import SIGNAL_MODELS, AccountStatus, SignalName
from kindly.domain.roles import Permission, Role, may

FIELD_MAX = 500


@dataclass(frozen=True)
class Action:
    name: str
    """Its path segment: ``/console/accounts/{id}/actions/{name}``."""
    signal: SignalName
    permission: Permission
    fields: tuple[str, ...]
    optional: tuple[str, ...] = ()


ACTIONS: dict[str, Action] = {
    action.name: action
    for action in (
        Action("pause", SignalName.PAUSE, Permission.PAUSE, ("reason", "until"), optional=("until",)),
        Action("resume", SignalName.RESUME, Permission.PAUSE, ()),
        Action("promise", SignalName.PROMISE_TO_PAY, Permission.PROMISE, ("date",)),
        Action("repayment", SignalName.REPAYMENT, Permission.REPAYMENT, ("amount", "reference")),
        Action("settle", SignalName.SETTLE, Permission.SETTLE, ("amount", "reference")),
        Action("close", SignalName.CLOSE, Permission.CLOSE, ("reason",)),
    )
}


class FormError(ValueError):
    """A form value the action cannot take; ``field`` names it, ``message`` says why (in English, as the
    contract's validation says it)."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def offered(role: Role, status: AccountStatus, ended: bool) -> list[Action]:
    """The actions the page shows ``role`` for an account in ``status``: those the role may take and
    the account could take now (a paused account offers resume, not pause; an ended one, nothing)."""
    if ended:
        return []
    return [action for action in ACTIONS.values() if may(role, action.permission) and _fits(action, status)]


def _fits(action: Action, status: AccountStatus) -> bool:
    if action.name == "pause":
        return not status.paused
    if action.name == "resume":
        return status.paused
    return True


def form_values(action: Action, form: Mapping[str, object]) -> dict[str, str]:
    """The action's fields as typed, trimmed (and cut to ``FIELD_MAX``): what the page keeps on a refusal."""
    values = {}
    for name in action.fields:
        raw = form.get(name)
        values[name] = raw.strip()[:FIELD_MAX] if isinstance(raw, str) else ""
    return values


def payload(action: Action, values: Mapping[str, str], zone: str | None) -> BaseModel:
    """The contract's payload of ``action`` from its form ``values``; ``FormError`` naming the field.

    A pause's ``until`` is typed as the customer's local date and time (the account's ``TimeZone``),
    the clock their contact window keeps."""
    data: dict[str, object] = {}
    for name in action.fields:
        value = values.get(name, "")
        if not value:
            if name in action.optional:
                continue
            raise FormError(name, "required")
        data[name] = _until(value, zone) if name == "until" else value
    try:
        return SIGNAL_MODELS[action.signal].model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        raise FormError(field, str(first["msg"])) from None


def _until(value: str, zone: str | None) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise FormError("until", "not a date and time (YYYY-MM-DD HH:MM)") from None
    if moment.tzinfo is not None:
        return moment
    try:
        return moment.replace(tzinfo=ZoneInfo(zone) if zone else UTC)
    except (ZoneInfoNotFoundError, ValueError):
        return moment.replace(tzinfo=UTC)


def describe(action: Action, values: Mapping[str, str]) -> str:
    """The audit row's detail: the action and the values it was given (never personal data: the console
    asks for none)."""
    given = " ".join(f"{name}={values[name]!r}" for name in action.fields if values.get(name))
    return f"{action.name} {given}".strip()

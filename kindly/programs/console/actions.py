"""The operator actions the account page offers, who may take each (``kindly.domain.roles``), the form
fields each asks for, and how a form becomes the contract's payload.

Each is the workflow update of the same name (``operations.act_on_account``). Changing the customer's
contact details is not offered: it needs the phone number, which the console never shows or takes.

The complaint actions (open, acknowledge, resolve) go the same way, two steps and one audit row each, but
the page offers them in its complaints section, beside the complaint they answer, not in the grid of
account actions.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ValidationError

from kindly.domain.complaints import ComplaintChannel, personal_data_in
from kindly.domain.contract import SIGNAL_MODELS, AccountStatus, SignalName
from kindly.domain.roles import Permission, Role, may

FIELD_MAX = 500
LOCAL_TIMES = frozenset({"until", "received_at"})
"""The fields typed as a date and time on the customer's clock (the account's ``TimeZone``)."""
NOTES = frozenset({"note"})
"""Free-text fields the contract checks for personal data: the audit row gives them only when clean."""


@dataclass(frozen=True)
class Action:
    name: str
    """Its path segment: ``/console/accounts/{id}/actions/{name}``."""
    signal: SignalName
    permission: Permission
    fields: tuple[str, ...]
    optional: tuple[str, ...] = ()
    fixed: tuple[tuple[str, str], ...] = ()
    """Payload values the form does not ask for: a complaint opened here came through the console."""
    on_complaint: bool = False
    """Offered in the page's complaints section, not in its grid of account actions."""


ACTIONS: dict[str, Action] = {
    action.name: action
    for action in (
        Action("pause", SignalName.PAUSE, Permission.PAUSE, ("reason", "until"), optional=("until",)),
        Action("resume", SignalName.RESUME, Permission.PAUSE, ()),
        Action("promise", SignalName.PROMISE_TO_PAY, Permission.PROMISE, ("date",)),
        Action("repayment", SignalName.REPAYMENT, Permission.REPAYMENT, ("amount", "reference")),
        Action("settle", SignalName.SETTLE, Permission.SETTLE, ("amount", "reference")),
        Action("close", SignalName.CLOSE, Permission.CLOSE, ("reason",)),
        Action(
            "open_complaint",
            SignalName.OPEN_COMPLAINT,
            Permission.OPEN_COMPLAINT,
            ("received_at", "note"),
            optional=("received_at", "note"),
            fixed=(("channel", ComplaintChannel.CONSOLE.value),),
            on_complaint=True,
        ),
        Action(
            "acknowledge_complaint",
            SignalName.ACKNOWLEDGE_COMPLAINT,
            Permission.COMPLAINTS,
            ("complaint", "note"),
            on_complaint=True,
        ),
        Action(
            "resolve_complaint",
            SignalName.RESOLVE_COMPLAINT,
            Permission.COMPLAINTS,
            ("complaint", "outcome", "note"),
            on_complaint=True,
        ),
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
    return [
        action
        for action in ACTIONS.values()
        if not action.on_complaint and may(role, action.permission) and _fits(action, status)
    ]


def complaint_actions(role: Role, status: AccountStatus, ended: bool) -> dict[str, Action]:
    """The complaint actions the page offers ``role``, by name: opening one while none is open (the
    account keeps at most one open), acknowledging the open one until it is, and resolving it."""
    if ended:
        return {}
    open_now = [complaint for complaint in status.complaints if complaint.is_open]
    wanted = {"open_complaint"} if not open_now else {"resolve_complaint"}
    if open_now and open_now[0].acknowledged_at is None:
        wanted.add("acknowledge_complaint")
    return {name: ACTIONS[name] for name in sorted(wanted) if may(role, ACTIONS[name].permission)}


def _fits(action: Action, status: AccountStatus) -> bool:
    if action.name == "pause":
        return not status.paused
    if action.name == "resume":
        # Contact held for a complaint is resumed as a pause is; the account refuses any resume while a
        # complaint is open, so it is not offered then.
        complaint_open = any(complaint.is_open for complaint in status.complaints)
        return (status.paused or status.contact_held_for_complaint) and not complaint_open
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

    A pause's ``until`` and a complaint's ``received_at`` are typed as the customer's local date and
    time (the account's ``TimeZone``), the clock their contact window and the complaint's deadlines keep."""
    data: dict[str, object] = dict(action.fixed)
    for name in action.fields:
        value = values.get(name, "")
        if not value:
            if name in action.optional:
                continue
            raise FormError(name, "required")
        data[name] = _local_moment(name, value, zone) if name in LOCAL_TIMES else value
    try:
        return SIGNAL_MODELS[action.signal].model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        raise FormError(field, str(first["msg"])) from None


def _local_moment(field: str, value: str, zone: str | None) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise FormError(field, "not a date and time (YYYY-MM-DD HH:MM)") from None
    if moment.tzinfo is not None:
        return moment
    try:
        return moment.replace(tzinfo=ZoneInfo(zone) if zone else UTC)
    except (ZoneInfoNotFoundError, ValueError):
        return moment.replace(tzinfo=UTC)


def describe(action: Action, values: Mapping[str, str], withhold: Collection[str] = ()) -> str:
    """The audit row's detail: the action and the values it was given (the console asks for no personal
    data). A note that seems to hold some anyway (the contract refuses it), or one in ``withhold`` (the
    account refused it for naming the customer), is given by its length, so a refused or forbidden
    attempt does not copy it into the audit log."""
    given = " ".join(_given(name, values[name], withhold) for name in action.fields if values.get(name))
    return f"{action.name} {given}".strip()


def _given(name: str, value: str, withhold: Collection[str]) -> str:
    if name in NOTES and (name in withhold or personal_data_in(value) is not None):
        return f"{name}=<withheld: {len(value)} characters, personal data>"
    return f"{name}={value!r}"

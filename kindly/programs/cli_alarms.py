"""``kindly alarms [--all]`` and ``kindly alarms clear ID [--by NAME]``: the provider alarms.

An alarm opens when the SMS provider refuses the lender's account (balance exhausted, signature or template
suspended, credentials refused): nothing is sent through that provider while it is open, and each touch
waits for its next window. Put the account right with the provider first, then clear the alarm; sending
resumes with the next window of each account. Clearing records who cleared it and when.
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from typing import Annotated

import typer

from kindly.programs.cli_support import EXIT_INCOMPLETE, EXIT_USAGE, fail, load_settings, out
from kindly.store import AlarmNotFoundError, ProviderAlarm, ProviderAlarms, make_engine

alarms = typer.Typer(
    help="Provider alarms: the SMS provider refused the lender's account, and sending through it is held.",
    invoke_without_command=True,
)

MAX_NAME = 100
"""The longest name ``--by`` takes."""


def _at(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _store() -> ProviderAlarms:
    return ProviderAlarms(make_engine(load_settings().database_url))


def describe(alarm: ProviderAlarm) -> str:
    """One alarm in a few lines: what, since when, how often, and whether and by whom it was cleared."""
    state = "open" if alarm.is_open else f"cleared {_at(alarm.cleared_at)} by {alarm.cleared_by}"
    return (
        f"alarm {alarm.id}: {alarm.provider} {alarm.code} ({state})\n"
        f"  first {_at(alarm.first_at)}, last {_at(alarm.last_at)}, {alarm.count} refusal(s)\n"
        f"  {alarm.message}"
    )


@alarms.callback()
def list_alarms(
    ctx: typer.Context,
    include_cleared: Annotated[bool, typer.Option("--all", help="Also the cleared alarms.")] = False,
) -> None:
    """The open alarms, the newest first (with --all, the cleared ones too, with who cleared them)."""
    if ctx.invoked_subcommand is not None:
        return
    found = _store().alarms(include_cleared=include_cleared)
    if not found:
        held = "" if include_cleared else ": SMS sending is not held"
        out.print(f"no {'' if include_cleared else 'open '}provider alarm{held}", highlight=False)
        return
    for alarm in found:
        out.print(describe(alarm), highlight=False, markup=False)
    if any(alarm.is_open for alarm in found):
        out.print(
            "SMS through a provider with an open alarm is held; once its account is put right: "
            "kindly alarms clear ID",
            highlight=False,
        )


def _operator() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        fail("cannot tell who you are: pass --by NAME", EXIT_USAGE)


@alarms.command("clear")
def clear(
    alarm_id: Annotated[int, typer.Argument(help="The alarm's id (kindly alarms).", min=1)],
    by: Annotated[
        str | None, typer.Option(help="Who clears it (default: the operating-system user).")
    ] = None,
) -> None:
    """Clear an alarm once the provider account is put right: sending through it resumes with each
    account's next window. Exit 1 for an unknown id; clearing an alarm again changes nothing."""
    who = (by if by is not None else _operator()).strip()
    if not who or len(who) > MAX_NAME:
        fail(f"--by: a name of 1 to {MAX_NAME} characters", EXIT_USAGE)
    try:
        alarm, cleared = _store().clear(alarm_id, who, datetime.now(UTC))
    except AlarmNotFoundError as error:
        fail(str(error), EXIT_INCOMPLETE)
    if not cleared:
        out.print(
            f"alarm {alarm.id} was already cleared by {alarm.cleared_by} at {_at(alarm.cleared_at)}",
            highlight=False,
            markup=False,
        )
        return
    out.print(
        f"alarm {alarm.id} ({alarm.provider} {alarm.code}) cleared by {who}: sending through "
        f"{alarm.provider} resumes with each account's next window",
        highlight=False,
        markup=False,
    )

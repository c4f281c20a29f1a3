"""``kindly complaints``: complaints about how the lender collects, each one the account's own case.

``list`` shows the open ones, the nearest deadline first, from the complaints table; ``open``,
``acknowledge`` and ``resolve`` are workflow updates, like every action: a bad value exits 2 naming the
field before anything is sent, and a refusal of the account (a complaint already open, one already
resolved, a number it does not have) exits 3 with the reason. Automated contact is held from the moment a
complaint opens; after its resolution an operator resumes it (``kindly resume``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

import typer
from pydantic import BaseModel, TypeAdapter
from rich.table import Table

from kindly.domain.complaints import AcknowledgeComplaint, OpenComplaint, ResolveComplaint
from kindly.domain.contract import AccountStatus, SignalName
from kindly.programs.cli_support import AccountId, load_settings, out, run_with_client, validated_payload
from kindly.programs.complaint_listing import PAGE, ComplaintItem, open_complaints
from kindly.programs.operations import act_on_account
from kindly.store import make_engine
from kindly.store.complaints import MAX_PAGE

complaints = typer.Typer(
    help="Complaints about how the lender collects: open, acknowledge and resolve them; list the open ones.",
    no_args_is_help=True,
)

Number = Annotated[int, typer.Argument(help="The complaint's number on the account (1 for its first).")]
Note = Annotated[str, typer.Option(help="What was done and said, without personal data (audited).")]


class Channel(StrEnum):
    """How a complaint a person records reached the lender (a reply opens one by itself)."""

    CONSOLE = "console"
    API = "api"


def _at(moment: datetime | None) -> str:
    """An instant at the offset it carries (the listing's: the account's own)."""
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M%z")


@complaints.command("list")
def list_complaints(
    every: Annotated[
        bool, typer.Option("--all", help=f"Every open complaint, not only the first {PAGE}.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The open complaints, the nearest deadline first (the overdue ones before all), at each account's
    own UTC offset."""
    engine = make_engine(load_settings().database_url)
    try:
        items, total = open_complaints(engine, limit=MAX_PAGE if every else PAGE)
        while every and len(items) < total:
            more, total = open_complaints(engine, limit=MAX_PAGE, offset=len(items))
            if not more:
                break
            items.extend(more)
    finally:
        engine.dispose()
    if as_json:
        out.print_json(TypeAdapter(list[ComplaintItem]).dump_json(items).decode())
        return
    if not items:
        out.print("no open complaint", highlight=False)
        return
    table = Table(title=f"open complaints ({len(items)} of {total})")
    for column in ("account", "#", "channel", "received", "awaiting", "by", "escalated"):
        table.add_column(column, no_wrap=True)
    for item in items:
        escalated = [
            name
            for name, at in (
                ("acknowledgement", item.acknowledgement_overdue_at),
                ("resolution", item.resolution_overdue_at),
            )
            if at is not None
        ]
        table.add_row(
            item.account_id,
            str(item.number),
            str(item.channel),
            _at(item.received_at),
            str(item.awaiting),
            _at(item.next_deadline) + (" OVERDUE" if item.overdue else ""),
            ", ".join(escalated) or "-",
        )
    out.print(table)


def _act(account_id: str, name: SignalName, payload: BaseModel) -> None:
    """One complaint action as a workflow update; the account's complaints as it answered."""
    result: AccountStatus = run_with_client(
        load_settings(), lambda client: act_on_account(client, account_id, name, payload)
    )
    out.print(f"{name}: done for account {account_id}", highlight=False)
    for complaint in result.complaints:
        state = f"resolved {complaint.outcome}" if complaint.resolved_at else "open"
        acknowledged = "acknowledged" if complaint.acknowledged_at else "not acknowledged"
        out.print(
            f"  complaint {complaint.number} ({complaint.channel}): {state}, {acknowledged}; received "
            f"{_at(complaint.received_at)}, acknowledge by {_at(complaint.acknowledge_by)}, resolve by "
            f"{_at(complaint.resolve_by)}",
            highlight=False,
            markup=False,
        )
    if result.contact_held_for_complaint:
        out.print("  automated contact is held; once no complaint is open: kindly resume", highlight=False)


@complaints.command("open")
def open_command(
    account_id: AccountId,
    channel: Annotated[
        Channel, typer.Option(help="How it reached the lender: console (a call, a letter, a visit) or api.")
    ] = Channel.CONSOLE,
    received_at: Annotated[
        str | None,
        typer.Option(help="When the lender received it, with its UTC offset (default: now)."),
    ] = None,
    note: Annotated[str | None, typer.Option(help="What it is about, without personal data.")] = None,
) -> None:
    """Record a complaint the lender received: its deadlines count from --received-at, and automated
    contact is held. Refused (exit 3) while another complaint of the account is open."""
    payload = validated_payload(OpenComplaint, channel=channel.value, received_at=received_at, note=note)
    _act(account_id, SignalName.OPEN_COMPLAINT, payload)


@complaints.command("acknowledge")
def acknowledge(account_id: AccountId, number: Number, note: Note) -> None:
    """The lender told the customer it has the complaint."""
    payload = validated_payload(AcknowledgeComplaint, complaint=number, note=note)
    _act(account_id, SignalName.ACKNOWLEDGE_COMPLAINT, payload)


@complaints.command("resolve")
def resolve(
    account_id: AccountId,
    number: Number,
    outcome: Annotated[str, typer.Option(help="upheld, partly_upheld, not_upheld or withdrawn.")],
    note: Note,
) -> None:
    """The lender's answer to the complaint. Contact stays held until an operator resumes the account."""
    payload = validated_payload(ResolveComplaint, complaint=number, outcome=outcome, note=note)
    _act(account_id, SignalName.RESOLVE_COMPLAINT, payload)

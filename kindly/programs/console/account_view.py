"""Everything the account page shows, gathered at once: the workflow's status and timeline (queries), its
search attributes (time zone, segment, experiment arm), and its rows of the audit log.

Nothing here holds personal data: the status and timeline never carry the customer's name, number or loan
reference, the SMS are shown by template, touchpoint and time (their bodies are not kept in the clear),
and the audit rows are the engine's decisions and the console's actions.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from kindly.domain import search_attributes as sa
from kindly.domain.contract import AccountStatus, Stage, TimelineEntry, TimelineKind
from kindly.errors import AccountNotFoundError
from kindly.programs.console.audit_query import AuditFilter, audit_page
from kindly.programs.operations import account_handle, account_status, account_timeline
from kindly.store import AuditEntry

AUDIT_ROWS = 100
"""The account page shows its newest audit rows; the audit view pages through the rest."""
SMS_ROWS = 100
ENDED = frozenset({Stage.REPAID, Stage.SETTLED, Stage.CLOSED})


@dataclass(frozen=True)
class Attributes:
    zone: str | None
    segment: str | None
    arm: str | None


@dataclass(frozen=True)
class AccountView:
    account_id: str
    status: AccountStatus
    attributes: Attributes
    timeline: list[TimelineEntry]
    """Newest first."""
    deferrals: list[TimelineEntry]
    sms: list[AuditEntry]
    audit: list[AuditEntry]
    more_audit: bool
    """More rows than ``AUDIT_ROWS``: the page links to the audit view."""

    @property
    def ended(self) -> bool:
        return self.status.stage in ENDED


async def load_account(client: Client, engine: Engine, account_id: str) -> AccountView:
    """The account's page data; ``AccountNotFoundError`` when no workflow of it exists."""
    status, timeline, attributes, audit, sms = await asyncio.gather(
        account_status(client, account_id),
        account_timeline(client, account_id),
        account_attributes(client, account_id),
        run_in_threadpool(audit_page, engine, AuditFilter(account_id=account_id), None, AUDIT_ROWS),
        run_in_threadpool(
            audit_page,
            engine,
            AuditFilter(account_id=account_id, kinds=(TimelineKind.SMS_SENT.value,)),
            None,
            SMS_ROWS,
        ),
    )
    newest_first = list(reversed(timeline))
    return AccountView(
        account_id=account_id,
        status=status,
        attributes=attributes,
        timeline=newest_first,
        deferrals=[entry for entry in newest_first if entry.kind == TimelineKind.DEFERRED],
        sms=sms.rows,
        audit=audit.rows,
        more_audit=audit.next is not None,
    )


async def account_attributes(client: Client, account_id: str) -> Attributes:
    """The account's published zone, segment and experiment arm (one describe)."""
    try:
        description = await account_handle(client, account_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise AccountNotFoundError(f"no workflow for account {account_id!r}") from err
        raise
    found = description.typed_search_attributes
    return Attributes(
        zone=found.get(sa.TIME_ZONE), segment=found.get(sa.SEGMENT), arm=found.get(sa.EXPERIMENT_ARM)
    )

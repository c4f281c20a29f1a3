"""What operators do to accounts, for the CLI and the HTTP API: signal, query, find.

Payloads are validated with the contract's models before anything is sent, so a bad request is
refused at the door with the field named; the workflow validates again, for callers that go
straight to Temporal.
"""

from __future__ import annotations

from pydantic import BaseModel
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from kindly.contract import (
    SIGNAL_MODELS,
    AccountStatus,
    QueryName,
    SignalName,
    TimelineEntry,
    workflow_id_for,
)
from kindly.errors import KindlyError


class AccountNotFoundError(KindlyError):
    """No workflow exists for this account id."""


def account_handle(client: Client, account_id: str) -> WorkflowHandle[object, object]:
    return client.get_workflow_handle(workflow_id_for(account_id))


async def signal_account(client: Client, account_id: str, name: SignalName, payload: BaseModel) -> None:
    """Send one signal; ``payload`` must be the contract's model for that signal."""
    expected = SIGNAL_MODELS[name]
    if not isinstance(payload, expected):
        raise TypeError(f"signal {name} takes {expected.__name__}, not {type(payload).__name__}")
    try:
        await account_handle(client, account_id).signal(name, payload.model_dump(mode="json"))
    except RPCError as err:
        raise _translate(err, account_id) from err


async def account_status(client: Client, account_id: str) -> AccountStatus:
    try:
        status: AccountStatus = await account_handle(client, account_id).query(
            QueryName.STATUS, result_type=AccountStatus
        )
    except RPCError as err:
        raise _translate(err, account_id) from err
    return status


async def account_timeline(client: Client, account_id: str) -> list[TimelineEntry]:
    try:
        entries: list[TimelineEntry] = await account_handle(client, account_id).query(
            QueryName.TIMELINE, result_type=list[TimelineEntry]
        )
    except RPCError as err:
        raise _translate(err, account_id) from err
    return entries


def _translate(err: RPCError, account_id: str) -> Exception:
    if err.status == RPCStatusCode.NOT_FOUND:
        return AccountNotFoundError(f"no workflow for account {account_id!r}")
    return err

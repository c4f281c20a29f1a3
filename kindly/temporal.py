"""Connecting to Temporal and starting accounts: used by the worker, the demo, the CLI and tests."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import WorkflowAlreadyStartedError

from kindly.contract import WORKFLOW_TYPE, AccountInput, AccountResult, workflow_id_for
from kindly.settings import Settings


async def connect(settings: Settings, *, wait: timedelta = timedelta(seconds=0)) -> Client:
    """A client with Kindly's data converter; retries for ``wait`` while a server starts."""
    deadline = asyncio.get_running_loop().time() + wait.total_seconds()
    while True:
        try:
            return await Client.connect(
                settings.temporal_address,
                namespace=settings.temporal_namespace,
                data_converter=pydantic_data_converter,
            )
        except RuntimeError:
            if asyncio.get_running_loop().time() >= deadline:
                raise
            await asyncio.sleep(0.5)


async def start_account(
    client: Client, account: AccountInput, *, task_queue: str
) -> WorkflowHandle[object, AccountResult]:
    """Start the account's workflow, or return the one already open: re-importing is harmless.

    A closed workflow (repaid, settled, closed) is not restarted under the same id; only a failed or
    terminated one is, so a finished account is never texted again by a re-import: its handle is
    returned instead (``handle.result()`` gives how it ended).
    """
    workflow_id = workflow_id_for(account.account_id)
    try:
        return await client.start_workflow(
            WORKFLOW_TYPE,
            args=[account.model_dump(mode="json")],
            id=workflow_id,
            task_queue=task_queue,
            result_type=AccountResult,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            static_summary=f"Collection for account {account.account_id} ({account.segment})",
        )
    except WorkflowAlreadyStartedError as err:
        # Only a closed run that the reuse policy keeps (completed) gets here: an open one is
        # returned by USE_EXISTING above.
        return client.get_workflow_handle(
            workflow_id,
            run_id=err.run_id,
            first_execution_run_id=err.first_run_id,
            result_type=AccountResult,
        )

"""Connecting to Temporal and starting accounts: used by the worker, the demo, the CLI and tests."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from functools import partial

from temporalio.client import Client, TLSConfig, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from kindly.codec import data_converter
from kindly.contract import WORKFLOW_TYPE, AccountInput, AccountResult, workflow_id_for
from kindly.errors import ConfigurationError
from kindly.keyring import load_keyring
from kindly.search_attributes import ensure_search_attributes, initial_search_attributes
from kindly.settings import Settings


async def connect(
    settings: Settings, *, wait: timedelta = timedelta(seconds=0), runtime: Runtime | None = None
) -> Client:
    """A client with Kindly's data converter (every payload encrypted with the settings' key ring,
    ``kindly.codec``); retries for ``wait`` while a server starts.

    ``runtime`` carries telemetry (the worker's Prometheus endpoint); other callers use the default.
    """
    converter = data_converter(load_keyring(settings))
    deadline = asyncio.get_running_loop().time() + wait.total_seconds()
    while True:
        try:
            return await Client.connect(
                settings.temporal_address,
                namespace=settings.temporal_namespace,
                data_converter=converter,
                api_key=settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None,
                tls=tls_config(settings),
                runtime=runtime,
            )
        except RuntimeError:
            if asyncio.get_running_loop().time() >= deadline:
                raise
            await asyncio.sleep(0.5)


def tls_config(settings: Settings) -> TLSConfig | bool:
    """TLS for a remote cluster or Temporal Cloud: client certificates (mTLS) and a private CA when
    configured; the system's roots alone with an API key or ``temporal_tls``; plain for the dev server."""
    files = (settings.temporal_tls_client_cert, settings.temporal_tls_client_key)
    if any(files) and not all(files):
        raise ConfigurationError("temporal_tls_client_cert and temporal_tls_client_key go together")
    if not (any(files) or settings.temporal_tls_server_ca or settings.temporal_tls):
        return settings.temporal_api_key is not None
    return TLSConfig(
        client_cert=settings.temporal_tls_client_cert.read_bytes()
        if settings.temporal_tls_client_cert
        else None,
        client_private_key=(
            settings.temporal_tls_client_key.read_bytes() if settings.temporal_tls_client_key else None
        ),
        server_root_ca_cert=(
            settings.temporal_tls_server_ca.read_bytes() if settings.temporal_tls_server_ca else None
        ),
        domain=settings.temporal_tls_server_name,
    )


async def start_account(
    client: Client, account: AccountInput, *, task_queue: str
) -> WorkflowHandle[object, AccountResult]:
    """Start the account's workflow, or return the one already open: re-importing is harmless.

    A closed workflow (repaid, settled, closed) is not restarted under the same id; only a failed or
    terminated one is, so a finished account is never texted again by a re-import: its handle is
    returned instead (``handle.result()`` gives how it ended).

    The account's search attributes go with the start, so it is findable at once (a portfolio
    imported while no worker runs included) at no Temporal action. A namespace that does not know
    them yet (no worker or ``kindly setup`` has registered them) gets them registered, and this
    account starts without them: its workflow publishes them with its first plan.
    """
    workflow_id = workflow_id_for(account.account_id)
    start = partial(
        client.start_workflow,
        WORKFLOW_TYPE,
        args=[account.model_dump(mode="json")],
        id=workflow_id,
        task_queue=task_queue,
        result_type=AccountResult,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        static_summary=f"Collection for account {account.account_id} ({account.segment})",
    )
    try:
        try:
            return await start(search_attributes=initial_search_attributes(account, datetime.now(UTC)))
        except RPCError as err:
            if not _unknown_search_attribute(err):
                raise
            # Best effort (Temporal Cloud refuses it: create them there as the README says).
            with contextlib.suppress(RPCError):
                await ensure_search_attributes(client, client.namespace)
            return await start()
    except WorkflowAlreadyStartedError as err:
        # Only a closed run that the reuse policy keeps (completed) gets here: an open one is
        # returned by USE_EXISTING above.
        return client.get_workflow_handle(
            workflow_id,
            run_id=err.run_id,
            first_execution_run_id=err.first_run_id,
            result_type=AccountResult,
        )


def _unknown_search_attribute(err: RPCError) -> bool:
    """The server's answer to a start whose search attributes the namespace has not registered."""
    return err.status == RPCStatusCode.INVALID_ARGUMENT and "search attribute" in err.message.lower()

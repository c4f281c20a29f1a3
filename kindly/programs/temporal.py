"""Connecting to Temporal and starting accounts: used by the worker, the demo, the CLI and tests."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from temporalio.client import Client, TLSConfig, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from kindly.codec import data_converter
from kindly.domain.contract import WORKFLOW_TYPE, AccountInput, AccountResult, workflow_id_for
from kindly.domain.search_attributes import ensure_search_attributes
from kindly.errors import ConfigurationError
from kindly.keyring import load_keyring
from kindly.programs.preparation import PreparedStart
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
    client: Client, account: AccountInput, *, task_queue: str, prepared: PreparedStart | None = None
) -> WorkflowHandle[object, AccountResult]:
    """Start the account's workflow, or return the one already open: re-importing is harmless.

    A closed workflow (repaid, settled, closed) is not restarted under the same id; only a failed or
    terminated one is, so a finished account is never texted again by a re-import: its handle is
    returned instead (``handle.result()`` gives how it ended). ``prepared`` (``kindly.programs.preparation``)
    lets the run begin without preparing itself; ``open_account`` also tells whether this call
    started the run, which finishing a preparation needs.
    """
    return (await open_account(client, account, task_queue=task_queue, prepared=prepared)).handle


@dataclass(frozen=True)
class OpenedAccount:
    handle: WorkflowHandle[object, AccountResult]
    created: bool
    """This call started the run (False: the handle is of a run that was already there)."""

    @property
    def first_run_id(self) -> str:
        """The run chain's first run id: the new run's own when ``created``."""
        return self.handle.first_execution_run_id or self.handle.result_run_id or ""


async def open_account(
    client: Client, account: AccountInput, *, task_queue: str, prepared: PreparedStart | None = None
) -> OpenedAccount:
    """``start_account``, saying whether the run is new: one start that fails where a run is open or
    kept, and names that run, whose handle is returned instead."""
    try:
        handle = await _start(client, account, task_queue, WorkflowIDConflictPolicy.FAIL, prepared)
        return OpenedAccount(handle, created=True)
    except WorkflowAlreadyStartedError as err:
        existing = client.get_workflow_handle(
            workflow_id_for(account.account_id),
            run_id=err.run_id,
            first_execution_run_id=err.first_run_id,
            result_type=AccountResult,
        )
        return OpenedAccount(existing, created=False)


async def start_new_account(
    client: Client, account: AccountInput, *, task_queue: str, prepared: PreparedStart | None = None
) -> WorkflowHandle[object, AccountResult]:
    """Start the account's workflow only where no run of it is open or kept: one RPC that also tells
    the importer "started" from "already there" (``WorkflowAlreadyStartedError`` names the run)."""
    return await _start(client, account, task_queue, WorkflowIDConflictPolicy.FAIL, prepared)


async def _start(
    client: Client,
    account: AccountInput,
    task_queue: str,
    conflict_policy: WorkflowIDConflictPolicy,
    prepared: PreparedStart | None,
) -> WorkflowHandle[object, AccountResult]:
    """The start itself, with ``ALLOW_DUPLICATE_FAILED_ONLY`` on reuse: ``run(account)``, or, prepared,
    ``run(account, None, preparation)`` with the first search attributes. No static summary: the
    workflow id names the account and the ``Segment`` attribute its segment.

    A namespace that does not know the attributes yet (no worker or ``kindly setup`` has registered
    them) gets them registered, and this account starts without them: its run publishes them with its
    first plan."""
    args: list[object] = [account.model_dump(mode="json")]
    if prepared is not None:
        args += [None, prepared.argument]
    start = partial(
        client.start_workflow,
        WORKFLOW_TYPE,
        args=args,
        id=workflow_id_for(account.account_id),
        task_queue=task_queue,
        result_type=AccountResult,
        id_conflict_policy=conflict_policy,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
    )
    if prepared is None:
        return await start()
    try:
        return await start(search_attributes=prepared.search_attributes)
    except RPCError as err:
        if not _unknown_search_attribute(err):
            raise
    # Best effort (Temporal Cloud refuses it: create them there as the README says).
    with contextlib.suppress(RPCError):
        await ensure_search_attributes(client, client.namespace)
    return await start()


def _unknown_search_attribute(err: RPCError) -> bool:
    """The server's answer to a start whose search attributes the namespace has not registered."""
    return err.status == RPCStatusCode.INVALID_ARGUMENT and "search attribute" in err.message.lower()

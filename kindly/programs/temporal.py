"""Connecting to Temporal and starting accounts: used by the worker, the demo, the CLI and tests."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client, TLSConfig, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import SearchAttributeIndexedValueType, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from kindly.codec import data_converter
from kindly.domain.contract import WORKFLOW_TYPE, AccountInput, AccountResult, workflow_id_for
from kindly.domain.policy.schedule import zone_date
from kindly.domain.search_attributes import (
    ALL_KEYS,
    CURRENCY,
    TIME_ZONE,
    as_start_attributes,
    start_values,
)
from kindly.domain.state import stage_by_date
from kindly.domain.summaries import start_summary
from kindly.errors import ConfigurationError
from kindly.keyring import load_keyring
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
    returned instead (``handle.result()`` gives how it ended)."""
    return (await open_account(client, account, task_queue=task_queue)).handle


@dataclass(frozen=True)
class OpenedAccount:
    handle: WorkflowHandle[object, AccountResult]
    created: bool
    """This call started the run (False: the handle is of a run that was already there)."""


async def open_account(client: Client, account: AccountInput, *, task_queue: str) -> OpenedAccount:
    """The one way Kindly starts an account (``kindly import``, ``POST /accounts``, the demo): one start
    with the account's static search attributes, which fails where a run is open or kept and names
    that run, whose handle is returned instead.

    The run prepares itself (policy, phone index, stored opt-out) with its first local activity. The
    attributes given here (segment, due date, amount, the stage the calendar gives, currency and time
    zone) make it findable in visibility from its start, before any worker has run it. A namespace that
    does not know them yet (no worker or ``kindly setup`` has registered them) gets them registered where
    it allows that; the account starts with those it knows, or without them: its run publishes the
    changing ones once it has planned."""
    try:
        handle = await _start(client, account, task_queue)
        return OpenedAccount(handle, created=True)
    except WorkflowAlreadyStartedError as err:
        existing = client.get_workflow_handle(
            workflow_id_for(account.account_id),
            run_id=err.run_id,
            first_execution_run_id=err.first_run_id,
            result_type=AccountResult,
        )
        return OpenedAccount(existing, created=False)


async def _start(
    client: Client, account: AccountInput, task_queue: str
) -> WorkflowHandle[object, AccountResult]:
    """The start itself: ``run(account)``, failing on an open or kept run, reusing the id only after a
    failed or terminated one, with a static summary for the Web UI that names no person."""
    start = partial(
        client.start_workflow,
        WORKFLOW_TYPE,
        account.model_dump(mode="json"),
        id=workflow_id_for(account.account_id),
        task_queue=task_queue,
        result_type=AccountResult,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        static_summary=start_summary(account),
    )
    stage = stage_by_date(account.due_date, zone_date(account.timezone, datetime.now(UTC))).value
    values = start_values(account, stage)
    try:
        return await start(search_attributes=as_start_attributes(values))
    except RPCError as err:
        if not _unknown_search_attribute(err):
            raise
    # Best effort (Temporal Cloud refuses it: create them there as docs/deploying.md says). Then all of
    # them again, then without the two that came after 1.0 (a namespace set up for 1.0 lacks them, and
    # the run never publishes DueDate), then none: the run publishes the others once it has planned.
    with contextlib.suppress(RPCError):
        await ensure_search_attributes(client, client.namespace)
    for given in (values, {**values, CURRENCY.name: None, TIME_ZONE.name: None}):
        try:
            return await start(search_attributes=as_start_attributes(given))
        except RPCError as err:
            if not _unknown_search_attribute(err):
                raise
    return await start()


async def execution_status(
    client: Client, workflow_id: str, run_id: str | None = None
) -> tuple[WorkflowExecutionStatus, str]:
    """A run's status and run id (the latest run's without ``run_id``); ``RPCError`` NOT_FOUND when
    there is none. Reads the status alone, not the search attributes, which the time-skipping test
    server returns in a form the SDK cannot decode once one was unset."""
    request = DescribeWorkflowExecutionRequest(
        namespace=client.namespace, execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id or "")
    )
    info = (await client.workflow_service.describe_workflow_execution(request)).workflow_execution_info
    return WorkflowExecutionStatus(info.status), info.execution.run_id


def _unknown_search_attribute(err: RPCError) -> bool:
    """The server's answer to a start whose search attributes the namespace has not registered."""
    return err.status == RPCStatusCode.INVALID_ARGUMENT and "search attribute" in err.message.lower()


_PROTO_TYPES = {
    SearchAttributeIndexedValueType.KEYWORD: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    SearchAttributeIndexedValueType.INT: IndexedValueType.INDEXED_VALUE_TYPE_INT,
    SearchAttributeIndexedValueType.DOUBLE: IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    SearchAttributeIndexedValueType.DATETIME: IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    SearchAttributeIndexedValueType.BOOL: IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
}


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register the attributes the namespace lacks; returns the names added."""
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        known = set(existing.custom_attributes) | set(existing.system_attributes)
    except RPCError as err:
        # The time-skipping test server cannot list, but accepts the additions.
        if err.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        known = set()
    missing = {key.name: _PROTO_TYPES[key.indexed_value_type] for key in ALL_KEYS if key.name not in known}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    return sorted(missing)

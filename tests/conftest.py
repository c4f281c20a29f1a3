"""Shared fixtures: a real time-skipping Temporal server, a real HTTP gateway, a real database."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment

from kindly.codec import data_converter
from kindly.keyring import load_keyring
from kindly.programs.dev_server import bundled_binary
from kindly.programs.temporal import ensure_search_attributes
from kindly.programs.worker import build_worker
from kindly.settings import Settings
from kindly.store import AuditStore, make_engine
from tests.http_recorder import RecordingHttpServer

T = TypeVar("T")

# Segments the lifecycle tests use: "plain" has no holiday calendar so a test does not depend on
# the day it runs; "standard" keeps the shipped mainland-China calendar.
TEST_POLICIES = {
    "plain": {"holiday_calendar": None},
    "own_words": {"holiday_calendar": None, "reply_keywords": {"dispute": ["chargeback"]}},
}

# Fixed, obviously fake keys (base64 of readable 32-byte strings): every test encrypts Temporal
# payloads like production does, and none creates a development key ring in ``.data/keys.json``.
ENCRYPTION_SETTINGS: dict[str, Any] = {
    "encryption_keys": {"test-1": "a2luZGx5LXRlc3Qta2V5LTEtbm90LWEtc2VjcmV0ISE="},
    "encryption_key_id": "test-1",
    "lookup_hash_key": "a2luZGx5LXRlc3QtaGFzaC1rZXktbm90LXNlY3JldCE=",
}
ENCRYPTION_ENV = {
    "COLLECTIONS_ENCRYPTION_KEYS": json.dumps(ENCRYPTION_SETTINGS["encryption_keys"]),
    "COLLECTIONS_ENCRYPTION_KEY_ID": ENCRYPTION_SETTINGS["encryption_key_id"],
    "COLLECTIONS_LOOKUP_HASH_KEY": ENCRYPTION_SETTINGS["lookup_hash_key"],
}
"""The test keys as environment variables, for the CLI and worker subprocesses under test."""

STRICT_SANDBOX_ENV = {"COLLECTIONS_STRICT_WORKFLOW_SANDBOX": "true"}
"""Workers under test re-import the workflow module in the sandbox for each workflow, so that the
sandbox's restrictions guard Kindly's own workflow code (``worker.workflow_runner``): set here for this
process's settings, and given to worker subprocesses with ``WORKER_ENV``. Only the end-to-end tests
run ``python worker.py`` as deployed, with the workflow package passed through."""
os.environ.update(STRICT_SANDBOX_ENV)

WORKER_ENV = {**ENCRYPTION_ENV, **STRICT_SANDBOX_ENV}


def encrypting_converter() -> DataConverter:
    """The worker's data converter with the test keys: for clients that tests build themselves."""
    return data_converter(load_keyring(Settings(_env_file=None, **ENCRYPTION_SETTINGS)))


@pytest.fixture
async def env(settings: Settings) -> AsyncIterator[WorkflowEnvironment]:
    """A fresh time-skipping server per test: each starts at today's date, not years ahead. Its
    client encrypts with the test settings' key ring, as ``kindly.programs.temporal.connect`` does."""
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=bundled_binary("temporal-test-server"),
        data_converter=data_converter(load_keyring(settings)),
    )
    try:
        yield environment
    finally:
        await environment.shutdown()


@pytest.fixture
def gateway() -> Iterator[RecordingHttpServer]:
    """A real HTTP server on 127.0.0.1 standing in for the SMS carrier and the hand-off systems."""
    with RecordingHttpServer() as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, gateway: RecordingHttpServer) -> Settings:
    policy_file = tmp_path / "policies.json"
    policy_file.write_text(json.dumps(TEST_POLICIES))
    return Settings(
        _env_file=None,
        task_queue=f"test-{uuid.uuid4().hex[:8]}",
        database_url=f"sqlite:///{tmp_path / 'kindly.db'}",
        sms_provider="webhook",
        sms_webhook_url=f"{gateway.url}/sms",
        phone_webhook_url=f"{gateway.url}/phone",
        specialist_webhook_url=f"{gateway.url}/specialist",
        policy_file=policy_file,
        strict_workflow_sandbox=True,
        **ENCRYPTION_SETTINGS,
    )


@pytest.fixture
def store(settings: Settings) -> AuditStore:
    return AuditStore(make_engine(settings.database_url))


@pytest.fixture
async def client(env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Client]:
    """The test server's client with a Kindly worker running on a fresh task queue."""
    await ensure_search_attributes(env.client, env.client.namespace)
    async with build_worker(env.client, settings) as worker, worker:
        try:
            yield env.client
        finally:
            await _terminate_started()


async def _terminate_started() -> None:
    from temporalio.service import RPCError

    from tests.lifecycle_helpers import STARTED

    for handle in STARTED:
        # Not describe(): the test server encodes datetime search attributes in a form the SDK
        # cannot decode. Terminating a finished workflow is refused, which is fine here.
        with contextlib.suppress(RPCError):
            await handle.terminate("test finished")
    STARTED.clear()


async def eventually(
    probe: Callable[[], Awaitable[T]], check: Callable[[T], bool], *, attempts: int = 400
) -> T:
    """Poll ``probe`` until ``check`` holds: waits on a condition, never on a fixed delay."""
    value = await probe()
    for _ in range(attempts):
        if check(value):
            return value
        await asyncio.sleep(0.025)
        value = await probe()
    raise AssertionError(f"condition never held; last value: {value!r}")


def sms_requests(gateway: RecordingHttpServer) -> list[dict[str, Any]]:
    return [request.json() for request in gateway.requests_to("/sms")]


@pytest.fixture
async def dev_env(settings: Settings) -> AsyncIterator[WorkflowEnvironment]:
    """A real dev server (full visibility: list, count, search attributes) with a Kindly worker."""
    environment = await WorkflowEnvironment.start_local(
        dev_server_existing_path=bundled_binary("temporal"),
        data_converter=data_converter(load_keyring(settings)),
        ui=False,
    )
    try:
        added = await ensure_search_attributes(environment.client, environment.client.namespace)
        assert "CollectionStage" in added
        async with build_worker(environment.client, settings) as worker, worker:
            yield environment
    finally:
        await environment.shutdown()


@pytest.fixture
async def dev_api(dev_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Any]:
    """The HTTP API on a real server over the dev server (which, unlike the time-skipping server, takes
    workflow updates: the operator actions)."""
    from tests.test_api import api_settings, serving

    async with serving(dev_env, dev_env.client, settings, api_settings()) as served:
        yield served


CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="chromium is not installed (make test installs Debian's chromium when run as root)",
)
"""Browser tests run in CI (where ``make test`` installs Debian's chromium) and wherever it is installed."""


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    """Debian's chromium driven by Playwright from PyPI (never a browser Playwright downloads)."""
    from playwright.async_api import async_playwright

    assert CHROMIUM is not None, "chromium must be installed in CI (make test does it)"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()

"""The Temporal Web UI, driven by headless Chromium: an operator's query lists the right accounts."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import urllib.parse
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from kindly.programs.api import create_app
from kindly.programs.api.settings import ApiSettings
from kindly.programs.dev_server import bundled_binary
from kindly.programs.temporal import ensure_search_attributes, start_account
from kindly.programs.worker import build_worker
from kindly.settings import Settings
from kindly.store import make_engine
from tests.asgi_server import serving
from tests.conftest import encrypting_converter, eventually
from tests.lifecycle_helpers import make_account

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="chromium is not installed (make test installs Debian's chromium when run as root)",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
async def ui_env(settings: Settings) -> AsyncIterator[tuple[WorkflowEnvironment, int]]:
    ui_port = _free_port()
    environment = await WorkflowEnvironment.start_local(
        dev_server_existing_path=bundled_binary("temporal"),
        data_converter=encrypting_converter(),
        ui=True,
        ui_port=ui_port,
    )
    try:
        await ensure_search_attributes(environment.client, environment.client.namespace)
        async with build_worker(environment.client, settings) as worker, worker:
            yield environment, ui_port
    finally:
        await environment.shutdown()


async def _rendered_page(url: str, *, offline: bool = False) -> str:
    """The page's DOM after its scripts ran, as a person's browser would show it; ``offline``, every
    request beyond this machine goes to a dead proxy (loopback is never proxied)."""
    assert CHROMIUM is not None, "chromium must be installed in CI (make test does it)"
    closed = ["--proxy-server=http://127.0.0.1:9"] if offline else []
    with tempfile.TemporaryDirectory() as profile:
        process = await asyncio.create_subprocess_exec(
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            *closed,
            "--virtual-time-budget=15000",
            "--dump-dom",
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
    return output.decode("utf-8", "replace")


async def test_operator_query_in_the_web_ui_lists_the_overdue_account(
    ui_env: tuple[WorkflowEnvironment, int], settings: Settings
) -> None:
    environment, ui_port = ui_env
    client = environment.client
    today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date()
    overdue = make_account(today - timedelta(days=40))
    not_yet_due = make_account(today + timedelta(days=20))
    handles = [
        await start_account(client, account, task_queue=settings.task_queue)
        for account in (overdue, not_yet_due)
    ]
    thirty_days_ago = (datetime.now(UTC) - timedelta(days=30)).isoformat()
    query = f'CollectionStage="overdue" AND DueDate <= "{thirty_days_ago}"'

    async def visible() -> list[str]:
        return [w.id async for w in client.list_workflows(query)]

    await eventually(visible, lambda ids: ids == [handles[0].id], attempts=800)
    url = (
        f"http://127.0.0.1:{ui_port}/namespaces/{client.namespace}/workflows"
        f"?query={urllib.parse.quote(query)}"
    )
    page = await _rendered_page(url)
    assert handles[0].id in page, "the overdue account is listed under the operator's query"
    assert handles[1].id not in page, "the account not yet due is filtered out"
    assert overdue.customer_name not in page and overdue.phone not in page
    for handle in handles:
        await handle.terminate("test over")


async def test_the_api_docs_render_with_the_internet_closed(
    env: WorkflowEnvironment, settings: Settings
) -> None:
    """``/docs`` and ``/redoc`` from the packaged assets, in a browser whose every request beyond this
    machine goes to a dead proxy: a page that loaded its scripts from a CDN would stay white."""
    api_settings = ApiSettings(_env_file=None, api_key=SecretStr("docs-test-key"))
    app = create_app(env.client, settings, api_settings, make_engine(settings.database_url))
    async with serving(app) as url:
        swagger = await _rendered_page(f"{url}/docs", offline=True)
        redoc = await _rendered_page(f"{url}/redoc", offline=True)
    assert 'class="swagger-ui' in swagger and "opblock" in swagger, swagger[:2000]
    assert "/accounts/{account_id}/status" in swagger
    assert "redoc-wrap" in redoc and "/accounts/{account_id}/status" in redoc, redoc[:2000]

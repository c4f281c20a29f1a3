"""The worker's Prometheus endpoint: the SDK's metrics plus Kindly's counters, and no personal data."""

from __future__ import annotations

import socket
from datetime import timedelta

import httpx
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from kindly.programs.temporal import ensure_search_attributes
from kindly.programs.worker import build_worker, telemetry_runtime
from kindly.settings import Settings
from tests.conftest import eventually
from tests.lifecycle_helpers import local_today, make_account, start, status


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def scrape(address: str) -> str:
    async with httpx.AsyncClient() as http:
        response = await http.get(f"http://{address}/metrics")
        response.raise_for_status()
        return response.text


def sample(metrics: str, name: str, **labels: str) -> float:
    """The value of one sample, 0 when absent (a counter not yet moved is not exported)."""
    for line in metrics.splitlines():
        if not line.startswith(name + "{"):
            continue
        label_text = line[len(name) + 1 : line.index("}")]
        if all(f'{key}="{value}"' in label_text for key, value in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_counters_reach_prometheus_without_personal_data(
    env: WorkflowEnvironment, settings: Settings
) -> None:
    address = f"127.0.0.1:{free_port()}"
    runtime = telemetry_runtime(settings.model_copy(update={"metrics_bind_address": address}))
    assert runtime is not None
    client = await Client.connect(
        env.client.service_client.config.target_host,
        namespace=env.client.namespace,
        data_converter=env.client.data_converter,
        runtime=runtime,
    )
    await ensure_search_attributes(client, client.namespace)
    today = await local_today(env)
    account = make_account(today - timedelta(days=1), customer_name="Zhao Metricsson", phone="+8613912345678")
    async with build_worker(client, settings) as worker, worker:
        handle = await start(client, settings.task_queue, account)
        await env.sleep(timedelta(days=1))
        await eventually(lambda: status(handle), lambda s: s.sms_sent == 1)
        metrics = await eventually(
            lambda: scrape(address),
            lambda text: sample(text, "kindly_sms", template="first_overdue", outcome="sent") == 1,
        )
        await handle.signal("customer_reply", {"text": "I lost my job"})
        metrics = await eventually(
            lambda: scrape(address), lambda text: sample(text, "kindly_escalations", to="person") == 1
        )
        await handle.terminate("test finished")

    assert "temporal_workflow_task_execution_latency" in metrics or "temporal_request" in metrics, (
        "the SDK's own metrics are served beside Kindly's"
    )
    for secret in (account.customer_name, "Zhao", account.phone, account.phone[-8:], account.account_id):
        assert secret not in metrics, f"personal data in metrics: {secret!r}"

"""The payload codec and the codec server: what every Temporal payload goes through, and what the Web
UI and the CLI call to read them.

The codec is tested on its own (round trip, rotation, tampering, plain payloads passing through);
the codec server over a real uvicorn server on 127.0.0.1 in front of the time-skipping Temporal
server, called as the Web UI (CORS, token path) and as the ``temporal`` CLI call it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from kindly.codec import ENCRYPTED_ENCODING, KEY_ID_KEY, EncryptionCodec, data_converter
from kindly.errors import DecryptionError
from kindly.keyring import KeyRing, load_keyring
from kindly.programs.api import create_app
from kindly.programs.api.settings import ApiSettings
from kindly.programs.dev_server import bundled_binary, start_dev_server
from kindly.programs.stack import stack_settings, ui_codec_endpoint
from kindly.settings import Settings
from kindly.store import make_engine
from tests.asgi_server import serving
from tests.conftest import eventually
from tests.lifecycle_helpers import days, local_today, make_account, start
from workflows.overdue_account import OverdueAccountWorkflow

KEY_1 = bytes(range(32))
KEY_2 = bytes(range(32, 64))
HASH_KEY = bytes(range(64, 96))
API_KEY = "codec-test-api-key"
UI_TOKEN = "ui-token-" + "x" * 24
UI_ORIGIN = "http://localhost:8233"
NAME = "Ouyang Codectest"


def ring(current: str, **keys: bytes) -> KeyRing:
    return KeyRing(keys=keys, current_id=current, hash_key=HASH_KEY)


def plain_payload(value: Any) -> Payload:
    payload: Payload = pydantic_data_converter.payload_converter.to_payloads([value])[0]
    return payload


# --- the codec -------------------------------------------------------------------------------------


async def test_round_trip_encrypts_the_whole_payload_and_restores_it() -> None:
    codec = EncryptionCodec(ring("k1", k1=KEY_1))
    original = plain_payload({"customer_name": NAME, "phone": "+8613711112222"})

    [sealed] = await codec.encode([original])

    assert sealed.metadata["encoding"] == ENCRYPTED_ENCODING
    assert sealed.metadata[KEY_ID_KEY] == b"k1"
    assert set(sealed.metadata) == {"encoding", KEY_ID_KEY}, "the original metadata is sealed too"
    assert NAME.encode() not in sealed.SerializeToString()
    assert b"json/plain" not in sealed.SerializeToString()
    assert await codec.decode([sealed]) == [original]


async def test_each_encryption_uses_a_fresh_nonce() -> None:
    codec = EncryptionCodec(ring("k1", k1=KEY_1))
    original = plain_payload("same value")
    first, second = await codec.encode([original, original])
    assert first.data != second.data


async def test_data_converter_round_trips_values_through_pydantic_and_encryption() -> None:
    converter = data_converter(ring("k1", k1=KEY_1))
    account = make_account(date(2026, 12, 1), customer_name=NAME)

    [payload] = await converter.encode([account])

    assert payload.metadata["encoding"] == ENCRYPTED_ENCODING
    assert NAME.encode() not in payload.data
    [decoded] = await converter.decode([payload], [type(account)])
    assert decoded == account


async def test_rotation_old_payloads_decode_while_the_new_key_encrypts() -> None:
    before = EncryptionCodec(ring("k1", k1=KEY_1))
    [old] = await before.encode([plain_payload(NAME)])

    after = EncryptionCodec(ring("k2", k1=KEY_1, k2=KEY_2))
    [new] = await after.encode([plain_payload(NAME)])

    assert new.metadata[KEY_ID_KEY] == b"k2"
    assert await after.decode([old, new]) == [plain_payload(NAME)] * 2

    retired = EncryptionCodec(ring("k2", k2=KEY_2))
    with pytest.raises(DecryptionError, match="'k1'"):
        await retired.decode([old])


async def test_tampered_ciphertext_is_refused() -> None:
    codec = EncryptionCodec(ring("k1", k1=KEY_1))
    [sealed] = await codec.encode([plain_payload(NAME)])
    flipped = bytearray(sealed.data)
    flipped[20] ^= 0x01
    tampered = Payload(metadata=dict(sealed.metadata), data=bytes(flipped))

    with pytest.raises(DecryptionError, match="'k1'"):
        await codec.decode([tampered])


async def test_a_payload_relabelled_with_another_key_id_is_refused() -> None:
    codec = EncryptionCodec(ring("k1", k1=KEY_1, k2=KEY_2))
    [sealed] = await codec.encode([plain_payload(NAME)])
    relabelled = Payload(metadata={**sealed.metadata, KEY_ID_KEY: b"k2"}, data=sealed.data)

    with pytest.raises(DecryptionError, match="'k2'"):
        await codec.decode([relabelled])


async def test_an_encrypted_payload_without_key_id_is_refused() -> None:
    codec = EncryptionCodec(ring("k1", k1=KEY_1))
    [sealed] = await codec.encode([plain_payload(NAME)])
    del sealed.metadata[KEY_ID_KEY]

    with pytest.raises(DecryptionError, match=KEY_ID_KEY):
        await codec.decode([sealed])


async def test_plain_payloads_pass_through_decode() -> None:
    """Histories from before encryption, and ``temporal workflow signal --input`` without a codec."""
    codec = EncryptionCodec(ring("k1", k1=KEY_1))
    typed_in_the_cli = Payload(metadata={"encoding": b"json/plain"}, data=b'{"amount": "500"}')
    binary_null = Payload(metadata={"encoding": b"binary/null"})

    assert await codec.decode([typed_in_the_cli, binary_null]) == [typed_in_the_cli, binary_null]


async def test_failure_messages_are_encrypted_too() -> None:
    converter = data_converter(ring("k1", k1=KEY_1))
    error = ApplicationError(f"refused {NAME}", type="Example", non_retryable=True)

    failure = Failure()
    await converter.encode_failure(error, failure)

    assert NAME.encode() not in failure.SerializeToString()
    assert failure.encoded_attributes.metadata["encoding"] == ENCRYPTED_ENCODING
    decoded = await converter.decode_failure(failure)
    assert isinstance(decoded, ApplicationError) and decoded.message == f"refused {NAME}"


# --- the codec server ------------------------------------------------------------------------------


@dataclass
class CodecApi:
    url: str
    keyring: KeyRing


def as_json(payload: Payload) -> dict[str, Any]:
    as_dict: dict[str, Any] = json_format.MessageToDict(payload)
    return as_dict


def from_json(body: dict[str, Any]) -> list[Payload]:
    return [json_format.ParseDict(item, Payload()) for item in body["payloads"]]


def codec_api_settings(**overrides: Any) -> ApiSettings:
    fields: dict[str, Any] = {"api_key": API_KEY, "codec_ui_token": UI_TOKEN, **overrides}
    return ApiSettings(_env_file=None, **fields)


@pytest.fixture
async def codec_api(env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[CodecApi]:
    app = create_app(env.client, settings, codec_api_settings(), make_engine(settings.database_url))
    async with serving(app) as url:
        yield CodecApi(url=url, keyring=load_keyring(settings))


async def test_codec_server_decodes_with_the_api_key_in_either_header(codec_api: CodecApi) -> None:
    codec = EncryptionCodec(codec_api.keyring)
    original = plain_payload({"customer_name": NAME})
    [sealed] = await codec.encode([original])
    body = {"payloads": [as_json(sealed)]}

    async with httpx.AsyncClient(base_url=codec_api.url) as http:
        for headers in ({"X-API-Key": API_KEY}, {"Authorization": f"Bearer {API_KEY}"}):
            answer = await http.post(
                "/codec/decode", json=body, headers={**headers, "X-Namespace": "default"}
            )
            assert answer.status_code == 200, answer.text
            assert from_json(answer.json()) == [original]


async def test_codec_server_refuses_callers_without_the_key(codec_api: CodecApi) -> None:
    [sealed] = await EncryptionCodec(codec_api.keyring).encode([plain_payload(NAME)])
    body = {"payloads": [as_json(sealed)]}

    async with httpx.AsyncClient(base_url=codec_api.url) as http:
        for path in ("/codec/decode", "/codec/encode"):
            for headers in (
                {},
                {"X-API-Key": "wrong"},
                {"Authorization": "Bearer wrong"},
                {"Authorization": f"Basic {API_KEY}"},
            ):
                answer = await http.post(path, json=body, headers=headers)
                assert answer.status_code == 401, (path, headers, answer.text)
                assert NAME not in answer.text


async def test_payloads_encoded_by_the_server_decode_with_the_codec(codec_api: CodecApi) -> None:
    original = plain_payload({"text": f"this is {NAME}"})

    async with httpx.AsyncClient(base_url=codec_api.url, headers={"X-API-Key": API_KEY}) as http:
        answer = await http.post("/codec/encode", json={"payloads": [as_json(original)]})

    assert answer.status_code == 200, answer.text
    [sealed] = from_json(answer.json())
    assert sealed.metadata["encoding"] == ENCRYPTED_ENCODING and NAME.encode() not in sealed.data
    assert await EncryptionCodec(codec_api.keyring).decode([sealed]) == [original]


async def test_codec_server_passes_plain_payloads_and_names_an_unknown_key(codec_api: CodecApi) -> None:
    plain = plain_payload({"amount": "500"})
    [foreign] = await EncryptionCodec(ring("elsewhere-7", **{"elsewhere-7": KEY_2})).encode([plain])

    async with httpx.AsyncClient(base_url=codec_api.url, headers={"X-API-Key": API_KEY}) as http:
        passed = await http.post("/codec/decode", json={"payloads": [as_json(plain)]})
        refused = await http.post("/codec/decode", json={"payloads": [as_json(foreign)]})
        malformed = await http.post("/codec/decode", json={"payloads": [{"data": "not base64!"}]})

    assert passed.status_code == 200 and from_json(passed.json()) == [plain]
    assert refused.status_code == 400 and "elsewhere-7" in refused.text
    assert malformed.status_code == 400


async def test_codec_server_takes_bodies_larger_than_the_api_limit(codec_api: CodecApi) -> None:
    """A continue-as-new input carries the whole timeline: far more than a webhook's 64 KiB."""
    big = plain_payload({"timeline": ["x" * 100] * 2000})
    [sealed] = await EncryptionCodec(codec_api.keyring).encode([big])
    body = json.dumps({"payloads": [as_json(sealed)]})
    assert len(body) > codec_api_settings().max_body_bytes

    async with httpx.AsyncClient(base_url=codec_api.url, headers={"X-API-Key": API_KEY}) as http:
        answer = await http.post("/codec/decode", content=body, headers={"Content-Type": "application/json"})

    assert answer.status_code == 200, answer.text[:200]
    assert from_json(answer.json()) == [big]


async def test_web_ui_preflight_is_allowed_without_credentials(codec_api: CodecApi) -> None:
    preflight = {
        "Origin": UI_ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
    }
    async with httpx.AsyncClient(base_url=codec_api.url) as http:
        for path in ("/codec/decode", "/codec/encode", f"/codec/ui/{UI_TOKEN}/decode"):
            answer = await http.options(path, headers=preflight)
            assert answer.status_code == 200, (path, answer.text)
            assert answer.headers["access-control-allow-origin"] == UI_ORIGIN
            allowed = answer.headers["access-control-allow-headers"].lower()
            assert {"content-type", "x-namespace", "authorization", "x-api-key"} <= set(allowed.split(", "))
            assert "POST" in answer.headers["access-control-allow-methods"]

        elsewhere = await http.options(
            "/codec/decode", headers={**preflight, "Origin": "https://evil.example"}
        )
        assert elsewhere.status_code == 400
        assert "access-control-allow-origin" not in elsewhere.headers

        not_for_browsers = await http.options("/accounts", headers=preflight)
        assert "access-control-allow-origin" not in not_for_browsers.headers

        refused = await http.post("/codec/decode", json={"payloads": []}, headers={"Origin": UI_ORIGIN})
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == UI_ORIGIN, "the UI can read the 401"


async def test_web_ui_token_path_decodes_without_a_header(codec_api: CodecApi) -> None:
    """What the dev server's UI does: ``fetch(endpoint + '/decode')`` with no credentials."""
    original = plain_payload({"customer_name": NAME})
    [sealed] = await EncryptionCodec(codec_api.keyring).encode([original])
    body = {"payloads": [as_json(sealed)]}
    headers = {"Origin": UI_ORIGIN, "X-Namespace": "default"}

    async with httpx.AsyncClient(base_url=codec_api.url, headers=headers) as http:
        answer = await http.post(f"/codec/ui/{UI_TOKEN}/decode", json=body)
        wrong = await http.post(f"/codec/ui/{UI_TOKEN[:-1]}y/decode", json=body)
        encoded = await http.post(f"/codec/ui/{UI_TOKEN}/encode", json={"payloads": [as_json(original)]})

    assert answer.status_code == 200 and from_json(answer.json()) == [original]
    assert answer.headers["access-control-allow-origin"] == UI_ORIGIN
    assert wrong.status_code == 401 and NAME not in wrong.text
    assert encoded.status_code == 200
    assert await EncryptionCodec(codec_api.keyring).decode(from_json(encoded.json())) == [original]


async def test_web_ui_token_path_is_off_unless_configured(
    env: WorkflowEnvironment, settings: Settings
) -> None:
    api_settings = codec_api_settings(codec_ui_token=None)
    app = create_app(env.client, settings, api_settings, make_engine(settings.database_url))
    async with serving(app) as url, httpx.AsyncClient(base_url=url) as http:
        answer = await http.post(f"/codec/ui/{UI_TOKEN}/decode", json={"payloads": []})
    assert answer.status_code == 404


def test_a_short_ui_token_is_refused() -> None:
    with pytest.raises(ValueError, match="codec_ui_token"):
        codec_api_settings(codec_ui_token=SecretStr("short"))


# --- with Temporal ---------------------------------------------------------------------------------


async def test_temporal_cli_reads_a_history_through_the_codec_server(
    env: WorkflowEnvironment, client: Client, settings: Settings
) -> None:
    """``temporal workflow show --codec-endpoint … --codec-auth 'Bearer <key>'`` shows decrypted input;
    without it the CLI sees only ciphertext. (With a wrong key the CLI keeps retrying the 401 until
    its deadline: the HTTP tests above cover refusals.)"""
    account = make_account(await local_today(env), customer_name=NAME)
    handle = await start(client, settings.task_queue, account)
    await handle.signal("repayment", {"amount": "1500.00", "reference": "PAY-CLI"})
    await handle.result()

    app = create_app(client, settings, codec_api_settings(), make_engine(settings.database_url))
    async with serving(app) as url:
        address = client.service_client.config.target_host
        base = ["workflow", "show", "--workflow-id", handle.id, "--address", address, "--output", "json"]
        decoded = await _temporal(
            *base, "--codec-endpoint", f"{url}/codec", "--codec-auth", f"Bearer {API_KEY}"
        )
    raw = await _temporal(*base)

    assert NAME in _decoded_payload_texts(decoded)
    assert NAME not in raw and NAME not in _decoded_payload_texts(raw)


async def test_the_operating_guides_temporal_cli_commands_work_through_the_codec_server(
    env: WorkflowEnvironment, client: Client, settings: Settings
) -> None:
    """``docs/operating.md``'s start, signal and query commands, run by the real ``temporal`` CLI with the
    codec endpoint set: the CLI encodes the input through the codec server, and decodes the answers. A
    query without arguments sends ``{}`` (proto3 JSON leaves the empty list out), which the codec server
    must take as no payloads."""
    account = make_account((await local_today(env)) + days(20), customer_name=NAME)
    workflow_id = f"overdue-{account.account_id}"
    app = create_app(client, settings, codec_api_settings(), make_engine(settings.database_url))
    async with serving(app) as url:
        cli = [
            "--address",
            client.service_client.config.target_host,
            "--codec-endpoint",
            f"{url}/codec",
            "--codec-auth",
            f"Bearer {API_KEY}",
        ]
        started = await _temporal(
            "workflow", "start", "--type", "OverdueAccountWorkflow", "--task-queue", settings.task_queue,
            "--workflow-id", workflow_id, "--id-conflict-policy", "UseExisting",
            "--input", account.model_dump_json(), *cli,
        )  # fmt: skip
        assert "Running execution" in started and workflow_id in started, started
        handle = client.get_workflow_handle(workflow_id)

        async def status_via_cli() -> str:
            return await _temporal(
                "workflow", "query", "--workflow-id", workflow_id, "--type", "status", *cli
            )

        answer = _query_result(
            await eventually(status_via_cli, lambda out: "QueryResult" in out, attempts=400)
        )
        assert answer["account_id"] == account.account_id and answer["stage"] == "pre_due", answer
        assert answer["amount_due"] == "1500.00" and not answer["paused"]
        signalled = await _temporal(
            "workflow", "signal", "--workflow-id", workflow_id, "--name", "pause",
            "--input", '{"reason": "customer in hospital"}', *cli,
        )  # fmt: skip
        assert "Signal workflow succeeded" in signalled or "succeeded" in signalled.lower(), signalled
        paused = await eventually(status_via_cli, lambda out: '"paused": true' in out or "true" in out)
        assert account.account_id in paused
        timeline = await _temporal(
            "workflow", "query", "--workflow-id", workflow_id, "--type", "timeline", *cli
        )
        print("SIGNALLED", signalled)
        print("PAUSED", paused)
        print("TIMELINE", timeline[:600])
        assert "customer in hospital" in timeline, timeline
    await handle.terminate("test over")


async def test_codec_server_takes_an_empty_payload_list_and_refuses_a_malformed_body(
    codec_api: CodecApi,
) -> None:
    keyed = {"X-API-Key": API_KEY, "X-Namespace": "default"}
    async with httpx.AsyncClient(base_url=codec_api.url, headers=keyed) as http:
        empty = await http.post("/codec/decode", json={})
        assert empty.status_code == 200 and empty.json() == {"payloads": []}
        none = await http.post("/codec/encode", json={"payloads": []})
        assert none.status_code == 200 and none.json() == {"payloads": []}
        malformed = await http.post("/codec/decode", json={"payloads": "nope"})
        assert malformed.status_code == 400, malformed.text
        assert malformed.json()["detail"].startswith("not Temporal payloads: payloads:")
        elsewhere = await http.post("/accounts", json={"account_id": 5})
        assert elsewhere.status_code == 422, "outside /codec a bad body stays a 422"


def _query_result(output: str) -> Any:
    """The decoded answer of ``temporal workflow query`` (its text output: ``QueryResult  <json>``)."""
    return json.loads(output.split("QueryResult", 1)[1].strip())


async def _temporal(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        bundled_binary("temporal"),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={key: value for key, value in os.environ.items() if not key.startswith("TEMPORAL_")},
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return output.decode("utf-8", "replace")


def _decoded_payload_texts(output: str) -> str:
    """Every payload's data in a ``--output json`` history, base64-decoded, in one string."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "data" in node and "metadata" in node and isinstance(node["data"], str):
                try:
                    found.append(base64.b64decode(node["data"]).decode("utf-8", "replace"))
                except ValueError:
                    found.append(node["data"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    try:
        walk(json.loads(output))
    except json.JSONDecodeError:
        return ""
    return "\n".join(found)


async def test_an_encrypted_history_replays_only_with_the_codec(
    env: WorkflowEnvironment, client: Client, settings: Settings
) -> None:
    """Why the replay test must use the worker's converter: without the codec nothing decodes."""
    handle = await start(
        client, settings.task_queue, make_account(await local_today(env), customer_name=NAME)
    )
    await env.sleep(days(1))
    await handle.signal("repayment", {"amount": "1500.00", "reference": "PAY-R"})
    await handle.result()
    history: WorkflowHistory = await handle.fetch_history()

    with_codec = Replayer(
        workflows=[OverdueAccountWorkflow], data_converter=data_converter(load_keyring(settings))
    )
    assert (await with_codec.replay_workflow(history, raise_on_replay_failure=False)).replay_failure is None

    without = Replayer(workflows=[OverdueAccountWorkflow], data_converter=pydantic_data_converter)
    assert (await without.replay_workflow(history, raise_on_replay_failure=False)).replay_failure is not None


# --- make run ---------------------------------------------------------------------------------------


async def test_make_run_gives_the_dev_web_ui_the_codec_token_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stack's API gets a fresh UI token and the dev server's Web UI is told to call it there."""
    monkeypatch.chdir(tmp_path)  # no developer's .env
    for name in [name for name in os.environ if name.startswith("COLLECTIONS_")]:
        monkeypatch.delenv(name)
    ui_port = _free_port()
    monkeypatch.setenv("COLLECTIONS_DEV_SERVER_UI_PORT", str(ui_port))

    _, api_settings, _ = stack_settings()
    _, again, _ = stack_settings()
    endpoint = ui_codec_endpoint(api_settings)

    assert api_settings.codec_ui_token is not None and again.codec_ui_token is not None
    assert api_settings.codec_ui_token != again.codec_ui_token, "a new secret at each start"
    assert endpoint == f"http://127.0.0.1:8000/codec/ui/{api_settings.codec_ui_token.get_secret_value()}"
    assert f"http://localhost:{ui_port}" in api_settings.codec_cors_origins

    server = start_dev_server(
        tmp_path / "temporal.db", port=_free_port(), ui_port=ui_port, ui_codec_endpoint=endpoint
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ui_port}") as http:

            async def ui_settings() -> dict[str, Any] | None:
                try:
                    answer = await http.get("/api/v1/settings")
                except httpx.TransportError:
                    return None
                settings: dict[str, Any] = answer.json()
                return settings

            shown = await eventually(ui_settings, lambda found: found is not None, attempts=2400)
        assert shown is not None and shown["Codec"]["Endpoint"] == endpoint
    finally:
        server.terminate()
        server.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port

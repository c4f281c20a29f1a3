"""No customer's name or phone number leaves the worker in clear: not to Temporal, not to the logs, not
to the application database.

One account with a distinctive name and two distinctive numbers goes through a real dev server and
worker: its first reminder, a free-text reply quoting the name, a new number and a personal
circumstance (stored as the inbound webhook stores it, then signalled), a change of number,
a HELP reply (a second SMS, to the new number), STOP (a confirmation SMS and a stored opt-out) and a
settlement. Then every place an operator or an attacker with access to Temporal could look is scanned:

* the history as the server holds it, read by a client **without** the codec: no secret in any byte
  of any event, and every payload except the server's own (search attributes) and the SDK core's
  local-activity bookkeeping is ``binary/encrypted``;
* what the Web UI shows beside payloads: search attributes, static summary and details, current
  details, timer and activity summaries, and the status and timeline queries;
* every log record of the run (the worker's, the workflow's, the activities', the SDK's, at DEBUG),
  and the processes' own output (the SDK core's and the dev server's logs);
* the application database file, where the inbound reply is stored.

Positive controls make sure the scan could have failed: the gateway received the numbers (so they
travelled in activity inputs), the history, decoded with the codec, does contain the name, and the
stored reply, opened with the key ring, does contain the circumstance.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from kindly.codec import ENCRYPTED_ENCODING
from kindly.domain.contract import AccountResult, AccountStatus, TimelineEntry
from kindly.keyring import load_keyring
from kindly.programs.temporal import start_account
from kindly.settings import Settings
from kindly.store import PhoneIndex, make_engine
from tests.conftest import eventually, sms_requests
from tests.http_recorder import RecordingHttpServer
from tests.lifecycle_helpers import make_account

NAME = "Zhuge Piitest"
PHONE = "+8613912340987"
NEW_PHONE = "+8613987650123"
CIRCUMSTANCE = "lost my job at the Qingshui mill"


def personal_data_variants() -> list[str]:
    """Every form the secrets could take: the name and its rare part; each number as E.164, as digits
    only and as the national number (a mask showing the last four digits is fine); what the customer
    told about themselves in a reply."""
    numbers = [form for phone in (PHONE, NEW_PHONE) for form in (phone, phone[1:], phone[3:])]
    return [NAME, NAME.split()[1], *numbers, CIRCUMSTANCE, "Qingshui"]


def assert_free_of_personal_data(where: str, blob: str | bytes) -> None:
    """The one scan every place goes through. A metrics scan plugs in here too: fetch the worker's
    Prometheus text (``metrics_bind_address``) after the run and pass it as ``("metrics", text)``."""
    data = blob.encode("utf-8") if isinstance(blob, str) else blob
    found = [secret for secret in personal_data_variants() if secret.encode("utf-8") in data]
    assert not found, f"{where} holds personal data in clear: {found}"


def _quiet_zone(now: datetime) -> str:
    """A fixed-offset zone where it is about 13:00 now: inside every contact window, so the due-day
    reminder and the service replies go at once on the dev server's real clock."""
    offset = 13 - now.astimezone(UTC).hour
    return f"Etc/GMT{-offset:+d}" if offset else "UTC"


async def test_personal_data_never_reaches_temporal_logs_or_database_in_clear(
    dev_env: WorkflowEnvironment,
    settings: Settings,
    gateway: RecordingHttpServer,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = dev_env.client
    zone = _quiet_zone(datetime.now(UTC))
    account = make_account(
        datetime.now(ZoneInfo(zone)).date(),
        customer_name=NAME,
        phone=PHONE,
        timezone=zone,
        segment="plain",
    )
    handle = await start_account(client, account, task_queue=settings.task_queue)
    shown: list[tuple[str, str]] = []  # (where, text) of everything the Web UI / CLI would display

    async def sms_to(number: str, count: int) -> None:
        async def sent() -> list[dict[str, Any]]:
            return [request for request in sms_requests(gateway) if request["to"] == number]

        await eventually(sent, lambda requests: len(requests) >= count, attempts=2400)

    await sms_to(PHONE, 1)
    await _record_shown(handle, shown, "after the first reminder")

    # The reply as the inbound webhook handles it (kindly.programs.api.webhooks): stored, then signalled.
    reply = f"This is {NAME}, I {CIRCUMSTANCE}, text me at {NEW_PHONE} please"
    engine = make_engine(settings.database_url)
    phones = PhoneIndex(engine, load_keyring(settings))
    await asyncio.to_thread(phones.record_inbound, "webhook", "M-PII-1", PHONE, reply)
    await handle.signal("customer_reply", {"text": reply})
    await handle.signal("update_contact", {"phone": NEW_PHONE})
    await handle.signal("customer_reply", {"text": "HELP"})
    await sms_to(NEW_PHONE, 1)
    await _record_shown(handle, shown, "after HELP")

    await handle.signal("customer_reply", {"text": "STOP"})
    await sms_to(NEW_PHONE, 2)
    await _record_shown(handle, shown, "after STOP")

    await handle.signal("settle", {"amount": "900.00", "reference": "SET-PII"})
    result: AccountResult = await handle.result()
    assert result.outcome == "settled"

    # Positive controls: the numbers did travel to the gateway, in activity inputs.
    templates = {(r["to"], r["template"]) for r in sms_requests(gateway)}
    assert (NEW_PHONE, "opt_out_confirmation") in templates and any(to == PHONE for to, _ in templates)

    # (a) The history as the server holds it, read without the codec.
    plain = await Client.connect(
        client.service_client.config.target_host,
        namespace=client.namespace,
        data_converter=pydantic_data_converter,
    )
    raw = await plain.get_workflow_handle(handle.id).fetch_history()
    _assert_history_encrypted(raw)
    decoded_input = await client.data_converter.decode(
        [raw.events[0].workflow_execution_started_event_attributes.input.payloads[0]]
    )
    assert NAME in str(decoded_input), "control: decoded with the codec, the input names the customer"

    # (b) What the Web UI shows beside payloads, decoded as it would show it (codec server configured).
    description = await handle.describe()
    shown.append(("static summary", str(await description.static_summary())))
    shown.append(("static details", str(await description.static_details())))
    shown.extend(("search attribute", f"{p.key.name}={p.value}") for p in description.typed_search_attributes)

    async def listing() -> list[Any]:
        return [w async for w in client.list_workflows(f'WorkflowId="{handle.id}"')]

    listed = await eventually(listing, lambda rows: len(rows) == 1, attempts=800)
    shown.extend(("listed attribute", str(p.value)) for w in listed for p in w.typed_search_attributes)
    summaries = await _event_summaries(client, raw)
    assert any("SMS" in text or "sms" in text.lower() for _, text in summaries), summaries
    shown.extend(summaries)
    for where, text in shown:
        assert_free_of_personal_data(where, text)

    # (c) Every log record of the run, and the processes' own output.
    assert caplog.records, "the run logged something (gateway calls at least)"
    for record in caplog.records:
        assert_free_of_personal_data(f"log record {record.name}", _record_text(record))
    out, err = capfd.readouterr()
    assert_free_of_personal_data("process stdout", out)
    assert_free_of_personal_data("process stderr", err)

    # (d) The application database: phone numbers as keyed hash and ciphertext only, the reply's
    # text as ciphertext only.
    [stored] = phones.inbound_messages(PHONE)
    assert phones.open_body(stored) == reply, "control: opened with the key ring, the reply is there"
    engine.dispose()
    database = Path(settings.database_url.removeprefix("sqlite:///"))
    assert database.exists() and database.is_relative_to(tmp_path)
    for path in database.parent.glob(database.name + "*"):  # the file, its -wal and -journal
        assert_free_of_personal_data(f"database file {path.name}", path.read_bytes())


async def _record_shown(
    handle: WorkflowHandle[Any, AccountResult], shown: list[tuple[str, str]], when: str
) -> None:
    """Current details and the two queries, as the Web UI and the CLI show them at this moment."""
    metadata = await handle.query("__temporal_workflow_metadata")
    shown.append((f"current details {when}", str(metadata.current_details)))
    status: AccountStatus = await handle.query("status", result_type=AccountStatus)
    shown.append((f"status {when}", status.model_dump_json()))
    entries: list[TimelineEntry] = await handle.query("timeline", result_type=list[TimelineEntry])
    shown.extend((f"timeline {when}", entry.model_dump_json()) for entry in entries)


_CORE_MARKER_DATA = tuple(
    f"marker_recorded_event_attributes.details[{key}]." for key in ("data", "patch-data")
)
"""What the SDK core itself writes into markers, not through the codec: a local activity's ids,
attempt and times; a patch's id. (Its result sits beside them, under ``result``, encrypted.)"""


def _assert_history_encrypted(history: WorkflowHistory) -> None:
    encrypted = 0
    for event in history.events:
        where = f"event {event.event_id} ({event.WhichOneof('attributes')})"
        assert_free_of_personal_data(where, event.SerializeToString())
        for path, payload in _payloads(event):
            assert_free_of_personal_data(f"{where} {path}", payload.SerializeToString())
            if payload.metadata.get("encoding") == ENCRYPTED_ENCODING:
                encrypted += 1
            else:
                # Not codec payloads by Temporal's design: search attributes (the server indexes
                # them) and the SDK core's own marker data.
                assert "search_attributes" in path or path.startswith(_CORE_MARKER_DATA), (
                    f"{where}: plain payload at {path}: {payload.metadata}"
                )
    assert encrypted > 10, "inputs, results, signals and summaries are encrypted payloads"


def _payloads(message: Message, path: str = "") -> Iterator[tuple[str, Payload]]:
    """Every ``Payload`` inside a proto message, with its field path."""
    if isinstance(message, Payload):
        yield path, message
        return
    for field, value in message.ListFields():
        kind = field.message_type
        if kind is None:  # a scalar field
            continue
        name = f"{path}.{field.name}" if path else field.name
        if kind.GetOptions().map_entry:
            if kind.fields_by_name["value"].type == FieldDescriptor.TYPE_MESSAGE:
                for key, item in value.items():
                    yield from _payloads(item, f"{name}[{key}]")
        elif field.is_repeated:
            for index, item in enumerate(value):
                yield from _payloads(item, f"{name}[{index}]")
        else:
            yield from _payloads(value, name)


async def _event_summaries(client: Client, history: WorkflowHistory) -> list[tuple[str, str]]:
    """Timer, activity and workflow summaries of the history, decoded with the codec."""
    found = []
    for event in history.events:
        if event.HasField("user_metadata") and event.user_metadata.HasField("summary"):
            [text] = await client.data_converter.decode([event.user_metadata.summary])
            found.append((f"summary of event {event.event_id}", str(text)))
    return found


def _record_text(record: logging.LogRecord) -> str:
    parts: Iterable[Any] = (record.getMessage(), record.exc_text or "", record.stack_info or "", vars(record))
    return "\n".join(str(part) for part in parts)

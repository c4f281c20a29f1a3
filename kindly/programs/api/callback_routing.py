"""How one provider report or reply is routed: through the code of Kindly's own webhooks, so that
dedupe, opt-outs and ``sms_undeliverable`` behave exactly as they do there.

* A report goes through ``receipts.record_receipt``: the message's status only moves forward, each (message,
  status) is audited once, and a permanent failure signals ``sms_undeliverable`` once, its reason naming
  the provider's code and no phone number. Matched by the id the send returned (the outbox's
  ``provider_message_id``), else by the idempotency key the provider echoes (``_unmatched``).
* A reply goes through ``webhooks.route_reply``: stored encrypted once per (provider, message id) and
  signalled as ``customer_reply`` to each account on the sender's number once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from sqlmodel import Session
from temporalio.service import RPCError

from kindly.keyring import KeyRing, load_keyring
from kindly.programs.api.callback_batches import ItemResult, retry_item, temporal_status
from kindly.programs.api.deps import ApiContext
from kindly.programs.api.receipts import DeliveryReceipt, record_receipt
from kindly.programs.api.webhooks import route_reply as route_inbound_reply
from kindly.store import OutboxEntry

log = logging.getLogger(__name__)

VACANT_NUMBER_CODES = frozenset(
    {
        "MK:0001",  # China Mobile: no such subscriber
        "CB:0001",  # number invalid or vacant
        "CB:0053",
        "DB:0101",  # wrong number: invalid or vacant
        "MI:0073",  # vacant number
        "MI:0210",
        "MOBILE_NUMBER_ILLEGAL",  # Alibaba Cloud: not a valid mobile number
        "isv.MOBILE_NUMBER_ILLEGAL",
    }
)
"""Report codes that mean the number can never take an SMS (vacant, nonexistent, invalid), as the
mainland carriers and the providers write them: such a failure is permanent. Switched-off, suspended
(停机) or barred numbers, full inboxes, blocked content and rate limits are not: their failure is
recorded and the account goes on as before."""


# --- delivery reports -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """One provider's delivery report, in the terms of Kindly's receipts.

    ``message_id`` is the id the send returned (Alibaba's ``biz_id``, Tencent's ``sid``), which the
    outbox holds; ``reference`` the idempotency key sent along (Alibaba's ``out_id``, Tencent's
    ``ext``), when the provider passes it back; ``id_field`` names the id in the provider's shape."""

    index: int
    id_field: str
    message_id: str
    delivered: bool
    error_code: str | None
    permanent: bool
    reference: str | None


async def record_report(ctx: ApiContext, report: Report) -> ItemResult:
    """Record a report as Kindly's JSON receipt webhook records one; an unmatched one is decided by its
    reference (``_unmatched``)."""
    receipt = DeliveryReceipt(
        message_id=report.message_id,
        status="delivered" if report.delivered else "failed",
        error_code=None if report.delivered or not report.error_code else report.error_code[:32],
        permanent=report.permanent and not report.delivered,
    )
    try:
        result = await record_receipt(ctx, receipt)
    except RPCError as err:
        return retry_item(
            report.index, ("body", report.index), temporal_status(err), "Temporal refused", "unavailable"
        )
    if result.status != "unmatched":
        return ItemResult(report.index, result.status)
    return await _unmatched(ctx, report)


async def _unmatched(ctx: ApiContext, report: Report) -> ItemResult:
    """A report whose message id is in no outbox row.

    Without a reference there is no telling a send not recorded yet (the report overtook the send's
    answer) from a message Kindly never sent: the batch is to be pushed again. With one: no outbox row
    under that key means a message sent by someone else on the same provider account (every Kindly
    send writes its row before calling the provider), acknowledged; a row whose send is still in flight
    means the send is not recorded yet (push again); a row that ended otherwise (with another id: the
    touchpoint was sent twice, a retried send whose first answer was lost; or with none: cancelled or
    refused) is acknowledged, the report Kindly follows being the recorded message's, if any."""
    where = ("body", report.index, report.id_field)
    retry = retry_item(
        report.index,
        where,
        status.HTTP_409_CONFLICT,
        f"no message with this {report.id_field} is recorded yet: push the report again later",
        "unmatched",
    )
    if report.reference is None:
        return retry
    row = await run_in_threadpool(_outbox_row, ctx, report.reference)
    if row is None:
        log.info("report for %s, not sent by Kindly, acknowledged", report.message_id)
        return ItemResult(report.index, "foreign")
    in_flight = row.provider_message_id is None and row.status in ("pending", "sending")
    if in_flight or row.provider_message_id == report.message_id:  # the latter: recorded just now
        return retry
    log.info(
        "report for %s acknowledged: its send ended %s with message %s",
        report.message_id,
        row.status,
        row.provider_message_id,
    )
    return ItemResult(report.index, "superseded")


def _outbox_row(ctx: ApiContext, idempotency_key: str) -> OutboxEntry | None:
    with Session(ctx.engine) as session:
        return session.get(OutboxEntry, idempotency_key)


# --- replies --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """One customer's reply: its sender in E.164, its text, and its id with the provider (``None``
    when the provider gives none: a keyed hash of sender, time and text stands in)."""

    index: int
    sender: str
    text: str
    sent_at: str
    message_id: str | None


async def route_reply(request: Request, ctx: ApiContext, provider: str, reply: Reply) -> ItemResult:
    """Store and signal the reply as Kindly's inbound-SMS webhook does, once per (provider, id)."""
    message_id = reply.message_id or "h-" + _keyring(request, ctx).lookup_hash(
        "\n".join((provider, reply.sender, reply.sent_at, reply.text))
    )
    try:
        routed, _ = await route_inbound_reply(ctx, provider, message_id, reply.sender, reply.text)
    except HTTPException as err:  # 409: another request is routing it right now
        return retry_item(reply.index, ("body", reply.index), err.status_code, str(err.detail), "in_progress")
    except RPCError as err:
        return retry_item(
            reply.index, ("body", reply.index), temporal_status(err), "Temporal refused", "unavailable"
        )
    return ItemResult(reply.index, "accepted" if routed else "duplicate")


def _keyring(request: Request, ctx: ApiContext) -> KeyRing:
    """The key ring whose lookup key hashes a reply's stand-in id (a plain hash of a short text such
    as ``STOP`` would tell its text to anyone reading the table); loaded once per application."""
    ring = getattr(request.app.state, "callback_keyring", None)
    if not isinstance(ring, KeyRing):
        ring = load_keyring(ctx.settings)
        request.app.state.callback_keyring = ring
    return ring


def in_time_order(replies: Sequence[Reply]) -> list[Reply]:
    """Replies in the order their senders sent them (by the provider's time, then as pushed): a batch
    may list them in any order, and each account hears them in this one."""
    return sorted(replies, key=lambda reply: (reply.sent_at, reply.index))

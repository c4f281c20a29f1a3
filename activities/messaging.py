"""The SMS activity: render, send once per touchpoint, and write the audit row, in one activity.

One activity per touchpoint keeps the Temporal cost of a reminder at one activity and one timer.
The outbox row (keyed by workflow id, first run id and touchpoint number) makes a retried or replayed
activity return the first send's result instead of texting the customer again; the same key goes to
the gateway so that a crash between its 2xx and our commit is deduplicated there.

A reminder (any message but a service message) ends with its touchpoint's self-service link, issued
here under the same key: every attempt renders the same link, and the link reaches only the gateway,
never the workflow's history.

Two refusals of the provider are answers, not failures to retry; nothing went out in either, so the
outbox claim is released and the same key goes again in the touch's next window:

* its per-number frequency limit (``FrequencyLimitedError``): ``frequency_limited``;
* the lender's account with it cannot send (``ProviderAccountError``): a provider alarm opens
  (``kindly.store.alarms``), with an ERROR in the log and ``kindly_provider_alarms``, and the answer is
  ``provider_blocked``. While an alarm is open for the provider, sends do not reach it at all (the
  circuit): they answer ``provider_blocked`` at once, until an operator clears the alarm.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from time import monotonic

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.audit_rows import action_row, decision_rows
from activities.cancellation import announce_attempt, finish_request, raise_if_cancelled
from activities.composition import MessageComposer
from activities.inputs import SendSmsInput, SendSmsResult
from activities.sms_providers import OutgoingSms, SmsProvider
from kindly.domain.messages.content_check import carries_link
from kindly.domain.messages.context import MessageContext
from kindly.domain.messages.formatting import sms_segments
from kindly.domain.messages.links import self_service_link
from kindly.domain.messages.variants import DEFAULT_VARIANT
from kindly.errors import (
    DeliveryError,
    FrequencyLimitedError,
    PermanentDeliveryError,
    ProviderAccountError,
    TemplateError,
    TransientDeliveryError,
)
from kindly.store import AuditEntry, AuditStore, OutboxEntry, ProviderAlarm, ProviderAlarms, SelfServiceLinks

alarm_log = logging.getLogger("kindly.alarms")

CIRCUIT_RECHECK_SECONDS = 5.0
"""How long a worker trusts "no alarm is open for its provider" before it asks the database again. An
open alarm is never trusted from memory: once an operator clears it, the next send goes."""
PROVIDER_ALARMS = "kindly_provider_alarms"
"""The worker's counter of provider alarms opened, by provider and the provider's code."""


class MessagingActivities:
    """``links`` issues the self-service links reminders end with, ``public_base_url`` + ``/p/<token>``,
    each working for ``link_lifetime`` from its first attempt. ``alarms`` holds the provider alarms
    (by default in the store's database)."""

    def __init__(
        self,
        provider: SmsProvider,
        composer: MessageComposer,
        store: AuditStore,
        links: SelfServiceLinks,
        *,
        public_base_url: str,
        link_lifetime: timedelta,
        alarms: ProviderAlarms | None = None,
    ) -> None:
        self._provider = provider
        self._composer = composer
        self._store = store
        self._links = links
        self._public_base_url = public_base_url
        self._link_lifetime = link_lifetime
        self._alarms = alarms if alarms is not None else ProviderAlarms(store.engine)
        self._no_alarm_until = 0.0  # monotonic: until then, no alarm was open for the provider

    @activity.defn(name="send_sms")
    async def send_sms(self, request: SendSmsInput) -> SendSmsResult:
        """The request's decisions (what the workflow decided since its last activity) are written
        whatever the outcome: with the outbox claim, in its transaction, when the SMS goes out; on
        their own when the window has closed, a provider alarm holds sending, or the template cannot be
        rendered."""
        announce_attempt()
        decisions = decision_rows(request.decisions)
        info = activity.info()
        # The latest of the server's times for this attempt and this machine's clock: on some
        # servers the attempt's scheduled time excludes its backoff.
        attempt_time = max(info.current_attempt_scheduled_time, info.started_time, datetime.now(UTC))
        if request.not_after is not None and attempt_time >= request.not_after:
            # A retry that comes after the window closed must not text the customer at night.
            await self._append(decisions)
            return SendSmsResult(status="window_closed", detail="contact window closed")
        alarm = await self._open_alarm()
        if alarm is not None:
            # The circuit: the provider cannot send for the lender until an operator clears the alarm.
            await self._append(decisions)
            return SendSmsResult(status="provider_blocked", detail=alarm.code)
        context = await self._with_link(request, attempt_time)
        try:
            composed = self._composer.compose(request.template, request.locale, context)
        except TemplateError as err:
            await self._append(decisions)
            raise ApplicationError(str(err), type="TemplateError") from err
        # Claimed to its end even if a cancellation arrives meanwhile: the row then says ``sending``, which
        # only a request that really went out may leave behind (``raise_if_cancelled`` below undoes it).
        outbox = await finish_request(
            asyncio.to_thread(
                self._store.claim,
                OutboxEntry(
                    idempotency_key=request.idempotency_key,
                    account_id=request.account_id,
                    touchpoint=request.touchpoint,
                    channel="sms",
                    template=request.template,
                ),
                decisions,
            )
        )
        body = composed.body
        segments = sms_segments(body)
        if outbox.status == "cancelled":
            # The workflow gave this touchpoint up; a message planned again has a touchpoint of its own.
            raise ApplicationError(
                f"touchpoint {request.touchpoint} was cancelled ({outbox.detail})",
                type="TouchpointCancelled",
                non_retryable=True,
            )
        if outbox.status == "sent":
            return SendSmsResult(
                status="duplicate",
                provider_message_id=outbox.provider_message_id,
                segments=segments,
                detail="already sent for this touchpoint",
                variant=composed.variant,
            )
        sms = OutgoingSms(
            to=request.to,
            body=body,
            idempotency_key=request.idempotency_key,
            account_id=request.account_id,
            template=request.template,
            locale=request.locale,
            template_code=composed.template_code,
            params=composed.params,
        )
        if activity.is_cancelled():
            await asyncio.to_thread(self._store.release, request.idempotency_key)  # nothing went out
            raise_if_cancelled()
        try:
            return await finish_request(self._send_and_record(request, sms, segments, composed.variant))
        except FrequencyLimitedError as err:  # the claim was released: nothing went out
            activity.logger.warning(
                "SMS %s deferred: provider frequency limit (%s)", request.idempotency_key, err.code
            )
            retry = None if err.retry_after is None else int(err.retry_after.total_seconds())
            return SendSmsResult(status="frequency_limited", detail=err.code, retry_after_seconds=retry)
        except ProviderAccountError as err:  # the claim was released: nothing went out
            await self._raise_alarm(err)
            return SendSmsResult(status="provider_blocked", detail=err.code)
        except PermanentDeliveryError as err:
            await self._complete(request, "rejected", None, str(err), segments, composed.variant)
            activity.logger.warning("SMS %s rejected: %s", request.idempotency_key, err)
            return SendSmsResult(status="rejected", segments=segments, detail=str(err))
        except TransientDeliveryError as err:
            raise ApplicationError(str(err), type="TransientDeliveryError") from err

    async def _send_and_record(
        self, request: SendSmsInput, sms: OutgoingSms, segments: int, variant: str
    ) -> SendSmsResult:
        """Send, and record the send: one step that a cancellation does not split (``finish_request``),
        so a message the gateway took is always recorded and reported as sent."""
        try:
            receipt = await self._provider.send(sms)
        except DeliveryError as err:
            if err.not_taken:
                await asyncio.to_thread(self._store.release, request.idempotency_key)
            raise
        await self._complete(request, "sent", receipt.provider_message_id, "sent", segments, variant)
        return SendSmsResult(
            status="sent", provider_message_id=receipt.provider_message_id, segments=segments, variant=variant
        )

    async def _open_alarm(self) -> ProviderAlarm | None:
        """The alarm open for this worker's provider, if any (``CIRCUIT_RECHECK_SECONDS``)."""
        if monotonic() < self._no_alarm_until:
            return None
        alarm = await asyncio.to_thread(self._alarms.open_alarm, self._provider.name)
        if alarm is None:
            self._no_alarm_until = monotonic() + CIRCUIT_RECHECK_SECONDS
        return alarm

    async def _raise_alarm(self, err: ProviderAccountError) -> None:
        """Open the provider's alarm for this refusal, or bump the one open; the circuit holds from now.
        The log names the provider, its code and the alarm, never an account or a customer."""
        provider = self._provider.name
        at = datetime.now(UTC)
        alarm, opened = await asyncio.to_thread(self._alarms.raise_alarm, provider, err.code, str(err), at)
        self._no_alarm_until = 0.0
        if not opened:
            return
        alarm_log.error(
            "provider alarm %s opened: the SMS provider %s refused the lender's account (%s); nothing "
            "is sent through it until an operator clears the alarm (kindly alarms clear %s)",
            alarm.id,
            provider,
            alarm.code,
            alarm.id,
        )
        counter = activity.metric_meter().create_counter(
            PROVIDER_ALARMS, "Provider alarms opened, by provider and code", "alarms"
        )
        counter.add(1, {"provider": provider, "code": alarm.code})

    async def _with_link(self, request: SendSmsInput, now: datetime) -> MessageContext:
        """The context to render: a reminder's with its touchpoint's link (the same on every attempt), a
        service message's as the workflow sent it."""
        if not carries_link(request.template):
            return request.context
        token = await asyncio.to_thread(
            self._links.issue,
            request.idempotency_key,
            request.account_id,
            request.touchpoint,
            now,
            self._link_lifetime,
        )
        return request.context.model_copy(update={"link": self_service_link(self._public_base_url, token)})

    async def _append(self, decisions: list[AuditEntry]) -> None:
        if decisions:
            await asyncio.to_thread(self._store.append, decisions)

    async def _complete(
        self,
        request: SendSmsInput,
        status: str,
        provider_message_id: str | None,
        detail: str,
        segments: int,
        variant: str = DEFAULT_VARIANT,
    ) -> None:
        """The send's audit row; it names the template's variant when not the default."""
        shown = "" if variant == DEFAULT_VARIANT else f", variant {variant}"
        audit = action_row(
            idempotency_key=request.idempotency_key,
            account_id=request.account_id,
            kind="sms_sent" if status == "sent" else "sms_failed",
            detail=f"{request.template}, {segments} segment(s){shown}: {detail}",
            touchpoint=request.touchpoint,
            template=request.template,
            provider=self._provider.name,
            provider_message_id=provider_message_id,
            outcome=status,
        )
        await asyncio.to_thread(
            self._store.complete, request.idempotency_key, status, provider_message_id, audit
        )

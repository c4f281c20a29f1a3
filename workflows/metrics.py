"""Kindly's own counters, emitted through the Temporal SDK's metric meter.

Workflow metrics are replay-safe (the SDK drops them while replaying), so a counter moves once per
decision however often a workflow is rebuilt from history. They reach the worker's Prometheus
endpoint (``COLLECTIONS_METRICS_BIND_ADDRESS``) beside the SDK's own metrics. Attribute values are
template names, outcomes and reasons only: never an account id, name or phone number.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType

from temporalio import workflow
from temporalio.common import MetricCounter

from kindly.domain.completions import PROVIDER_DEFERRALS
from kindly.domain.contract import TimelineKind

SMS_SENT = "kindly_sms"
DEFERRALS = "kindly_deferrals"
ESCALATIONS = "kindly_escalations"
COMPLAINTS = "kindly_complaints"
COMPLAINT_EVENTS: Mapping[TimelineKind, str] = MappingProxyType(
    {
        TimelineKind.COMPLAINT_OPENED: "opened",
        TimelineKind.COMPLAINT_ACKNOWLEDGED: "acknowledged",
        TimelineKind.COMPLAINT_RESOLVED: "resolved",
        TimelineKind.COMPLAINT_ACKNOWLEDGEMENT_OVERDUE: "acknowledgement_overdue",
        TimelineKind.COMPLAINT_RESOLUTION_OVERDUE: "resolution_overdue",
    }
)
"""The ``event`` of each complaint entry in ``kindly_complaints``."""


class WorkflowMetrics:
    """Counters of one workflow run, created on first use (the meter exists only inside a workflow)."""

    def __init__(self) -> None:
        self._sms: MetricCounter | None = None
        self._deferrals: MetricCounter | None = None
        self._escalations: MetricCounter | None = None
        self._complaints: MetricCounter | None = None

    def sms(self, template: str, outcome: str) -> None:
        """One SMS touchpoint's outcome: sent, rejected (by the gateway), not_accepted (window closed
        while retrying), window_closed (found closed when the activity started), cancelled (a change
        made it unwanted while it retried), frequency_limited (the provider's per-number limit) or
        provider_blocked (a provider alarm holds sending). The last two defer the touch to its next
        window, so they also count as a deferral (``provider_limit``, ``provider_alarm``)."""
        if self._sms is None:
            self._sms = workflow.metric_meter().create_counter(
                SMS_SENT, "SMS touchpoints by template and outcome", "messages"
            )
        self._sms.add(1, {"template": template, "outcome": outcome})
        if outcome in PROVIDER_DEFERRALS:
            self.deferral(PROVIDER_DEFERRALS[outcome])

    def deferral(self, reason: str) -> None:
        """A contact day passed over, by reason (``DEFERRAL_REASONS``)."""
        if self._deferrals is None:
            self._deferrals = workflow.metric_meter().create_counter(
                DEFERRALS, "Contact days passed over, by reason", "days"
            )
        self._deferrals.add(1, {"reason": reason})

    def escalation(self, to: str) -> None:
        """An account handed to people: ``phone`` (call task), ``specialist`` or ``person`` (reply)."""
        if self._escalations is None:
            self._escalations = workflow.metric_meter().create_counter(
                ESCALATIONS, "Escalations to the phone team and specialists", "accounts"
            )
        self._escalations.add(1, {"to": to})

    def complaints(self, kinds: Iterable[TimelineKind]) -> None:
        """Complaint events among an effect's entries: opened, acknowledged, resolved, and the two
        escalations of a deadline passed unmet (what an alert on late complaints watches)."""
        for kind in kinds:
            event = COMPLAINT_EVENTS.get(kind)
            if event is None:
                continue
            if self._complaints is None:
                self._complaints = workflow.metric_meter().create_counter(
                    COMPLAINTS,
                    "Complaint events: opened, acknowledged, resolved, deadlines missed",
                    "complaints",
                )
            self._complaints.add(1, {"event": event})

"""Turning activity inputs into audit rows: shared by every activity that acts."""

from __future__ import annotations

from datetime import UTC, datetime

from activities.inputs import AuditRecord
from kindly.store import AuditEntry


def decision_rows(records: list[AuditRecord]) -> list[AuditEntry]:
    """Audit rows for decisions the workflow took since its last activity."""
    return [
        AuditEntry(
            event_key=record.event_key,
            account_id=record.account_id,
            at=record.at.astimezone(UTC),
            kind=record.kind,
            detail=record.detail,
            touchpoint=record.touchpoint,
            template=record.template,
        )
        for record in records
    ]


def action_row(
    *,
    idempotency_key: str,
    account_id: str,
    kind: str,
    detail: str,
    touchpoint: int | None = None,
    template: str | None = None,
    provider: str | None = None,
    provider_message_id: str | None = None,
    outcome: str,
) -> AuditEntry:
    """The audit row of an action (an SMS, a call task, a hand-off), keyed by its touchpoint."""
    return AuditEntry(
        event_key=f"{idempotency_key}/{kind}",
        account_id=account_id,
        at=datetime.now(UTC),
        kind=kind,
        detail=detail,
        touchpoint=touchpoint,
        template=template,
        provider=provider,
        provider_message_id=provider_message_id,
        outcome=outcome,
    )

"""Custom search attributes that make accounts findable in the Temporal Web UI and visibility API.

Operators query them, e.g. ``CollectionStage="phone" AND DueDate <= "2026-11-07T00:00:00Z"`` (in the
phone stage and at least 30 days past due on 7 December 2026). None holds personal data: ``Currency``
and ``TimeZone`` (the account's IANA zone) let a listing show amounts and instants as the customer sees them.
The worker registers missing ones at start-up (``kindly.programs.temporal.ensure_search_attributes``);
on Temporal Cloud create them once with ``tcld`` or the Cloud UI (docs/deploying.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    SearchAttributeUpdate,
    TypedSearchAttributes,
)

from kindly.domain.contract import AccountInput

COLLECTION_STAGE = SearchAttributeKey.for_keyword("CollectionStage")
DUE_DATE = SearchAttributeKey.for_datetime("DueDate")
AMOUNT_DUE = SearchAttributeKey.for_float("AmountDue")
UNANSWERED_SMS = SearchAttributeKey.for_int("UnansweredSms")
NEXT_TOUCHPOINT_AT = SearchAttributeKey.for_datetime("NextTouchpointAt")
SEGMENT = SearchAttributeKey.for_keyword("Segment")
PAUSED = SearchAttributeKey.for_bool("Paused")
EXPERIMENT_ARM = SearchAttributeKey.for_keyword("ExperimentArm")
"""``<experiment>:<arm>`` for an account in an experiment (published by its run as it starts)."""
CURRENCY = SearchAttributeKey.for_keyword("Currency")
TIME_ZONE = SearchAttributeKey.for_keyword("TimeZone")

ALL_KEYS: Sequence[SearchAttributeKey[Any]] = (
    COLLECTION_STAGE,
    DUE_DATE,
    AMOUNT_DUE,
    UNANSWERED_SMS,
    NEXT_TOUCHPOINT_AT,
    SEGMENT,
    PAUSED,
    CURRENCY,
    TIME_ZONE,
    EXPERIMENT_ARM,
)

Published = dict[str, Any]
"""Attribute values by name, as a run last published them (or its start gave them): an upsert carries
only the values that differ."""


def due_date_start(account: AccountInput) -> datetime:
    """``DueDate``: the moment the due date began in the customer's zone (UTC). Days past due are a bound
    on it (``at least N days past due`` is ``DueDate <= now - N days``), true whenever it is asked,
    where a count published by the workflow would age while the account sleeps."""
    return datetime.combine(account.due_date, time(0), ZoneInfo(account.timezone)).astimezone(UTC)


def start_values(account: AccountInput, stage: str) -> Published:
    """The attributes a start gives, so that an account is findable before any worker has run it:
    its segment, due date, amount, the stage the calendar gives, nothing sent and not paused, and the
    static ``Currency`` and ``TimeZone`` (the zone at start: the run never upserts them). The next
    touchpoint is the run's to publish once it has planned."""
    return {
        COLLECTION_STAGE.name: stage,
        DUE_DATE.name: due_date_start(account),
        AMOUNT_DUE.name: float(account.amount_due),
        UNANSWERED_SMS.name: 0,
        SEGMENT.name: account.segment,
        PAUSED.name: False,
        CURRENCY.name: account.currency,
        TIME_ZONE.name: account.timezone,
    }


def as_start_attributes(values: Published) -> TypedSearchAttributes:
    """``values`` as search attributes given with a workflow's start."""
    return TypedSearchAttributes(
        [SearchAttributePair(key, values[key.name]) for key in ALL_KEYS if values.get(key.name) is not None]
    )


def published_by_start(attributes: TypedSearchAttributes) -> Published:
    """The values of Kindly's attributes a run was started with (none for a bare start)."""
    return {key.name: value for key in ALL_KEYS if (value := attributes.get(key)) is not None}


def changed(published: Published, wanted: Published) -> list[SearchAttributeUpdate[Any]]:
    """The upsert that makes ``published`` into ``wanted``: only the values that differ (a value of
    None unsets the attribute)."""
    updates: list[SearchAttributeUpdate[Any]] = []
    for key in ALL_KEYS:
        if key.name not in wanted or published.get(key.name) == wanted[key.name]:
            continue
        value = wanted[key.name]
        updates.append(key.value_unset() if value is None else key.value_set(value))
    return updates

"""Custom search attributes that make accounts findable in the Temporal Web UI and visibility API.

Operators query them, e.g. ``CollectionStage="phone" AND DueDate <= "2026-11-07T00:00:00Z"`` (in the
phone stage and at least 30 days past due on 7 December 2026). None holds personal data.
The worker registers missing ones at start-up (dev server, test server, self-hosted clusters); on
Temporal Cloud create them once with ``tcld`` or the Cloud UI (docs/deploying.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import (
    SearchAttributeIndexedValueType,
    SearchAttributeKey,
    SearchAttributePair,
    SearchAttributeUpdate,
    TypedSearchAttributes,
)
from temporalio.service import RPCError, RPCStatusCode

from kindly.domain.contract import AccountInput

COLLECTION_STAGE = SearchAttributeKey.for_keyword("CollectionStage")
DUE_DATE = SearchAttributeKey.for_datetime("DueDate")
AMOUNT_DUE = SearchAttributeKey.for_float("AmountDue")
UNANSWERED_SMS = SearchAttributeKey.for_int("UnansweredSms")
NEXT_TOUCHPOINT_AT = SearchAttributeKey.for_datetime("NextTouchpointAt")
SEGMENT = SearchAttributeKey.for_keyword("Segment")
PAUSED = SearchAttributeKey.for_bool("Paused")

ALL_KEYS: Sequence[SearchAttributeKey[Any]] = (
    COLLECTION_STAGE,
    DUE_DATE,
    AMOUNT_DUE,
    UNANSWERED_SMS,
    NEXT_TOUCHPOINT_AT,
    SEGMENT,
    PAUSED,
)

_PROTO_TYPES = {
    SearchAttributeIndexedValueType.KEYWORD: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    SearchAttributeIndexedValueType.INT: IndexedValueType.INDEXED_VALUE_TYPE_INT,
    SearchAttributeIndexedValueType.DOUBLE: IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    SearchAttributeIndexedValueType.DATETIME: IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    SearchAttributeIndexedValueType.BOOL: IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
}


async def ensure_search_attributes(client: Client, namespace: str) -> list[str]:
    """Register the attributes the namespace lacks; returns the names added."""
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        known = set(existing.custom_attributes) | set(existing.system_attributes)
    except RPCError as err:
        # The time-skipping test server cannot list, but accepts the additions.
        if err.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        known = set()
    missing = {key.name: _PROTO_TYPES[key.indexed_value_type] for key in ALL_KEYS if key.name not in known}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
    return sorted(missing)


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
    its segment, due date, amount, the stage the calendar gives, nothing sent and not paused. The
    next touchpoint is the run's to publish once it has planned."""
    return {
        COLLECTION_STAGE.name: stage,
        DUE_DATE.name: due_date_start(account),
        AMOUNT_DUE.name: float(account.amount_due),
        UNANSWERED_SMS.name: 0,
        SEGMENT.name: account.segment,
        PAUSED.name: False,
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

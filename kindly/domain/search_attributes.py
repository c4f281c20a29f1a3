"""Custom search attributes that make accounts findable in the Temporal Web UI and visibility API.

Operators query them, e.g. ``CollectionStage="phone" AND DaysPastDue > 30``. None holds personal data.
The worker registers missing ones at start-up (dev server, test server, self-hosted clusters); on
Temporal Cloud create them once with ``tcld`` or the Cloud UI (see the README).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

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

COLLECTION_STAGE = SearchAttributeKey.for_keyword("CollectionStage")
DAYS_PAST_DUE = SearchAttributeKey.for_int("DaysPastDue")
AMOUNT_DUE = SearchAttributeKey.for_float("AmountDue")
UNANSWERED_SMS = SearchAttributeKey.for_int("UnansweredSms")
NEXT_TOUCHPOINT_AT = SearchAttributeKey.for_datetime("NextTouchpointAt")
SEGMENT = SearchAttributeKey.for_keyword("Segment")
PAUSED = SearchAttributeKey.for_bool("Paused")

ALL_KEYS: Sequence[SearchAttributeKey[Any]] = (
    COLLECTION_STAGE,
    DAYS_PAST_DUE,
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


SearchSnapshot = tuple[str, int, float, int, datetime | None, str, bool]
"""The attribute values in ``ALL_KEYS`` order: compared before upserting, to upsert only changes."""


def snapshot_updates(snapshot: SearchSnapshot) -> list[SearchAttributeUpdate[Any]]:
    """The upsert that publishes ``snapshot`` (an absent next touchpoint unsets the attribute)."""
    return [
        key.value_unset() if value is None else key.value_set(value)
        for key, value in zip(ALL_KEYS, snapshot, strict=True)
    ]


def snapshot_attributes(snapshot: SearchSnapshot) -> TypedSearchAttributes:
    """``snapshot`` as search attributes given with a workflow's start."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(key, value)
            for key, value in zip(ALL_KEYS, snapshot, strict=True)
            if value is not None
        ]
    )


def snapshot_of(attributes: TypedSearchAttributes) -> SearchSnapshot | None:
    """The snapshot that ``attributes`` hold (a workflow's, as given with its start), or None when one
    of Kindly's attributes other than the next touchpoint is missing."""
    values: list[Any] = [attributes.get(key) for key in ALL_KEYS]
    if any(
        value is None for key, value in zip(ALL_KEYS, values, strict=True) if key is not NEXT_TOUCHPOINT_AT
    ):
        return None
    stage, days, amount, unanswered, next_at, segment, paused = values
    return (stage, days, amount, unanswered, next_at, segment, paused)

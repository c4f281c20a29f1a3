"""Validation errors as one line that names each bad field: what operators and callers read."""

from __future__ import annotations

from pydantic import ValidationError

FIELD_CHARS = 64
MESSAGE_CHARS = 200
ERRORS_SHOWN = 10
"""Bounds on what a rejection repeats: a caller's 100 kB key or value must not land in the timeline,
which is workflow state carried across continue-as-new."""


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, marked with … when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe_validation_error(err: ValidationError) -> str:
    """``phone: must be an E.164 number …; amount_due: Input should be greater than 0``."""
    errors = err.errors(include_url=False, include_input=False)
    parts = []
    for item in errors[:ERRORS_SHOWN]:
        field = shorten(".".join(str(part) for part in item["loc"]), FIELD_CHARS) or "payload"
        message = shorten(item["msg"].removeprefix("Value error, "), MESSAGE_CHARS)
        parts.append(f"{field}: {message}")
    if len(errors) > ERRORS_SHOWN:
        parts.append(f"and {len(errors) - ERRORS_SHOWN} more")
    return "; ".join(parts)

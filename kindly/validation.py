"""Validation errors as one line that names each bad field: what operators and callers read."""

from __future__ import annotations

from pydantic import ValidationError


def describe_validation_error(err: ValidationError) -> str:
    """``phone: must be an E.164 number …; amount_due: Input should be greater than 0``."""
    parts = []
    for item in err.errors(include_url=False, include_input=False):
        field = ".".join(str(part) for part in item["loc"]) or "payload"
        message = item["msg"].removeprefix("Value error, ")
        parts.append(f"{field}: {message}")
    return "; ".join(parts)

"""The vocabulary of refusals: why an account cannot take an action (``kindly.domain.refusals`` and the
modules beside it make them).

A refusal is of one of two kinds, which callers answer differently:

- ``conflict``: the account's state forbids it (not paused, a payment already credited, the account
  has ended). The HTTP API answers 409.
- ``invalid``: a value is wrong for this account (a settlement above the amount due, a pause that
  ends in the past, a promise dated beyond the policy's limit). The HTTP API answers 422, naming the
  field.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RefusalKind(StrEnum):
    CONFLICT = "conflict"
    """The account's state forbids the action."""
    INVALID = "invalid"
    """A value is wrong for this account; ``field`` names it."""


@dataclass(frozen=True)
class Refusal:
    kind: RefusalKind
    message: str
    """What the operator reads: ``amount: 99999 is more than the amount due (3200.00 CNY)``."""
    field: str | None = None

    def __str__(self) -> str:
        return self.message


def invalid(field: str, reason: str) -> Refusal:
    """An ``invalid`` refusal naming ``field``: ``<field>: <reason>``."""
    return Refusal(RefusalKind.INVALID, f"{field}: {reason}", field)

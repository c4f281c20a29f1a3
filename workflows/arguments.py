"""A run's arguments and its history: the arguments arrive as raw JSON from any client (the ``temporal``
CLI included), and a bad one must fail the run at once, naming the field, not fail its task forever; a
history grown long is carried over into a new run (continue-as-new) with the state."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import ValidationError
from temporalio import workflow
from temporalio.exceptions import ApplicationError

from kindly.domain.contract import AccountInput
from kindly.domain.policy.model import ContactPolicy
from kindly.domain.state import AccountState
from kindly.domain.validation import describe_validation_error

_Model = TypeVar("_Model", AccountInput, AccountState)


def unpacked(args: Sequence[Any]) -> tuple[Any, Any]:
    """``(account, carried state or None)`` from the run's arguments; any other count fails the run."""
    if not 1 <= len(args) <= 2:
        raise ApplicationError(
            f"expected the account (and, after continue-as-new, its state); got {len(args)} argument(s)",
            type="InvalidAccountInput",
            non_retryable=True,
        )
    return args[0], args[1] if len(args) == 2 else None


def parsed_or_none(account: Any) -> AccountInput | None:
    """The account input, or None when it is bad (``validated`` fails the run and says why)."""
    try:
        return AccountInput.model_validate(account)
    except ValidationError:
        return None


def validated(model: type[_Model], value: Any, what: str) -> _Model:
    """``value`` as ``model``, or a non-retryable failure of the workflow naming the bad field."""
    try:
        return model.model_validate(value)
    except ValidationError as err:
        raise ApplicationError(
            f"invalid {what}: {describe_validation_error(err)}",
            type="InvalidAccountInput",
            non_retryable=True,
        ) from None


def history_is_long(info: workflow.Info, policy: ContactPolicy) -> bool:
    """Temporal suggests continue-as-new, or the run reached the policy's event count (tests use a
    small one to exercise continue-as-new)."""
    limit = policy.continue_as_new_after_events
    return info.is_continue_as_new_suggested() or (
        limit is not None and info.get_current_history_length() >= limit
    )

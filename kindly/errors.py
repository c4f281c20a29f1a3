"""Kindly's exception hierarchy, documented in one place.

``KindlyError``
    Base of everything Kindly raises on purpose.

    ``ConfigurationError``
        Settings, a policy file or a template folder is unusable. Raised at start-up, before anything
        is sent, so a bad deployment stops loudly instead of misbehaving quietly.

    ``TemplateError``
        A message template is missing, fails to render, or fails the content check.

    ``DeliveryError``
        An outgoing HTTP call (SMS gateway, phone or specialist hand-off) did not get a 2xx.

        ``PermanentDeliveryError``
            The receiver answered 4xx: retrying the same request cannot help. Activities record it in
            the audit log and report it to the workflow instead of retrying.

        ``TransientDeliveryError``
            5xx, timeout or connection failure: Temporal retries the activity with backoff, sending the
            same idempotency key each time.

        ``FrequencyLimitedError``
            The provider refused the message because the number reached its per-number frequency limit
            (Alibaba Cloud's ``isv.BUSINESS_LIMIT_CONTROL``, Tencent Cloud's
            ``LimitExceeded.PhoneNumberDailyLimit`` and kin). Nothing went out; retrying soon cannot help,
            so the touch is deferred to its next allowed moment and recorded as such.

        ``ProviderAccountError``
            The lender's account with the provider cannot send (balance exhausted, signature or
            template suspended, credentials refused). Nothing went out; no retry can help until an
            operator acts, so sending stops and an alarm is raised.

    ``AccountNotFoundError``
        No workflow exists for this account id (an operator's typo, an account never imported).

        ``AccountClosedError``
            The account's workflow exists but has ended (settled or closed): it takes no
            more signals. A subclass because Temporal answers both with NOT_FOUND and most callers
            (replies, delivery receipts) treat them alike; the API answers it 409 instead of 404.

``ActionRefusedError``
    The account refused an operator's action (a workflow update's validator), and nothing changed.
    ``field`` names the value at fault, if one is.

    ``AccountStateConflictError``
        The account's state forbids the action: it is not paused, the payment was already
        credited, the account has ended. The API answers 409.

    ``InvalidActionValueError``
        A value is wrong for this account: a settlement above the amount due, a pause that ends in
        the past, a promise dated beyond the policy's limit. The API answers 422.

``ActionTimeoutError``
    No worker answered an operator's action in time: it was not applied yet, and may still be when a
    worker takes it. The API answers 504.

``SimulationInputError``
    A portfolio, policy, response model or experiment given to the simulator (``kindly simulate``) is
    unusable: the message names the file and the field, and nothing was simulated.

``DecryptionError``
    Encrypted data (a Temporal payload, a phone number in the database) that no configured key opens:
    an unknown key id (a retired key still in use), tampering, or a wrong key.

Activities convert these into ``temporalio.exceptions.ApplicationError`` at the Temporal boundary
(non-retryable where a retry cannot help), so workflows never see bare exceptions.
"""

from __future__ import annotations

from datetime import timedelta


class KindlyError(Exception):
    """Base of every error Kindly raises on purpose."""


class ConfigurationError(KindlyError):
    """Settings, a policy file or a template folder is unusable."""


class TemplateError(KindlyError):
    """A message template is missing, fails to render, or fails the content check."""


class DeliveryError(KindlyError):
    """An outgoing HTTP call did not get a 2xx answer.

    ``not_taken`` says the receiver certainly did not act on the request: it refused it (4xx, 429,
    503) or it never reached it (no connection). Otherwise (a timeout, a 500, a dropped connection) it
    may have: a message may have gone out although the sender never heard so.
    """

    def __init__(self, message: str, *, status_code: int | None = None, not_taken: bool = False) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.not_taken = not_taken


class PermanentDeliveryError(DeliveryError):
    """The receiver answered 4xx: the same request will never succeed (and was not acted on)."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message, status_code=status_code, not_taken=True)


class TransientDeliveryError(DeliveryError):
    """5xx, timeout or connection failure: worth retrying with the same idempotency key."""


class FrequencyLimitedError(DeliveryError):
    """The provider's per-number frequency limit refused the message; ``code`` is the provider's, and
    ``retry_after`` how long its limit's window is when the provider says (a minute's, an hour's), or None
    (a day's, or unknown)."""

    def __init__(self, message: str, *, code: str, retry_after: timedelta | None = None) -> None:
        super().__init__(message, not_taken=True)
        self.code = code
        self.retry_after = retry_after


class ProviderAccountError(DeliveryError):
    """The lender's provider account cannot send until an operator acts; ``code`` is the provider's."""

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message, not_taken=True)
        self.code = code


class AccountNotFoundError(KindlyError):
    """No workflow exists for this account id."""


class AccountClosedError(AccountNotFoundError):
    """The account's workflow has ended: it takes no more signals."""


class ActionRefusedError(KindlyError):
    """The account refused an operator's action; nothing changed."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class AccountStateConflictError(ActionRefusedError):
    """The account's state forbids the action (not paused, already credited, ended)."""


class InvalidActionValueError(ActionRefusedError):
    """A value of the action is wrong for this account; ``field`` names it."""


class ActionTimeoutError(KindlyError):
    """No worker answered an operator's action in time."""


class DecryptionError(KindlyError):
    """Encrypted data that no configured key opens: unknown key id, tampering, or a wrong key."""


class SimulationInputError(KindlyError):
    """A file given to the simulator is unusable; the message names the file and the field."""

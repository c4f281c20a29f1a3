"""The reference "pay now" hands to the lender's payment page: which account and which reminder's link
the customer came from, signed so that the payment page can trust it.

It is itsdangerous's ``URLSafeTimedSerializer`` (HMAC-SHA1 over base64 JSON and the time it was made),
keyed with ``COLLECTIONS_PAYMENT_REFERENCE_SECRET`` and the salt below: the lender verifies it with the
same three lines (``read_payment_reference``, docs/self-service.md). Signed, not encrypted: it holds the
account id, which the lender issued, and the touchpoint, never a name or a number. The payment itself
reaches Kindly as ever, through the payment webhook.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer

SALT = "kindly-payment-reference"
"""Keeps a reference from passing for any other value signed with the same secret."""


@dataclass(frozen=True)
class PaymentReference:
    account_id: str
    touchpoint: int


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=SALT)


def payment_reference(secret: str, account_id: str, touchpoint: int) -> str:
    """The signed reference for the account and the reminder its link came with."""
    return _serializer(secret).dumps({"account_id": account_id, "touchpoint": touchpoint})


def read_payment_reference(secret: str, reference: str, max_age_seconds: int) -> PaymentReference:
    """What the payment page does: the reference's account and touchpoint, if it was signed with
    ``secret`` at most ``max_age_seconds`` ago; ``itsdangerous.BadSignature`` (``SignatureExpired`` for
    an old one) if not."""
    loaded = _serializer(secret).loads(reference, max_age=max_age_seconds)
    if not isinstance(loaded, dict) or set(loaded) != {"account_id", "touchpoint"}:
        raise BadSignature("not a payment reference")
    return PaymentReference(account_id=str(loaded["account_id"]), touchpoint=int(loaded["touchpoint"]))


def payment_url(template: str, reference: str) -> str:
    """The lender's payment page for ``reference``: the template's ``{reference}`` replaced, quoted (a
    replacement, not ``str.format``, so that other braces in the lender's URL stay as they are)."""
    return template.replace("{reference}", quote(reference, safe=""))


def payment_origin(template: str) -> str:
    """``https://pay.lender.example``: where the page's forms may lead (its ``form-action``)."""
    parts = urlsplit(template)
    return f"{parts.scheme}://{parts.netloc}"

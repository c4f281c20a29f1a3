"""What a message may say about an account: the only values a template sees."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import BaseModel, ConfigDict


class MessageContext(BaseModel):
    """Everything a template may show. No name, phone, ID or card number: by construction."""

    model_config = ConfigDict(frozen=True)

    amount_due: Decimal
    currency: str
    due_date: date
    reference_masked: str
    days_past_due: int
    promise_date: date | None = None

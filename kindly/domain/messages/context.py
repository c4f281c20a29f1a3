"""What a message may say about an account: the only values a template sees."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from kindly.domain.policy.consequences import Consequences


class InstalmentShown(BaseModel):
    """An instalment as a reminder states it: which of how many, what is left of it, and when it is due."""

    model_config = ConfigDict(frozen=True)

    number: int
    count: int
    amount: Decimal
    due: date


class VariantKey(BaseModel):
    """What picks a template's wording among its variants (``kindly.domain.messages.variants``): the
    account's segment and region, and the variant its policy names. None of it is shown, and none of it
    is personal."""

    model_config = ConfigDict(frozen=True)

    segment: str
    region: str | None = None
    template_variant: str | None = None


class MessageContext(BaseModel):
    """Everything a template may show. No name, phone, ID or card number: by construction."""

    model_config = ConfigDict(frozen=True)

    amount_due: Decimal
    currency: str
    due_date: date
    reference_masked: str
    days_past_due: int
    promise_date: date | None = None
    instalment: InstalmentShown | None = None
    """The next instalment of the customer's plan, for the reminder the day before it."""
    link: str | None = None
    """The reminder's self-service link (``<public base URL>/p/<token>``), which the sending activity adds
    just before rendering, so it never enters the workflow's history; None for service messages (HELP,
    the opt-out confirmation), which show none."""
    consequences: Consequences | None = None
    """The consequences of being overdue the account's policy declares: a post-due reminder states them
    in approved words (``kindly.domain.messages.consequences``); None: none declared."""
    variant_key: VariantKey | None = None
    """Which variant of the template the message takes; None (sends planned before variants existed):
    the locale's default wording."""

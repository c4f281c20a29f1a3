"""Which wording a planned reminder takes: the segment's tone and the one-time instalment offer.

The schedule decides *when* and the kind of touch (first overdue, follow-up, broken promise); this
decides the tone, from the segment's policy and the account's history. Pure: the workflow calls it.
"""

from __future__ import annotations

from kindly.domain.contract import TemplateName
from kindly.domain.policy.model import ContactPolicy

_GENTLE_ELIGIBLE = frozenset({TemplateName.FIRST_OVERDUE, TemplateName.FOLLOW_UP})


def choose_template(
    planned: TemplateName, policy: ContactPolicy, *, days_past_due: int, instalment_offered: bool
) -> TemplateName:
    """The template to send for a planned touch.

    A broken promise keeps its firm wording. The first follow-up at or after
    ``instalment_offer_after_days`` overdue offers an instalment plan, once. Otherwise a gentle
    segment gets the gentle wording for overdue reminders.
    """
    offer_after = policy.instalment_offer_after_days
    if (
        planned is TemplateName.FOLLOW_UP
        and offer_after is not None
        and days_past_due >= offer_after
        and not instalment_offered
    ):
        return TemplateName.INSTALMENT_OFFER
    if policy.tone == "gentle" and planned in _GENTLE_ELIGIBLE:
        return TemplateName.GENTLE_REMINDER
    return planned

"""Template tone: gentle segments, the one-time instalment offer, firm after a broken promise."""

from __future__ import annotations

import pytest

from kindly.domain.contract import TemplateName
from kindly.domain.policy.model import BUILT_IN_POLICIES, ContactPolicy
from kindly.domain.policy.tones import choose_template

STANDARD = BUILT_IN_POLICIES["standard"]
GENTLE = BUILT_IN_POLICIES["gentle"]


@pytest.mark.parametrize(
    ("planned", "policy", "dpd", "offered", "expected"),
    [
        (TemplateName.FOLLOW_UP, STANDARD, 8, False, TemplateName.FOLLOW_UP),
        (TemplateName.FOLLOW_UP, STANDARD, 22, False, TemplateName.INSTALMENT_OFFER),
        (TemplateName.FOLLOW_UP, STANDARD, 29, True, TemplateName.FOLLOW_UP),
        (TemplateName.FIRST_OVERDUE, GENTLE, 1, False, TemplateName.GENTLE_REMINDER),
        (TemplateName.FOLLOW_UP, GENTLE, 11, False, TemplateName.GENTLE_REMINDER),
        (TemplateName.FOLLOW_UP, GENTLE, 21, False, TemplateName.INSTALMENT_OFFER),
        (TemplateName.BROKEN_PROMISE, GENTLE, 30, False, TemplateName.BROKEN_PROMISE),
        (TemplateName.PRE_DUE, GENTLE, 0, False, TemplateName.PRE_DUE),
        (
            TemplateName.FOLLOW_UP,
            ContactPolicy(instalment_offer_after_days=None),
            90,
            False,
            TemplateName.FOLLOW_UP,
        ),
    ],
)
def test_choose_template(
    planned: TemplateName, policy: ContactPolicy, dpd: int, offered: bool, expected: TemplateName
) -> None:
    assert choose_template(planned, policy, days_past_due=dpd, instalment_offered=offered) is expected

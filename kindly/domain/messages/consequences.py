"""Stating what being overdue costs: the approved phrase of each fact a policy declares, when a message
may state it, and what the content check makes of a message that does.

Three rules, kept in this one place so that the renderer and the content check cannot disagree:

* **Only after the due date.** A post-due reminder (``POST_DUE_TEMPLATES``: the schedule sends them only
  on overdue days) rendered on a day past due states the facts; no other message ever does.
* **Only what is true.** The phrase of each consequence the segment's policy declares
  (``kindly.domain.policy.consequences``), and no other: a lender that does not report to the credit
  bureau cannot say it does.
* **Only in approved words.** The phrases of ``kindly/domain/policy/data/consequence_phrases.json``, with
  the contract's own rate. Any other wording of a consequence is a banned word (category
  ``consequence``), which the content check finds once the allowed phrases are taken out.

The regular overdue reminders (``MUST_STATE``) must state every declared fact: a customer who is charged
penalty interest hears so in the first reminder after the due date.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from enum import StrEnum
from importlib import resources
from types import MappingProxyType

from kindly.domain.contract import SUPPORTED_LOCALES, TemplateName
from kindly.domain.policy.consequences import Consequences
from kindly.errors import ConfigurationError

__all__ = [
    "MUST_STATE",
    "PHRASES_FILE",
    "POST_DUE_TEMPLATES",
    "Fact",
    "approved_phrases",
    "consequence_problems",
    "consequences_text",
    "may_state",
    "stated_phrases",
]

PHRASES_FILE = "domain/policy/data/consequence_phrases.json"

POST_DUE_TEMPLATES = frozenset(
    {
        TemplateName.FIRST_OVERDUE,
        TemplateName.FOLLOW_UP,
        TemplateName.GENTLE_REMINDER,
        TemplateName.INSTALMENT_OFFER,
        TemplateName.BROKEN_PROMISE,
        TemplateName.PLAN_BROKEN,
    }
)
"""The reminders the schedule sends only on overdue days (its overdue touches, in the segment's tone or
for a broken promise or plan): the only messages that may state a consequence."""
MUST_STATE = frozenset({TemplateName.FIRST_OVERDUE, TemplateName.FOLLOW_UP, TemplateName.GENTLE_REMINDER})
"""The regular overdue reminders, in either tone: each states every consequence the policy declares."""


class Fact(StrEnum):
    PENALTY_INTEREST = "penalty_interest"
    CREDIT_BUREAU = "credit_bureau"


_FACT_NAMES = MappingProxyType(
    {Fact.PENALTY_INTEREST: "penalty interest", Fact.CREDIT_BUREAU: "reporting to the credit bureau"}
)
_RATE = "{rate}"


@functools.cache
def approved_phrases() -> Mapping[str, Mapping[Fact, str]]:
    """Each locale's approved phrase of each fact, ``{rate}`` unfilled; ``ConfigurationError`` if the
    packaged file is unusable."""
    where = f"kindly/{PHRASES_FILE}"
    try:
        raw: object = json.loads(resources.files("kindly").joinpath(PHRASES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigurationError(f"cannot read {where}: {err}") from err
    by_locale = raw.get("phrases") if isinstance(raw, dict) else None
    if not isinstance(by_locale, dict):
        raise ConfigurationError(f"{where}: 'phrases' must be an object of locales")
    phrases: dict[str, Mapping[Fact, str]] = {}
    for locale in SUPPORTED_LOCALES:
        entries = by_locale.get(locale)
        if not isinstance(entries, dict) or set(entries) != set(Fact):
            raise ConfigurationError(f"{where}: phrases.{locale} must give exactly {', '.join(Fact)}")
        for fact, phrase in entries.items():
            rates = phrase.count(_RATE) if isinstance(phrase, str) else -1
            wanted = 1 if fact == Fact.PENALTY_INTEREST else 0
            if not isinstance(phrase, str) or not phrase.strip() or rates != wanted or "\n" in phrase:
                raise ConfigurationError(
                    f"{where}: phrases.{locale}.{fact} must be one line"
                    + (" holding {rate} once" if wanted else " without {rate}")
                )
        phrases[locale] = MappingProxyType(
            {Fact(fact): " ".join(text.split()) for fact, text in entries.items()}
        )
    return MappingProxyType(phrases)


def stated_phrases(facts: Consequences | None, locale: str) -> list[tuple[Fact, str, str]]:
    """Each declared fact with its approved phrase in ``locale``, filled in, and the rate it shows (empty
    for the credit bureau), in the order they are stated."""
    phrases = approved_phrases().get(locale)
    if facts is None or phrases is None:
        return []
    stated: list[tuple[Fact, str, str]] = []
    if facts.penalty_interest is not None:
        rate = next((text for key, text in facts.penalty_interest.rate.items() if key == locale), "")
        stated.append((Fact.PENALTY_INTEREST, phrases[Fact.PENALTY_INTEREST].replace(_RATE, rate), rate))
    if facts.reports_to_credit_bureau:
        stated.append((Fact.CREDIT_BUREAU, phrases[Fact.CREDIT_BUREAU], ""))
    return stated


def may_state(template: TemplateName, days_past_due: int) -> bool:
    """Whether a message of ``template`` on a day ``days_past_due`` may state a consequence at all."""
    return template in POST_DUE_TEMPLATES and days_past_due > 0


def consequences_text(
    facts: Consequences | None, locale: str, template: TemplateName, days_past_due: int
) -> str:
    """What a template's ``consequences`` shows: the declared facts' phrases, joined, in a post-due
    reminder past the due date; otherwise nothing."""
    if not may_state(template, days_past_due):
        return ""
    joiner = "" if locale == "zh-CN" else " "
    return joiner.join(phrase for _, phrase, _ in stated_phrases(facts, locale))


def consequence_problems(
    body: str, template: TemplateName, locale: str, facts: Consequences | None, days_past_due: int
) -> tuple[str, list[str]]:
    """``body`` without the phrases it may state (a rate stays, to be checked as any text), and every
    problem with what it states: a declared fact a regular reminder leaves out, a consequence stated
    before the due date, one the policy does not declare, or one in words other than the approved phrase."""
    problems: list[str] = []
    allowed = may_state(template, days_past_due)
    declared = {fact for fact, _, _ in stated_phrases(facts, locale)}
    for fact, phrase, rate in stated_phrases(facts, locale):
        if allowed and phrase in body:
            body = body.replace(phrase, f" {rate} ")
        elif allowed and template in MUST_STATE:
            problems.append(
                f"missing the consequence the policy declares, {_FACT_NAMES[fact]} (expected {phrase!r})"
            )
    for fact, phrase in approved_phrases().get(locale, {}).items():
        marker = max(phrase.split(_RATE), key=len)
        if marker not in body:
            continue
        name = _FACT_NAMES[fact]
        if not allowed:
            problems.append(f"states {name}, which only a reminder after the due date may state")
        elif fact not in declared:
            problems.append(f"states {name}, which the policy does not declare")
        else:
            problems.append(f"states {name} other than in the approved phrase with the policy's rate")
    return body, problems

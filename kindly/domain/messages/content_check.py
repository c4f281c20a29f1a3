"""The content check every customer message must pass: the rules a compliance officer signs.

``check_message`` looks at one rendered SMS body and lists what is wrong with it:

* **Required parts.** Reminders (``pre_due``, ``due_today``, ``first_overdue``, ``follow_up``,
  ``broken_promise``) show the amount due, the due date, the masked loan reference, the hotline and
  how to opt out. ``help`` shows the hotline and how to opt out. ``opt_out_confirmation`` shows the
  hotline. Opt-out wording is the keyword ``STOP`` (whole word, capitals) in ``en-US`` and ``退订`` or
  ``TD`` in ``zh-CN``. Every message that is not a service message (``help``, ``opt_out_confirmation``)
  shows the self-service link when the sample has one.
* **No banned words.** Threats, insults, invented consequences and any wording of a consequence
  listed in ``kindly/domain/policy/data/banned_words.json``, in English and Chinese, checked in every
  locale. English entries match case-insensitively as whole words; Chinese entries match anywhere.
* **Consequences only when true.** The approved phrase of each consequence the policy declares is taken
  out before the banned-word scan, in a reminder after the due date only; the regular overdue reminders
  must state every declared one (``kindly.domain.messages.consequences``).
* **No personal data.** The sample customer name, phone number and full account id never appear,
  and the loan reference never appears without its mask.
* **Length.** The body fits in ``max_segments`` billed SMS segments, the self-service link counted at
  its real length (the deployment's ``public_base_url``, ``/p/`` and a whole token).

``MessageRenderer.check_all`` renders every template in every locale with ``SampleValues`` and runs
this check at worker start-up, so a non-compliant operator template, or a base URL too long for a
template to carry, stops the worker before anything is sent.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources

from kindly.domain.contract import SUPPORTED_LOCALES, TemplateName
from kindly.domain.masking import mask_reference
from kindly.domain.messages.consequences import consequence_problems
from kindly.domain.messages.context import InstalmentShown, MessageContext
from kindly.domain.messages.formatting import format_date, format_money, sms_segments
from kindly.domain.policy.consequences import Consequences
from kindly.errors import ConfigurationError

__all__ = [
    "BANNED_WORDS_FILE",
    "SERVICE_TEMPLATES",
    "BannedWord",
    "SampleValues",
    "banned_words",
    "carries_link",
    "check_message",
]

BANNED_WORDS_FILE = "domain/policy/data/banned_words.json"

REMINDER_TEMPLATES = frozenset(
    {
        TemplateName.PRE_DUE,
        TemplateName.DUE_TODAY,
        TemplateName.FIRST_OVERDUE,
        TemplateName.FOLLOW_UP,
        TemplateName.BROKEN_PROMISE,
        TemplateName.GENTLE_REMINDER,
        TemplateName.INSTALMENT_OFFER,
        TemplateName.PLAN_BROKEN,
    }
)
INSTALMENT_TEMPLATES = frozenset({TemplateName.INSTALMENT_DUE})
"""Reminders of a plan's instalment: they state the instalment (which, how much, when) and the masked
reference, rather than the whole amount due."""
_NEEDS_OPT_OUT = REMINDER_TEMPLATES | INSTALMENT_TEMPLATES | {TemplateName.HELP}
SERVICE_TEMPLATES = frozenset({TemplateName.HELP, TemplateName.OPT_OUT_CONFIRMATION})
"""The replies a customer asked for: they answer, they do not remind, and carry no self-service link."""


def carries_link(template: TemplateName) -> bool:
    """Whether a message of ``template`` ends with the self-service link: every one but a service
    message, so a reminder added later has its link without being listed anywhere."""
    return template not in SERVICE_TEMPLATES


# Opt-out keywords per locale, each matched as a whole word (case-sensitive: carriers act on them).
_OPT_OUT_WORDING: dict[str, tuple[str, ...]] = {"en-US": ("STOP",), "zh-CN": ("退订", "TD")}


@dataclass(frozen=True)
class SampleValues:
    """The sample account a template is checked against.

    ``hotline``, ``brand`` and ``channels`` are the deployment's own settings (what every real
    message shows). The rest is a made-up account: its loan values are what the message must show,
    and its customer name, phone number and full account id are what it must never show. Amount and
    days past due are deliberately large so that the length check covers long real messages, and
    ``link`` is as long as the deployment's real links (``links.sample_link``); None checks without.
    """

    hotline: str
    brand: str = ""
    channels: tuple[str, ...] = ()
    amount_due: Decimal = Decimal("123456.78")
    currency: str = "CNY"
    due_date: dt.date = dt.date(2026, 12, 15)
    promise_date: dt.date = dt.date(2026, 12, 20)
    days_past_due: int = 120
    account_id: str = "LN-2026-000154321"
    customer_name: str = "Zhang Wei"
    phone: str = "+8613800138000"
    link: str | None = None
    instalment: InstalmentShown = field(
        default_factory=lambda: InstalmentShown(
            number=12, count=12, amount=Decimal("10288.07"), due=dt.date(2027, 11, 15)
        )
    )

    @property
    def reference_masked(self) -> str:
        return mask_reference(self.account_id)

    def context(
        self, *, with_promise: bool, with_link: bool = False, consequences: Consequences | None = None
    ) -> MessageContext:
        """The ``MessageContext`` to render, with or without a promise date, with the sample's link
        when ``with_link`` (what a message of a template that ``carries_link`` is rendered with), and
        with the consequences a policy declares."""
        return MessageContext(
            amount_due=self.amount_due,
            currency=self.currency,
            due_date=self.due_date,
            reference_masked=self.reference_masked,
            days_past_due=self.days_past_due,
            promise_date=self.promise_date if with_promise else None,
            link=self.link if with_link else None,
            instalment=self.instalment,
            consequences=consequences,
        )

    def personal_data(self) -> dict[str, str]:
        """What must never appear in a message, by description."""
        return {
            "customer name": self.customer_name,
            "phone number": self.phone,
            "phone number without +": self.phone.removeprefix("+"),
            "full account id": self.account_id,
        }


@dataclass(frozen=True)
class BannedWord:
    word: str
    language: str  # "en" (whole word, case-insensitive) or "zh" (anywhere)
    category: str
    pattern: re.Pattern[str]


def _compile(word: str, language: str) -> re.Pattern[str]:
    if language == "zh":
        return re.compile(re.escape(word))
    body = r"\s+".join(re.escape(part) for part in word.split())
    return re.compile(rf"(?<![0-9A-Za-z]){body}(?![0-9A-Za-z])", re.IGNORECASE)


@functools.cache
def banned_words() -> tuple[BannedWord, ...]:
    """Every banned word from the packaged data file; ``ConfigurationError`` if it is unusable."""
    try:
        text = resources.files("kindly").joinpath(BANNED_WORDS_FILE).read_text(encoding="utf-8")
        raw: object = json.loads(text)
    except (OSError, ValueError) as err:
        raise ConfigurationError(f"cannot read kindly/{BANNED_WORDS_FILE}: {err}") from err
    categories = raw.get("categories") if isinstance(raw, dict) else None
    if not isinstance(categories, dict) or not categories:
        raise ConfigurationError(f"kindly/{BANNED_WORDS_FILE}: 'categories' must be a non-empty object")
    words: list[BannedWord] = []
    for category, by_language in categories.items():
        if not isinstance(by_language, dict):
            raise ConfigurationError(f"kindly/{BANNED_WORDS_FILE}: category {category!r} must be an object")
        for language, entries in by_language.items():
            if language not in ("en", "zh"):
                raise ConfigurationError(
                    f"kindly/{BANNED_WORDS_FILE}: category {category!r} has unknown language "
                    f"{language!r} (use 'en' or 'zh')"
                )
            if not isinstance(entries, list) or not all(
                isinstance(entry, str) and entry.strip() for entry in entries
            ):
                raise ConfigurationError(
                    f"kindly/{BANNED_WORDS_FILE}: {category}.{language} must be a list of non-empty strings"
                )
            for entry in entries:
                word = entry.strip()
                words.append(BannedWord(word, language, str(category), _compile(word, language)))
    return tuple(words)


def _has_keyword(body: str, keyword: str) -> bool:
    if not keyword.isascii():
        return keyword in body
    return re.search(rf"(?<![0-9A-Za-z]){re.escape(keyword)}(?![0-9A-Za-z])", body) is not None


def _required_parts(template: TemplateName, locale: str, sample: SampleValues) -> dict[str, str]:
    parts: dict[str, str] = {}
    if template in REMINDER_TEMPLATES:
        parts["the amount due"] = format_money(sample.amount_due, sample.currency, locale)
        parts["the due date"] = format_date(sample.due_date, locale)
        parts["the masked loan reference"] = sample.reference_masked
    if template in INSTALMENT_TEMPLATES:
        parts["the instalment's amount"] = format_money(sample.instalment.amount, sample.currency, locale)
        parts["the instalment's due date"] = format_date(sample.instalment.due, locale)
        parts["the masked loan reference"] = sample.reference_masked
    parts["the hotline"] = sample.hotline
    if sample.link is not None and carries_link(template):
        parts["the self-service link"] = sample.link
    return parts


def check_message(
    body: str,
    template: TemplateName,
    locale: str,
    *,
    sample: SampleValues,
    max_segments: int,
    consequences: Consequences | None = None,
) -> list[str]:
    """Every problem with one rendered message, in a sentence each; empty when it is compliant.

    ``body`` must have been rendered from ``sample.context(...)`` for ``template`` and ``locale``, with
    the link when the template ``carries_link``, and with ``consequences``: the facts the policy of the
    accounts that may get it declares (None: none), whose approved phrases alone it may state.
    """
    problems: list[str] = []
    if locale not in SUPPORTED_LOCALES or locale not in _OPT_OUT_WORDING:
        problems.append(f"no content rules for locale {locale!r}")

    for description, expected in _required_parts(template, locale, sample).items():
        if expected not in body:
            problems.append(f"missing {description} (expected {expected!r})")
    if template in _NEEDS_OPT_OUT:
        keywords = _OPT_OUT_WORDING.get(locale, ())
        if keywords and not any(_has_keyword(body, keyword) for keyword in keywords):
            wording = " or ".join(repr(keyword) for keyword in keywords)
            problems.append(f"missing opt-out wording (expected {wording})")

    scanned, stated = consequence_problems(body, template, locale, consequences, sample.days_past_due)
    problems.extend(stated)
    for banned in banned_words():
        if banned.pattern.search(scanned):
            problems.append(f"contains banned word {banned.word!r} ({banned.category.replace('_', ' ')})")

    for description, value in sample.personal_data().items():
        if value and value.lower() in body.lower():
            problems.append(f"shows personal data: the {description} {value!r}")
    # The visible tail of the reference may only appear inside the masked reference. The
    # deployment's own texts (brand, hotline, channels) are left out: they are not personal data.
    tail = sample.reference_masked.lstrip("*")
    rest = body.replace(sample.reference_masked, " ")
    for own_text in (sample.brand, sample.hotline, *sample.channels, sample.link or ""):
        if own_text:
            rest = rest.replace(own_text, " ")
    if tail and tail in rest and sample.account_id not in body:
        problems.append(
            f"shows the loan reference without its mask ({tail!r} outside {sample.reference_masked!r})"
        )

    segments = sms_segments(body)
    if segments > max_segments:
        problems.append(_too_long(body, segments, max_segments, sample.link))
    return problems


def _too_long(body: str, segments: int, max_segments: int, link: str | None) -> str:
    """The length problem, saying what the self-service link adds when the body shows it: a base URL
    is the deployment's own setting, and may be what has to change."""
    problem = f"too long: {segments} SMS segments, more than the limit of {max_segments}"
    if not link or link not in body:
        return problem
    without = sms_segments(body.replace(link, ""))
    if without <= max_segments:
        return (
            f"{problem}, because of the self-service link ({len(link)} characters, {link!r}): shorten "
            "public_base_url (COLLECTIONS_PUBLIC_BASE_URL), or the template"
        )
    return f"{problem} ({without} without the self-service link of {len(link)} characters)"

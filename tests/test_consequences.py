"""Consequences of being overdue as policy facts: a post-due reminder states penalty interest and credit
reporting only when the segment's policy declares them, only after the due date and only in the approved
words; the content check and the worker's start-up check hold every template (and registered text) to
that; the policy file names a bad field, and its ``"*"`` entry applies to every segment."""

from __future__ import annotations

import copy
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from kindly.domain.contract import SUPPORTED_LOCALES, TemplateName
from kindly.domain.messages.consequences import POST_DUE_TEMPLATES, Fact, approved_phrases
from kindly.domain.messages.content_check import SampleValues, banned_words, carries_link, check_message
from kindly.domain.messages.context import MessageContext, VariantKey
from kindly.domain.messages.links import sample_link
from kindly.domain.messages.registered_check import REGISTERED_DEMO_FILE
from kindly.domain.messages.rendering import MessageRenderer, build_template_environment
from kindly.domain.policy.consequences import RATE_MAX_CHARS, Consequences
from kindly.domain.policy.model import BUILT_IN_POLICIES, load_policies
from kindly.errors import ConfigurationError
from kindly.programs.composers import checked_composer, checked_renderer
from kindly.settings import Settings
from tests.conftest import ENCRYPTION_SETTINGS

HOTLINE = "400-800-1234"
SAMPLE = SampleValues(
    hotline=HOTLINE,
    brand="Kindly Finance",
    channels=("app: Me > Loans > Repay", "bank transfer to 6222-0000-0000-0001"),
    link=sample_link(Settings(_env_file=None).public_base_url),
)
LIMIT = Settings(_env_file=None).max_sms_segments
RATE = {"zh-CN": "日利率0.05%", "en-US": "0.05% a day"}
PENALTY = Consequences.model_validate({"penalty_interest": {"rate": RATE}})
CREDIT = Consequences(reports_to_credit_bureau=True)
BOTH = Consequences.model_validate({"penalty_interest": {"rate": RATE}, "reports_to_credit_bureau": True})
LONGEST = Consequences.model_validate(
    {
        "penalty_interest": {"rate": {locale: "9" * RATE_MAX_CHARS[locale] for locale in SUPPORTED_LOCALES}},
        "reports_to_credit_bureau": True,
    }
)
WORDS = {
    "zh-CN": {Fact.PENALTY_INTEREST: "罚息", Fact.CREDIT_BUREAU: "征信"},
    "en-US": {Fact.PENALTY_INTEREST: "penalty interest", Fact.CREDIT_BUREAU: "credit bureau"},
}


def renderer(override_dir: Path | None = None) -> MessageRenderer:
    return MessageRenderer(
        build_template_environment(override_dir),
        brand=SAMPLE.brand,
        hotline=HOTLINE,
        repayment_channels=SAMPLE.channels,
    )


def render(template: TemplateName, locale: str, facts: Consequences | None, days_past_due: int = 30) -> str:
    context = MessageContext(
        amount_due=Decimal("1500.00"),
        currency="CNY",
        due_date=dt.date(2026, 12, 15),
        reference_masked="****4321",
        days_past_due=days_past_due,
        consequences=facts,
        link=SAMPLE.link if carries_link(template) else None,
    )
    return renderer().render(template, locale, context)


def sample_body(template: TemplateName, locale: str, facts: Consequences | None) -> str:
    """The packaged template rendered with the sample account and ``facts``."""
    context = SAMPLE.context(with_promise=False, with_link=carries_link(template), consequences=facts)
    return renderer().render(template, locale, context)


def check(body: str, template: TemplateName, locale: str, facts: Consequences | None) -> list[str]:
    return check_message(body, template, locale, sample=SAMPLE, max_segments=LIMIT, consequences=facts)


def policy_file(tmp_path: Path, content: dict[str, Any]) -> Path:
    path = tmp_path / "policies.json"
    path.write_text(json.dumps(content, ensure_ascii=False), encoding="utf-8")
    return path


def override(root: Path, locale: str, template: TemplateName, edit: tuple[str, str]) -> None:
    """The packaged template, with one text replaced, as an operator's override."""
    packaged = (
        Path(__file__).parent.parent / "kindly/domain/messages/templates" / locale / f"{template}.txt.j2"
    )
    text = packaged.read_text(encoding="utf-8")
    assert edit[0] in text
    folder = root / locale
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{template}.txt.j2").write_text(text.replace(*edit), encoding="utf-8")


# --- the content check, fact by fact ----------------------------------------------------------------


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize(
    ("facts", "stated"),
    [
        (None, set()),
        (PENALTY, {Fact.PENALTY_INTEREST}),
        (CREDIT, {Fact.CREDIT_BUREAU}),
        (BOTH, {Fact.PENALTY_INTEREST, Fact.CREDIT_BUREAU}),
    ],
)
def test_a_post_due_reminder_states_exactly_the_declared_facts_and_passes(
    locale: str, facts: Consequences | None, stated: set[Fact]
) -> None:
    for template in POST_DUE_TEMPLATES:
        body = sample_body(template, locale, facts)
        assert check(body, template, locale, facts) == [], template
        for fact, word in WORDS[locale].items():
            assert (word in body) == (fact in stated), (template, fact)
    if facts is not None and facts.penalty_interest is not None:
        assert RATE[locale] in sample_body(TemplateName.FOLLOW_UP, locale, facts)


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_a_lender_that_does_not_report_cannot_say_it_does(locale: str) -> None:
    body = sample_body(TemplateName.FOLLOW_UP, locale, BOTH)
    problems = check(body, TemplateName.FOLLOW_UP, locale, PENALTY)
    assert "states reporting to the credit bureau, which the policy does not declare" in problems
    assert f"contains banned word {WORDS[locale][Fact.CREDIT_BUREAU]!r} (consequence)" in problems
    problems = check(body, TemplateName.FOLLOW_UP, locale, None)
    assert "states penalty interest, which the policy does not declare" in problems


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_a_declared_fact_a_regular_reminder_leaves_out_fails(locale: str) -> None:
    for template in (TemplateName.FIRST_OVERDUE, TemplateName.FOLLOW_UP, TemplateName.GENTLE_REMINDER):
        body = sample_body(template, locale, None)
        [problem] = check(body, template, locale, CREDIT)
        assert problem.startswith(
            "missing the consequence the policy declares, reporting to the credit bureau"
        )
    # The firmer and the offering messages may state the facts, and need not.
    body = sample_body(TemplateName.INSTALMENT_OFFER, locale, None)
    assert check(body, TemplateName.INSTALMENT_OFFER, locale, BOTH) == []


@pytest.mark.parametrize(
    ("locale", "own_words", "word"),
    [
        ("en-US", "Late fees apply.", "late fees"),
        ("en-US", "This will hurt your credit score.", "credit score"),
        ("zh-CN", "逾期将产生滞纳金。", "滞纳金"),
        ("zh-CN", "逾期将影响您的信用报告。", "信用报告"),
    ],
)
def test_a_consequence_in_other_words_fails_even_when_declared(
    locale: str, own_words: str, word: str
) -> None:
    body = sample_body(TemplateName.FOLLOW_UP, locale, BOTH).replace(
        SAMPLE.hotline, f"{SAMPLE.hotline}. {own_words}"
    )
    assert f"contains banned word {word!r} (consequence)" in check(body, TemplateName.FOLLOW_UP, locale, BOTH)


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_a_wrong_rate_is_not_the_approved_phrase(locale: str) -> None:
    other = Consequences.model_validate(
        {"penalty_interest": {"rate": {"zh-CN": "日利率0.1%", "en-US": "0.1% a day"}}}
    )
    body = sample_body(TemplateName.FOLLOW_UP, locale, other)
    problems = check(body, TemplateName.FOLLOW_UP, locale, PENALTY)
    assert "states penalty interest other than in the approved phrase with the policy's rate" in problems
    assert any(
        problem.startswith("missing the consequence the policy declares, penalty interest")
        for problem in problems
    )


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_a_pre_due_message_can_never_state_a_consequence(locale: str) -> None:
    phrase = approved_phrases()[locale][Fact.CREDIT_BUREAU]
    for template in (TemplateName.PRE_DUE, TemplateName.DUE_TODAY, TemplateName.INSTALMENT_DUE):
        body = sample_body(template, locale, BOTH).replace(SAMPLE.hotline, f"{SAMPLE.hotline} {phrase}")
        problems = check(body, template, locale, BOTH)
        assert (
            "states reporting to the credit bureau, which only a reminder after the due date may state"
            in problems
        )


def test_the_approved_phrases_hold_no_other_banned_word() -> None:
    others = [word for word in banned_words() if word.category != "consequence"]
    for locale in SUPPORTED_LOCALES:
        for phrase in approved_phrases()[locale].values():
            text = phrase.replace("{rate}", RATE[locale])
            assert [word.word for word in others if word.pattern.search(text)] == [], phrase
    consequence_words = {word.word for word in banned_words() if word.category == "consequence"}
    assert {"征信", "credit record", "罚息", "penalty interest"} <= consequence_words
    assert (
        not {word.word for word in banned_words() if word.category == "invented_consequence"}
        & consequence_words
    )


# --- never before the due date ----------------------------------------------------------------------


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_the_phrases_never_appear_before_the_due_date(locale: str) -> None:
    for template in (TemplateName.PRE_DUE, TemplateName.DUE_TODAY):
        body = render(template, locale, BOTH, days_past_due=0)
        assert not any(word in body for word in WORDS[locale].values()), body
    # A post-due template rendered on the due day itself states nothing; a day later it does.
    on_the_day = render(TemplateName.FOLLOW_UP, locale, BOTH, days_past_due=0)
    assert not any(word in on_the_day for word in WORDS[locale].values()), on_the_day
    next_day = render(TemplateName.FOLLOW_UP, locale, BOTH, days_past_due=1)
    assert all(word in next_day for word in WORDS[locale].values()), next_day


# --- the worker's start-up check ----------------------------------------------------------------------


def test_the_packaged_templates_fit_with_the_longest_facts_and_default_settings(tmp_path: Path) -> None:
    facts = LONGEST.model_dump(mode="json")
    checked_renderer(
        Settings(_env_file=None, policy_file=policy_file(tmp_path, {"*": {"consequences": facts}}))
    )


def test_the_start_up_check_stops_a_template_that_claims_what_the_segment_does_not_declare(
    tmp_path: Path,
) -> None:
    """The lender charges penalty interest in one segment and reports nowhere: an operator's follow-up that
    hard-codes the credit phrase stops the worker, naming the template, the locale, the segments and why."""
    phrase = approved_phrases()["zh-CN"][Fact.CREDIT_BUREAU]
    override(
        tmp_path / "templates",
        "zh-CN",
        TemplateName.FOLLOW_UP,
        ("{{ consequences }}", "{{ consequences }}" + phrase),
    )
    policies = policy_file(tmp_path, {"vip": {"consequences": PENALTY.model_dump(mode="json")}})
    settings = Settings(_env_file=None, policy_file=policies, template_dir=tmp_path / "templates")
    with pytest.raises(ConfigurationError) as refused:
        checked_renderer(settings)
    message = str(refused.value)
    assert message.startswith("1 message template(s) cannot be rendered or fail the content check")
    assert (
        "template follow_up for locale zh-CN: states reporting to the credit bureau, which the policy does "
        "not declare"
    ) in message
    assert "template follow_up for locale zh-CN: contains banned word '征信' (consequence)" in message


def test_the_start_up_check_stops_a_reminder_that_leaves_out_a_declared_fact(tmp_path: Path) -> None:
    override(tmp_path / "templates", "en-US", TemplateName.FIRST_OVERDUE, ("{{ consequences }}", ""))
    policies = policy_file(tmp_path, {"*": {"consequences": CREDIT.model_dump(mode="json")}})
    settings = Settings(_env_file=None, policy_file=policies, template_dir=tmp_path / "templates")
    with pytest.raises(
        ConfigurationError,
        match=r"template first_overdue for locale en-US \(segment\(s\) standard, "
        r"high_risk, us_standard: reports to the credit bureau\): missing the consequence",
    ):
        checked_renderer(settings)
    # Without the fact the same template is fine.
    checked_renderer(Settings(_env_file=None, template_dir=tmp_path / "templates"))


def registered_settings(provider: str, path: Path, policies: Path) -> Settings:
    return Settings(
        _env_file=None,
        sms_provider=provider,
        registered_templates_file=path,
        policy_file=policies,
        **ENCRYPTION_SETTINGS,
    )


def test_registered_texts_pass_the_same_check_with_each_segments_facts(tmp_path: Path) -> None:
    """A lender serving zh-CN whose "reporting" segment reports to the credit bureau registers that
    segment's overdue reminders as a variant, the approved phrase fixed in the text; the default texts,
    which no reporting account takes for those reminders, stay as they are."""
    demo: dict[str, Any] = json.loads(REGISTERED_DEMO_FILE.read_text(encoding="utf-8"))
    for locales in demo["aliyun"]["templates"].values():
        del locales["en-US"]
    policies = policy_file(tmp_path, {"reporting": {"consequences": CREDIT.model_dump(mode="json")}})
    path = tmp_path / "registered.json"
    path.write_text(json.dumps(demo, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(ConfigurationError) as refused:
        checked_composer(registered_settings("aliyun", path, policies))
    where = (
        "template first_overdue for locale zh-CN (aliyun SMS_400100003) (segment(s) reporting: reports to "
        "the credit bureau)"
    )
    assert f"{where}: missing the consequence the policy declares, reporting to the credit bureau" in str(
        refused.value
    )
    phrase = approved_phrases()["zh-CN"][Fact.CREDIT_BUREAU]
    variant: dict[str, Any] = {}
    for template, before in (("first_overdue", "还款方式："), ("follow_up", "请方便时还款：")):
        entry = copy.deepcopy(demo["aliyun"]["templates"][template]["zh-CN"])
        assert before in entry["text"]
        entry["text"] = entry["text"].replace("尚未收到还款，", "").replace(before, phrase + before, 1)
        entry["code"] += "9"
        variant[template] = {"zh-CN": entry}
    demo["aliyun"]["variants"] = {"segments/reporting": variant}
    path.write_text(json.dumps(demo, ensure_ascii=False), encoding="utf-8")
    composer = checked_composer(registered_settings("aliyun", path, policies))
    # The same texts for a segment that does not report: refused.
    demo["aliyun"]["variants"] = {"segments/standard": variant}
    path.write_text(json.dumps(demo, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(
        ConfigurationError, match="states reporting to the credit bureau, which the policy does not declare"
    ):
        checked_composer(registered_settings("aliyun", path, policies))
    context = MessageContext(
        amount_due=Decimal("1500.00"),
        currency="CNY",
        due_date=dt.date(2026, 12, 15),
        reference_masked="****4321",
        days_past_due=9,
        link=SAMPLE.link,
        consequences=CREDIT,
        variant_key=VariantKey(segment="reporting"),
    )
    composed = composer.compose(TemplateName.FOLLOW_UP, "zh-CN", context)
    assert composed.variant == "segments/reporting" and phrase in composed.body
    standard = context.model_copy(
        update={"variant_key": VariantKey(segment="standard"), "consequences": None}
    )
    composed = composer.compose(TemplateName.FOLLOW_UP, "zh-CN", standard)
    assert composed.variant == "default" and phrase not in composed.body


# --- the policy file ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("consequences", "field", "why"),
    [
        (
            {"penalty_interest": {"rate": {"zh-CN": "日利率0.05%"}}},
            "consequences.penalty_interest.rate",
            "missing en-US",
        ),
        (
            {"penalty_interest": {"rate": {"zh-CN": "日利率0.05%", "en-US": " "}}},
            "consequences.penalty_interest.rate.en-US",
            "at least 1 character",
        ),
        (
            {"penalty_interest": {"rate": {"zh-CN": "日利率为百分之零点零五每日", "en-US": "0.05% a day"}}},
            "consequences.penalty_interest.rate",
            "zh-CN: '日利率为百分之零点零五每日' is longer than 10 characters",
        ),
        (
            {"penalty_interest": {"rate": {"zh-CN": "日利率{0.05%}", "en-US": "0.05% a day"}}},
            "consequences.penalty_interest.rate.zh-CN",
            "without braces",
        ),
        ({"penalty_interest": {}}, "consequences.penalty_interest.rate", "Field required"),
        (
            {"penalty_interest": {"rate": RATE, "grace_days": 3}},
            "consequences.penalty_interest.grace_days",
            "Extra inputs",
        ),
        ({"reports_to_bureau": True}, "consequences.reports_to_bureau", "Extra inputs"),
        ({"reports_to_credit_bureau": "sometimes"}, "consequences.reports_to_credit_bureau", "valid boolean"),
    ],
)
def test_a_bad_consequence_in_the_policy_file_is_refused_naming_the_field(
    tmp_path: Path, consequences: dict[str, Any], field: str, why: str
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_policies(policy_file(tmp_path, {"vip": {"consequences": consequences}}))
    message = str(refused.value)
    assert "segment 'vip'" in message and f"\n{field}\n" in message and why in message


def test_consequences_default_to_none() -> None:
    for policy in BUILT_IN_POLICIES.values():
        assert policy.consequences == Consequences() and not policy.consequences.declared


def test_the_star_entry_applies_to_every_segment_before_its_own(tmp_path: Path) -> None:
    path = policy_file(
        tmp_path,
        {
            "*": {"consequences": PENALTY.model_dump(mode="json"), "window_start": "10:00:00"},
            "vip": {"follow_up_interval_days": 14},
            "gentle": {"consequences": BOTH.model_dump(mode="json")},
            "standard": {"window_start": "09:30:00"},
        },
    )
    policies = load_policies(path)
    assert set(policies) == {*BUILT_IN_POLICIES, "vip"}
    assert (
        policies["high_risk"].consequences == PENALTY and policies["high_risk"].route_straight_to_specialist
    )
    assert policies["us_standard"].consequences == PENALTY and policies["us_standard"].regime == "us"
    assert policies["vip"].consequences == PENALTY and policies["vip"].follow_up_interval_days == 14
    assert policies["vip"].window_start == dt.time(10, 0), "a new segment: built-in standard, '*', its own"
    assert policies["gentle"].consequences == BOTH and policies["gentle"].tone == "gentle"
    assert policies["standard"].window_start == dt.time(9, 30), "the segment's own override comes last"


def test_a_bad_star_entry_is_refused_naming_where(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigurationError, match=r"(?s)'\*' applied to segment 'us_standard': .*legal window"
    ):
        load_policies(policy_file(tmp_path, {"*": {"window_end": "21:30:00"}}))
    with pytest.raises(
        ConfigurationError, match=r"segment '\*': continue_as_new_after_events is set by the worker"
    ):
        load_policies(policy_file(tmp_path, {"*": {"continue_as_new_after_events": 500}}))
    with pytest.raises(ConfigurationError, match=r"segment '\*' must be an object"):
        load_policies(policy_file(tmp_path, {"*": [1]}))

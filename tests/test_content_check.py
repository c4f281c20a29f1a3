"""The content check: every shipped template passes it in every locale, and an operator template
that threatens, leaves out the hotline or the self-service link, runs long or shows an unmasked reference
stops the worker, as does a public base URL too long for the reminders to carry."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kindly.domain.contract import SUPPORTED_LOCALES, TemplateName
from kindly.domain.messages.content_check import SampleValues, banned_words, carries_link, check_message
from kindly.domain.messages.formatting import sms_segments
from kindly.domain.messages.links import TOKEN_LENGTH, sample_link
from kindly.domain.messages.rendering import MessageRenderer, build_template_environment
from kindly.errors import ConfigurationError
from kindly.programs.composers import checked_renderer
from kindly.settings import Settings

BRAND = "Kindly Finance"
HOTLINE = "400-800-1234"
CHANNELS = ("app: Me > Loans > Repay", "bank transfer to 6222-0000-0000-0001")
BASE_URL = "https://pay.lender.example"
LIMIT = Settings(_env_file=None).max_sms_segments
SAMPLE = SampleValues(hotline=HOTLINE, brand=BRAND, channels=CHANNELS, link=sample_link(BASE_URL))

# Compliant reminder bodies an operator might write; tests add one fault at a time.
REMINDER = {
    "en-US": (
        "[{{ brand }}] Dear customer, {{ amount }} on loan {{ reference }} is due on {{ due_date }}. "
        "{EXTRA} Questions? Call {{ hotline }}. Reply STOP to opt out. {{ link }}"
    ),
    "zh-CN": (
        "【{{ brand }}】尊敬的客户，您的借款（编号{{ reference }}）应还{{ amount }}，"
        "将于{{ due_date }}到期。{EXTRA}如有疑问请致电{{ hotline }}。回复TD退订。{{ link }}"
    ),
}


def reminder(locale: str, extra: str = "") -> str:
    return REMINDER[locale].replace("{EXTRA}", extra)


def make_renderer(override_dir: Path | None = None) -> MessageRenderer:
    return MessageRenderer(
        build_template_environment(override_dir), brand=BRAND, hotline=HOTLINE, repayment_channels=CHANNELS
    )


def write_override(root: Path, locale: str, template: TemplateName, text: str) -> None:
    folder = root / locale
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{template}.txt.j2").write_text(text, encoding="utf-8")


def check_all(renderer: MessageRenderer, max_segments: int = LIMIT, base_url: str = BASE_URL) -> None:
    renderer.check_all(max_segments=max_segments, public_base_url=base_url)


def check_all_message(override_dir: Path, max_segments: int = LIMIT) -> str:
    with pytest.raises(ConfigurationError) as info:
        check_all(make_renderer(override_dir), max_segments)
    return str(info.value)


# --- shipped templates ----------------------------------------------------------------------------


@pytest.mark.parametrize("with_promise", [False, True])
@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("template", list(TemplateName))
def test_every_shipped_template_passes(template: TemplateName, locale: str, with_promise: bool) -> None:
    context = SAMPLE.context(with_promise=with_promise, with_link=carries_link(template))
    body = make_renderer().render(template, locale, context)
    assert check_message(body, template, locale, sample=SAMPLE, max_segments=LIMIT) == []


def test_shipped_templates_pass_with_default_settings() -> None:
    checked_renderer(Settings(_env_file=None))


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_compliant_override_passes(tmp_path: Path, locale: str) -> None:
    write_override(tmp_path, locale, TemplateName.PRE_DUE, reminder(locale))
    check_all(make_renderer(tmp_path))


# --- failing overrides ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "extra", "word"),
    [
        ("en-US", "Pay now or we will sue you.", "sue"),
        ("en-US", "We will tell Your  Employer.", "your employer"),
        ("zh-CN", "否则我们将依法起诉。", "起诉"),
        ("zh-CN", "逾期将通知您的家人。", "家人"),
    ],
)
def test_banned_word_fails_check_all(tmp_path: Path, locale: str, extra: str, word: str) -> None:
    write_override(tmp_path, locale, TemplateName.FOLLOW_UP, reminder(locale, extra))
    message = check_all_message(tmp_path)
    assert f"template follow_up for locale {locale}: contains banned word {word!r}" in message
    assert message.startswith("1 message template(s)")


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_missing_hotline_fails_check_all(tmp_path: Path, locale: str) -> None:
    write_override(tmp_path, locale, TemplateName.DUE_TODAY, reminder(locale).replace("{{ hotline }}", ""))
    message = check_all_message(tmp_path)
    assert f"template due_today for locale {locale}: missing the hotline (expected '{HOTLINE}')" in message


def test_missing_hotline_in_opt_out_confirmation_fails(tmp_path: Path) -> None:
    write_override(tmp_path, "zh-CN", TemplateName.OPT_OUT_CONFIRMATION, "【{{ brand }}】您已退订。")
    message = check_all_message(tmp_path)
    assert "template opt_out_confirmation for locale zh-CN: missing the hotline" in message


def test_help_without_opt_out_fails(tmp_path: Path) -> None:
    write_override(tmp_path, "en-US", TemplateName.HELP, "[{{ brand }}] Call {{ hotline }}. Reply stop.")
    message = check_all_message(tmp_path)
    assert "template help for locale en-US: missing opt-out wording (expected 'STOP')" in message


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_too_long_template_fails_with_its_segment_count(tmp_path: Path, locale: str) -> None:
    padding = ("Thank you for banking with us. " if locale == "en-US" else "感谢您的信任。") * 30
    text = reminder(locale, padding)
    write_override(tmp_path, locale, TemplateName.PRE_DUE, text)
    context = SAMPLE.context(with_promise=False, with_link=True)
    body = make_renderer(tmp_path).render(TemplateName.PRE_DUE, locale, context)
    segments, without_link = sms_segments(body), sms_segments(body.replace(SAMPLE.link or "", ""))
    assert segments >= without_link > LIMIT
    message = check_all_message(tmp_path)
    assert (
        f"template pre_due for locale {locale}: too long: {segments} SMS segments, more than the limit of "
        f"{LIMIT} ({without_link} without the self-service link of {len(BASE_URL) + 3 + TOKEN_LENGTH} "
        "characters)"
    ) in message


def test_segment_limit_is_configurable() -> None:
    with pytest.raises(ConfigurationError, match=r"too long: 2 SMS segments, more than the limit of 1"):
        check_all(make_renderer(), max_segments=1)


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_unmasked_reference_fails_check_all(tmp_path: Path, locale: str) -> None:
    unmasked = reminder(locale).replace("{{ reference }}", '{{ reference | replace("*", "") }}')
    write_override(tmp_path, locale, TemplateName.FIRST_OVERDUE, unmasked)
    message = check_all_message(tmp_path)
    assert f"template first_overdue for locale {locale}: missing the masked loan reference" in message
    assert "shows the loan reference without its mask ('4321' outside '****4321')" in message


def test_reference_without_mask_fails_even_where_not_required(tmp_path: Path) -> None:
    write_override(
        tmp_path,
        "en-US",
        TemplateName.HELP,
        "[{{ brand }}] Loan no. {{ reference[4:] }}: call {{ hotline }}. Reply STOP to opt out.",
    )
    message = check_all_message(tmp_path)
    assert "template help for locale en-US: shows the loan reference without its mask" in message


def test_problems_in_both_branches_are_listed_once(tmp_path: Path) -> None:
    write_override(
        tmp_path,
        "en-US",
        TemplateName.BROKEN_PROMISE,
        reminder("en-US", "{% if promise_date %}Or we go to court.{% endif %} Shame on you."),
    )
    message = check_all_message(tmp_path)
    assert message.count("contains banned word 'shame'") == 1
    assert (
        "template broken_promise for locale en-US (with a promise date): contains banned word 'court'"
        in message
    )


# --- the self-service link ------------------------------------------------------------------------


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_a_reminder_without_the_link_fails(tmp_path: Path, locale: str) -> None:
    write_override(tmp_path, locale, TemplateName.FOLLOW_UP, reminder(locale).replace("{{ link }}", ""))
    message = check_all_message(tmp_path)
    assert (
        f"template follow_up for locale {locale}: missing the self-service link "
        f"(expected '{BASE_URL}/p/{'A' * TOKEN_LENGTH}')"
    ) in message
    assert message.startswith("1 message template(s)")


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_service_messages_are_checked_without_a_link(locale: str) -> None:
    for template in (TemplateName.HELP, TemplateName.OPT_OUT_CONFIRMATION):
        assert not carries_link(template)
        body = make_renderer().render(template, locale, SAMPLE.context(with_promise=False))
        assert "/p/" not in body
        assert check_message(body, template, locale, sample=SAMPLE, max_segments=LIMIT) == []


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_the_link_counts_in_the_length(locale: str) -> None:
    """A reminder that fits its limit without the link but not with it fails, and the problem says the
    link (the deployment's base URL) is what makes it too long."""
    renderer = make_renderer()
    without = renderer.render(TemplateName.PRE_DUE, locale, SAMPLE.context(with_promise=False))
    body = renderer.render(TemplateName.PRE_DUE, locale, SAMPLE.context(with_promise=False, with_link=True))
    limit = sms_segments(without)
    assert sms_segments(body) > limit
    [problem] = check_message(body, TemplateName.PRE_DUE, locale, sample=SAMPLE, max_segments=limit)
    assert problem == (
        f"too long: {sms_segments(body)} SMS segments, more than the limit of {limit}, because of the "
        f"self-service link ({len(SAMPLE.link or '')} characters, {SAMPLE.link!r}): shorten public_base_url "
        "(COLLECTIONS_PUBLIC_BASE_URL), or the template"
    )


def test_a_base_url_too_long_for_the_reminders_stops_the_worker() -> None:
    """At start, with the settings' own limit: every Chinese reminder breaks it, and the error names the
    setting and each template; English reminders, with more room, still pass."""
    long_url = "https://" + "pay-" * 12 + "lender.example"
    assert len(long_url) == 70
    with pytest.raises(ConfigurationError) as info:
        checked_renderer(Settings(_env_file=None, public_base_url=long_url))
    message = str(info.value)
    reminders = [template for template in TemplateName if carries_link(template)]
    assert message.startswith(f"{len(reminders)} message template(s)")
    for template in reminders:
        assert re.search(
            rf"template {template} for locale zh-CN( \(with a promise date\))?: too long: ", message
        )
    assert "public_base_url" in message and long_url in message
    assert "for locale en-US" not in message
    # The link is the whole difference: the same settings with the default base URL start.
    checked_renderer(Settings(_env_file=None))


def test_a_base_url_is_not_mistaken_for_the_loan_reference() -> None:
    """The sample reference ends in 4321; a base URL with those digits is the deployment's own text."""
    check_all(make_renderer(), base_url="http://127.0.0.1:4321")


# --- check_message --------------------------------------------------------------------------------


def compliant_body(locale: str) -> str:
    context = SAMPLE.context(with_promise=False, with_link=True)
    return make_renderer().render(TemplateName.FOLLOW_UP, locale, context)


def test_english_words_match_whole_words_case_insensitively() -> None:
    body = compliant_body("en-US")
    clean = body + " We will look into any issue and treat you with courtesy."
    assert check_message(clean, TemplateName.FOLLOW_UP, "en-US", sample=SAMPLE, max_segments=9) == []
    for text in ("We will SUE.", "Police!", "a DEADBEAT", "your\nfamily"):
        problems = check_message(
            body + " " + text, TemplateName.FOLLOW_UP, "en-US", sample=SAMPLE, max_segments=9
        )
        assert len(problems) == 1 and problems[0].startswith("contains banned word"), text


def test_banned_words_are_checked_in_every_locale() -> None:
    problems = check_message(
        compliant_body("en-US") + " 老赖", TemplateName.FOLLOW_UP, "en-US", sample=SAMPLE, max_segments=9
    )
    assert problems == ["contains banned word '老赖' (insult)"]


def test_chinese_opt_out_accepts_either_wording() -> None:
    body = compliant_body("zh-CN")
    assert "回复TD退订" in body
    for wording in ("回复TD", "回复退订"):
        variant = body.replace("回复TD退订", wording)
        assert check_message(variant, TemplateName.FOLLOW_UP, "zh-CN", sample=SAMPLE, max_segments=9) == []
    without = body.replace("回复TD退订", "")
    assert check_message(without, TemplateName.FOLLOW_UP, "zh-CN", sample=SAMPLE, max_segments=9) == [
        "missing opt-out wording (expected '退订' or 'TD')"
    ]


def test_reminders_need_amount_due_date_and_reference() -> None:
    problems = check_message(
        f"Dear customer, call {HOTLINE}. Reply STOP to opt out.",
        TemplateName.PRE_DUE,
        "en-US",
        sample=SAMPLE,
        max_segments=3,
    )
    assert problems == [
        "missing the amount due (expected 'CNY 123,456.78')",
        "missing the due date (expected 'Dec 15, 2026')",
        "missing the masked loan reference (expected '****4321')",
        f"missing the self-service link (expected '{BASE_URL}/p/{'A' * TOKEN_LENGTH}')",
    ]


@pytest.mark.parametrize(
    ("leak", "description"),
    [
        ("Zhang Wei", "customer name"),
        ("+8613800138000", "phone number"),
        ("LN-2026-000154321", "full account id"),
    ],
)
def test_personal_data_fails(leak: str, description: str) -> None:
    body = compliant_body("en-US") + " " + leak
    problems = check_message(body, TemplateName.FOLLOW_UP, "en-US", sample=SAMPLE, max_segments=9)
    assert any(p.startswith(f"shows personal data: the {description}") for p in problems), problems


def test_unknown_locale_is_a_problem() -> None:
    problems = check_message(
        compliant_body("en-US"), TemplateName.HELP, "fr-FR", sample=SAMPLE, max_segments=9
    )
    assert problems == ["no content rules for locale 'fr-FR'"]


def test_banned_word_list_covers_the_signed_off_words() -> None:
    by_language: dict[str, set[str]] = {"en": set(), "zh": set()}
    for banned in banned_words():
        by_language[banned.language].add(banned.word)
    required_en = {"arrest", "police", "jail", "prison", "lawsuit", "sue", "court", "criminal", "fraud"}
    required_en |= {"seize", "garnish", "blacklist", "shame", "deadbeat", "your employer", "your family"}
    required_zh = {"起诉", "法院", "坐牢", "拘留", "公安", "警察", "黑名单", "曝光", "通讯录", "家人"}
    required_zh |= {"单位", "老赖", "诈骗", "刑事"}
    assert required_en <= by_language["en"]
    assert required_zh <= by_language["zh"]
    assert all(re.fullmatch(r"[a-z ]+", word) for word in by_language["en"])

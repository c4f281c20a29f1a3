"""Message rendering: every packaged template renders cleanly, shows what a customer needs, never
shows personal data, and a broken operator template fails loudly before anything is sent."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from kindly.domain.contract import SUPPORTED_LOCALES, TemplateName
from kindly.domain.masking import mask_reference
from kindly.domain.messages.content_check import carries_link
from kindly.domain.messages.context import InstalmentShown, MessageContext
from kindly.domain.messages.formatting import format_date, format_money, sms_segments
from kindly.domain.messages.links import TOKEN_LENGTH
from kindly.domain.messages.rendering import MessageRenderer, build_template_environment
from kindly.errors import ConfigurationError, TemplateError
from kindly.settings import Settings

BRAND = "Kindly Finance"
HOTLINE = "400-800-1234"
CHANNELS = ["app: Me > Loans > Repay", "bank transfer to 6222-0000-0000-0001"]
ACCOUNT_ID = "LN-2026-000154321"
SAMPLE_NAME = "Zhang Wei"
SAMPLE_PHONE = "+8613800138000"

REMINDERS = (
    TemplateName.PRE_DUE,
    TemplateName.DUE_TODAY,
    TemplateName.FIRST_OVERDUE,
    TemplateName.FOLLOW_UP,
    TemplateName.BROKEN_PROMISE,
)
OPT_OUT_WORDING = {"en-US": "Reply STOP to opt out", "zh-CN": "回复TD退订"}
SALUTATION = {"en-US": f"[{BRAND}] Dear customer,", "zh-CN": f"【{BRAND}】尊敬的客户，"}
EXPECTED = {
    "en-US": {"amount": "CNY 1,234.50", "due": "Dec 15, 2026", "promise": "Dec 20, 2026"},
    "zh-CN": {"amount": "1,234.50元", "due": "2026年12月15日", "promise": "2026年12月20日"},
}
ALL_CASES = [(t, loc) for loc in SUPPORTED_LOCALES for t in TemplateName]
DEFAULTS = Settings(_env_file=None)
LINK = f"https://pay.lender.example/p/{'Ab3_-x' * 3}Qw9z"
LINK_LINE = {"en-US": f"Pay, promise or choose a plan: {LINK}", "zh-CN": f"还款、承诺还款或申请分期：{LINK}"}
LABELLED = (*REMINDERS, TemplateName.GENTLE_REMINDER, TemplateName.INSTALMENT_OFFER)
"""The reminders whose link line asks the customer to pay, promise or choose a plan."""


def make_context(
    promise_date: dt.date | None = None, days_past_due: int = 5, link: str | None = None
) -> MessageContext:
    return MessageContext(
        amount_due=Decimal("1234.5"),
        currency="CNY",
        due_date=dt.date(2026, 12, 15),
        reference_masked=mask_reference(ACCOUNT_ID),
        days_past_due=days_past_due,
        promise_date=promise_date,
        link=link,
        # The plan's instalment, for ``instalment_due``: the same amount and date, so that every
        # template is held to showing them.
        instalment=InstalmentShown(number=2, count=3, amount=Decimal("1234.5"), due=dt.date(2026, 12, 15)),
    )


def check_all(renderer: MessageRenderer) -> None:
    """The worker's check with the default settings' limit and base URL."""
    renderer.check_all(max_segments=DEFAULTS.max_sms_segments, public_base_url=DEFAULTS.public_base_url)


def make_renderer(override_dir: Path | None = None) -> MessageRenderer:
    return MessageRenderer(
        build_template_environment(override_dir),
        brand=BRAND,
        hotline=HOTLINE,
        repayment_channels=CHANNELS,
    )


def write_override(root: Path, locale: str, template: TemplateName, text: str) -> None:
    folder = root / locale
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{template}.txt.j2").write_text(text, encoding="utf-8")


@pytest.fixture
def renderer() -> MessageRenderer:
    return make_renderer()


# --- packaged templates ---------------------------------------------------------------------------


@pytest.mark.parametrize(("template", "locale"), ALL_CASES)
def test_every_template_shows_amount_hotline_and_brand(
    renderer: MessageRenderer, template: TemplateName, locale: str
) -> None:
    body = renderer.render(template, locale, make_context())
    assert body.startswith(SALUTATION[locale])
    assert EXPECTED[locale]["amount"] in body
    assert HOTLINE in body


@pytest.mark.parametrize(("template", "locale"), ALL_CASES)
def test_output_is_one_clean_paragraph(
    renderer: MessageRenderer, template: TemplateName, locale: str
) -> None:
    body = renderer.render(template, locale, make_context(dt.date(2026, 12, 20)))
    assert "\n" not in body
    assert "  " not in body
    assert body == body.strip()
    assert "{" not in body and "}" not in body
    if locale == "zh-CN":
        # Chinese sentences join without spaces; only the ASCII channel and brand text has them.
        assert "。 " not in body and "， " not in body


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("template", REMINDERS)
def test_reminders_show_due_date_reference_channels_and_opt_out(
    renderer: MessageRenderer, template: TemplateName, locale: str
) -> None:
    body = renderer.render(template, locale, make_context())
    assert EXPECTED[locale]["due"] in body
    assert "****4321" in body
    assert OPT_OUT_WORDING[locale] in body
    for channel in CHANNELS:
        assert channel in body


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_help_gives_hotline_and_how_to_opt_out(renderer: MessageRenderer, locale: str) -> None:
    body = renderer.render(TemplateName.HELP, locale, make_context())
    assert BRAND in body
    assert HOTLINE in body
    assert OPT_OUT_WORDING[locale] in body


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_opt_out_confirmation_confirms_and_gives_hotline(renderer: MessageRenderer, locale: str) -> None:
    body = renderer.render(TemplateName.OPT_OUT_CONFIRMATION, locale, make_context())
    assert HOTLINE in body
    assert ("no more SMS reminders" if locale == "en-US" else "不再向您发送短信提醒") in body
    assert OPT_OUT_WORDING[locale] not in body


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_broken_promise_mentions_promise_date_only_when_known(renderer: MessageRenderer, locale: str) -> None:
    with_date = renderer.render(TemplateName.BROKEN_PROMISE, locale, make_context(dt.date(2026, 12, 20)))
    without = renderer.render(TemplateName.BROKEN_PROMISE, locale, make_context())
    assert EXPECTED[locale]["promise"] in with_date
    assert EXPECTED[locale]["promise"] not in without
    assert "None" not in without


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
def test_broken_promise_is_firm_but_never_threatening(renderer: MessageRenderer, locale: str) -> None:
    body = renderer.render(TemplateName.BROKEN_PROMISE, locale, make_context(dt.date(2026, 12, 20)))
    banned = ("legal", "court", "lawyer", "police", "credit record", "法律", "起诉", "法院", "征信")
    for word in banned:
        assert word not in body.lower()


def test_follow_up_pluralises_days(renderer: MessageRenderer) -> None:
    one = renderer.render(TemplateName.FOLLOW_UP, "en-US", make_context(days_past_due=1))
    many = renderer.render(TemplateName.FOLLOW_UP, "en-US", make_context(days_past_due=12))
    assert "1 day past due" in one
    assert "12 days past due" in many


@pytest.mark.parametrize(("template", "locale"), ALL_CASES)
def test_no_personal_data_reaches_a_message(
    renderer: MessageRenderer, template: TemplateName, locale: str
) -> None:
    body = renderer.render(template, locale, make_context(dt.date(2026, 12, 20)))
    assert ACCOUNT_ID not in body
    assert "000154321" not in body
    assert SAMPLE_NAME not in body
    assert SAMPLE_PHONE not in body
    assert "13800138000" not in body


@pytest.mark.parametrize(("template", "locale"), ALL_CASES)
def test_messages_stay_short(renderer: MessageRenderer, template: TemplateName, locale: str) -> None:
    link = LINK if carries_link(template) else None
    body = renderer.render(template, locale, make_context(dt.date(2026, 12, 20), 120, link))
    # English fits in three GSM-7 parts with its link; Chinese is UCS-2 (67 per part), and the default
    # English repayment channels alone take a whole part, so four is the ceiling there.
    assert sms_segments(body) <= (3 if locale == "en-US" else 4)


def test_check_all_passes_for_packaged_templates(renderer: MessageRenderer) -> None:
    check_all(renderer)


# --- the self-service link ------------------------------------------------------------------------


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("template", [t for t in TemplateName if carries_link(t)])
def test_a_reminder_ends_with_its_link_and_keeps_its_opt_out(
    renderer: MessageRenderer, template: TemplateName, locale: str
) -> None:
    body = renderer.render(template, locale, make_context(dt.date(2026, 12, 20), 120, LINK))
    without = renderer.render(template, locale, make_context(dt.date(2026, 12, 20), 120))
    assert body.endswith(LINK) and body.count(LINK) == 1
    # The link line comes after the whole message as it was, opt-out wording included.
    assert body.startswith(without) and OPT_OUT_WORDING[locale] in without
    if template in LABELLED:
        assert body == f"{without}{' ' if locale == 'en-US' else '。'}{LINK_LINE[locale]}"
    assert sms_segments(body) <= DEFAULTS.max_sms_segments


@pytest.mark.parametrize("locale", SUPPORTED_LOCALES)
@pytest.mark.parametrize("template", [TemplateName.HELP, TemplateName.OPT_OUT_CONFIRMATION])
def test_service_messages_carry_no_link(
    renderer: MessageRenderer, template: TemplateName, locale: str
) -> None:
    assert not carries_link(template)
    body = renderer.render(template, locale, make_context(link=LINK))
    assert "/p/" not in body and "http" not in body


def test_links_are_counted_at_their_real_length() -> None:
    assert len(LINK.rsplit("/", 1)[1]) == TOKEN_LENGTH


# --- formatting -----------------------------------------------------------------------------------


def test_money_formatting() -> None:
    assert format_money(Decimal("1234.5"), "CNY", "en-US") == "CNY 1,234.50"
    assert format_money(Decimal("1234567.005"), "USD", "en-US") == "USD 1,234,567.01"
    assert format_money(Decimal("1234.5"), "CNY", "zh-CN") == "1,234.50元"
    assert format_money(Decimal("1234.5"), "USD", "zh-CN") == "1,234.50 USD"
    assert format_money(Decimal("7"), "CNY", "zh-CN") == "7.00元"


def test_date_formatting() -> None:
    assert format_date(dt.date(2026, 12, 15), "en-US") == "Dec 15, 2026"
    assert format_date(dt.date(2026, 3, 5), "en-US") == "Mar 5, 2026"
    assert format_date(dt.date(2026, 12, 15), "zh-CN") == "2026年12月15日"
    assert format_date(dt.date(2026, 3, 5), "zh-CN") == "2026年3月5日"


def test_filters_are_available_to_operator_templates(tmp_path: Path) -> None:
    write_override(
        tmp_path,
        "en-US",
        TemplateName.HELP,
        "{{ 99 | money('USD', locale) }} by {{ today | date(locale) }}",
    )
    environment = build_template_environment(tmp_path)
    template = environment.get_template("en-US/help.txt.j2")
    assert template.render(locale="en-US", today=dt.date(2026, 1, 2)) == "USD 99.00 by Jan 2, 2026"


# --- operator overrides ---------------------------------------------------------------------------


def test_override_dir_takes_precedence(tmp_path: Path) -> None:
    write_override(
        tmp_path,
        "en-US",
        TemplateName.HELP,
        "[{{ brand }}] OVERRIDDEN.\n  Call   {{ hotline }}.\nReply STOP to opt out.\n",
    )
    renderer = make_renderer(tmp_path)
    assert renderer.render(TemplateName.HELP, "en-US", make_context()) == (
        f"[{BRAND}] OVERRIDDEN. Call {HOTLINE}. Reply STOP to opt out."
    )
    # Templates the operator did not override still come from the package.
    packaged = renderer.render(TemplateName.HELP, "zh-CN", make_context())
    assert "OVERRIDDEN" not in packaged and HOTLINE in packaged
    check_all(renderer)


def test_undefined_variable_raises_template_error(tmp_path: Path) -> None:
    write_override(tmp_path, "zh-CN", TemplateName.FOLLOW_UP, "尊敬的{{ customer_name }}，请还款{{ amount }}")
    renderer = make_renderer(tmp_path)
    with pytest.raises(TemplateError) as info:
        renderer.render(TemplateName.FOLLOW_UP, "zh-CN", make_context())
    message = str(info.value)
    assert "customer_name" in message
    assert "follow_up" in message
    assert "zh-CN" in message


def test_syntax_error_raises_template_error(tmp_path: Path) -> None:
    write_override(tmp_path, "en-US", TemplateName.PRE_DUE, "Dear customer, {% if amount %}")
    with pytest.raises(TemplateError, match=r"pre_due.*en-US"):
        make_renderer(tmp_path).render(TemplateName.PRE_DUE, "en-US", make_context())


def test_unknown_locale_raises_template_error(renderer: MessageRenderer) -> None:
    with pytest.raises(TemplateError, match=r"help.*fr-FR"):
        renderer.render(TemplateName.HELP, "fr-FR", make_context())


def test_check_all_lists_every_broken_override(tmp_path: Path) -> None:
    write_override(tmp_path, "en-US", TemplateName.PRE_DUE, "Hello {{ full_name }}")
    write_override(tmp_path, "zh-CN", TemplateName.HELP, "{% for %}")
    write_override(tmp_path, "zh-CN", TemplateName.BROKEN_PROMISE, "{{ promise_date.upper() }}")
    renderer = make_renderer(tmp_path)
    with pytest.raises(ConfigurationError) as info:
        check_all(renderer)
    message = str(info.value)
    assert "3 message template(s)" in message
    assert "pre_due" in message and "full_name" in message
    assert "help for locale zh-CN" in message
    # Fails only when there is no promise date: check_all exercises both branches.
    assert "broken_promise for locale zh-CN" in message


def test_empty_override_is_rejected(tmp_path: Path) -> None:
    write_override(tmp_path, "en-US", TemplateName.OPT_OUT_CONFIRMATION, "{# nothing #}\n  \n")
    with pytest.raises(ConfigurationError, match="opt_out_confirmation for locale en-US"):
        check_all(make_renderer(tmp_path))


def test_nonexistent_override_dir_raises_configuration_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-folder"
    with pytest.raises(ConfigurationError, match="no-such-folder"):
        build_template_environment(missing)


def test_override_path_that_is_a_file_raises_configuration_error(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "templates.txt"
    not_a_folder.write_text("", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"templates\.txt"):
        build_template_environment(not_a_folder)


# --- SMS segment counting -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("", 0),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("€" * 80, 1),  # extension characters take two septets
        ("€" * 81, 2),
        ("é" * 160, 1),  # in the GSM basic set
        ("欠" * 70, 1),
        ("欠" * 71, 2),
        ("欠" * 134, 2),
        ("欠" * 135, 3),
        ("a" * 159 + "ê", 3),  # ê is not GSM-7: the whole message becomes UCS-2
        ("😀" * 35, 1),  # outside the BMP: two UCS-2 code units each
        ("😀" * 36, 2),
    ],
)
def test_sms_segments(body: str, expected: int) -> None:
    assert sms_segments(body) == expected

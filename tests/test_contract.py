"""The public contract: inputs and signals are validated and errors name the offending field."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from kindly.domain.contract import (
    SIGNAL_MODELS,
    WORKFLOW_ID_PREFIX,
    AccountInput,
    CallOutcome,
    CallOutcomeKind,
    Pause,
    PromiseToPay,
    Repayment,
    SignalName,
    UpdateContact,
    workflow_id_for,
)
from kindly.domain.policy.replies import ReplyIntent, classify_reply
from kindly.domain.validation import describe_validation_error

VALID: dict[str, Any] = {
    "account_id": "ACC-2026.001_x",
    "customer_name": "王芳",
    "phone": "+8613800138000",
    "timezone": "Asia/Shanghai",
    "locale": "zh-CN",
    "amount_due": "1200.50",
    "due_date": "2026-11-20",
}


def account(**changes: Any) -> AccountInput:
    return AccountInput.model_validate({**VALID, **changes})


def rejection(**changes: Any) -> str:
    with pytest.raises(ValidationError) as info:
        account(**changes)
    return describe_validation_error(info.value)


def test_valid_account_input() -> None:
    parsed = account()
    assert parsed.amount_due == Decimal("1200.50")
    assert parsed.due_date == date(2026, 11, 20)
    assert parsed.currency == "CNY"
    assert parsed.segment == "standard"
    assert parsed.birthday is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timezone", "Mars/Olympus_Mons"),
        ("timezone", "Asia"),  # a directory of the zone database, not a zone
        ("timezone", ""),
        ("timezone", "../etc/passwd"),
        ("timezone", "localtime"),
        ("timezone", "asia/shanghai"),
        ("phone", "13800138000"),
        ("phone", "+86 138 0013 8000"),
        ("phone", "+0123456789"),
        ("phone", "+86138001380001234567"),
        ("locale", "fr-FR"),
        ("locale", "zh-cn"),
        ("amount_due", "-5"),
        ("amount_due", 0),
        ("amount_due", "0.00"),
        ("amount_due", "12.345"),
        ("amount_due", "NaN"),
        ("amount_due", "lots"),
        ("due_date", "2026-02-30"),
        ("due_date", "20/11/2026"),
        ("due_date", "soon"),
        ("account_id", ""),
        ("account_id", "ACC 1"),
        ("account_id", "ACC-1\n"),
        ("currency", "cny"),
        ("currency", "CNY\n"),
        ("customer_name", ""),
        ("birthday", "1990-13-01"),
    ],
)
def test_bad_field_is_rejected_and_named(field: str, value: object) -> None:
    message = rejection(**{field: value})
    assert message.startswith(f"{field}: ")


def test_unknown_extra_field_is_rejected_and_named() -> None:
    assert rejection(ammount_due="1") == "ammount_due: Extra inputs are not permitted"


def test_missing_field_is_named() -> None:
    data = {key: value for key, value in VALID.items() if key != "phone"}
    with pytest.raises(ValidationError) as info:
        AccountInput.model_validate(data)
    assert describe_validation_error(info.value) == "phone: Field required"


def test_several_bad_fields_are_all_named() -> None:
    message = rejection(timezone="Nowhere/Special", phone="12345")
    assert "timezone: unknown IANA time zone 'Nowhere/Special'" in message
    assert "phone: must be an E.164 number" in message


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        (1200.5, Decimal("1200.50")),
        (1200, Decimal("1200")),
        ("1200.5", Decimal("1200.50")),
        ("1200.50", Decimal("1200.50")),
        (Decimal("0.01"), Decimal("0.01")),
    ],
)
def test_amount_as_number_or_string(amount: object, expected: Decimal) -> None:
    assert account(amount_due=amount).amount_due == expected


def test_phone_is_trimmed() -> None:
    assert account(phone=" +8613800138000 ").phone == "+8613800138000"


def test_account_input_is_frozen() -> None:
    parsed = account()
    with pytest.raises(ValidationError):
        parsed.phone = "+8613900139000"  # type: ignore[misc]


def test_due_date_accepts_date_objects() -> None:
    assert account(due_date=date(2027, 1, 5)).due_date == date(2027, 1, 5)


# --- signals ------------------------------------------------------------------------------------


def test_pause_until_needs_an_offset() -> None:
    with pytest.raises(ValidationError) as info:
        Pause.model_validate({"reason": "dispute", "until": "2026-12-01T09:00:00"})
    assert describe_validation_error(info.value).startswith("until: must include a UTC offset")


def test_pause_until_with_offset_and_without_until() -> None:
    paused = Pause.model_validate({"reason": "dispute", "until": "2026-12-01T09:00:00+08:00"})
    assert paused.until == datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
    assert paused.until is not None and paused.until.utcoffset() == timedelta(hours=8)
    assert Pause(reason="hardship").until is None


def test_pause_needs_a_reason() -> None:
    with pytest.raises(ValidationError) as info:
        Pause.model_validate({"reason": ""})
    assert describe_validation_error(info.value).startswith("reason: ")


def test_call_outcome_unknown_outcome_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        CallOutcome.model_validate({"outcome": "voicemail"})
    assert describe_validation_error(info.value).startswith("outcome: Input should be ")


def test_call_outcome_known_outcome() -> None:
    parsed = CallOutcome.model_validate({"outcome": "promise_to_pay", "promise_date": "2026-12-01"})
    assert parsed.outcome is CallOutcomeKind.PROMISE_TO_PAY
    assert parsed.promise_date == date(2026, 12, 1)


def test_repayment_amount_must_be_positive() -> None:
    with pytest.raises(ValidationError) as info:
        Repayment.model_validate({"amount": "0", "reference": "PAY-1"})
    assert describe_validation_error(info.value).startswith("amount: ")


def test_promise_to_pay_date() -> None:
    assert PromiseToPay.model_validate({"date": "2026-12-01"}).date == date(2026, 12, 1)


def test_update_contact_validates_what_it_is_given() -> None:
    assert UpdateContact.model_validate({"locale": "en-US"}).timezone is None
    with pytest.raises(ValidationError) as info:
        UpdateContact.model_validate({"timezone": "Europe"})
    assert describe_validation_error(info.value).startswith("timezone: unknown IANA time zone")


def test_every_signal_has_a_model_and_forbids_extras() -> None:
    assert set(SIGNAL_MODELS) == set(SignalName)
    with pytest.raises(ValidationError):
        SIGNAL_MODELS[SignalName.RESUME].model_validate({"now": True})


def test_aware_datetime_in_other_zone_kept() -> None:
    eastern = timezone(timedelta(hours=-5))
    until = datetime(2026, 12, 1, 9, tzinfo=eastern)
    assert Pause(reason="x", until=until).until == until


# --- ids and replies ----------------------------------------------------------------------------


def test_workflow_id_for() -> None:
    assert workflow_id_for("ACC-1") == "overdue-ACC-1"
    assert workflow_id_for("ACC-1").startswith(WORKFLOW_ID_PREFIX)
    assert workflow_id_for("ACC-1") == workflow_id_for("ACC-1")
    assert workflow_id_for("ACC-1") != workflow_id_for("ACC-2")


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("STOP", ReplyIntent.OPT_OUT),
        (" stop ", ReplyIntent.OPT_OUT),
        ("Stop\n", ReplyIntent.OPT_OUT),
        ("退订", ReplyIntent.OPT_OUT),
        (" 退订 ", ReplyIntent.OPT_OUT),
        ("td", ReplyIntent.OPT_OUT),
        ("TD", ReplyIntent.OPT_OUT),
        ("HELP", ReplyIntent.HELP),
        ("help", ReplyIntent.HELP),
        ("帮助", ReplyIntent.HELP),
        ("I lost my job", ReplyIntent.HARDSHIP),
        ("我失业了，下个月再还", ReplyIntent.HARDSHIP),
        ("This is NOT MY LOAN", ReplyIntent.DISPUTE),
        ("我没借过这笔钱", ReplyIntent.DISPUTE),
        (" end ", ReplyIntent.OPT_OUT),
        ("Cancel", ReplyIntent.OPT_OUT),
        ("unsubscribe", ReplyIntent.OPT_OUT),
        ("QUIT", ReplyIntent.OPT_OUT),
        ("t", ReplyIntent.OPT_OUT),
        ("will pay friday", ReplyIntent.OTHER),
        ("please stop texting me", ReplyIntent.OTHER),
        ("", ReplyIntent.OTHER),
    ],
)
def test_classify_reply(text: str, intent: ReplyIntent) -> None:
    assert classify_reply(text) is intent

"""The provider alarms (``kindly.store.alarms``) on SQLite and PostgreSQL: a refusal opens one alarm per
provider and code, and bumps it while it is open (also when many sends are refused at once); the circuit
asks for the provider's open alarm; clearing records who and when, once; a refusal after that opens a new
alarm; and no alarm keeps a phone number."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, inspect

from kindly.store import AlarmNotFoundError, ProviderAlarms, make_engine
from kindly.store.alarms import MESSAGE_LENGTH, OPEN_ALARM_INDEX, safe_message
from tests.databases import at_once, database_url  # noqa: F401
from tests.postgres import postgres_url  # noqa: F401  (the session's PostgreSQL cluster, a fixture)

AT = datetime(2026, 12, 8, 1, 30, tzinfo=UTC)
BALANCE = "isv.AMOUNT_NOT_ENOUGH"
SIGNATURE = "isv.SMS_SIGNATURE_ILLEGAL"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:  # noqa: F811
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def alarms(engine: Engine) -> ProviderAlarms:
    return ProviderAlarms(engine)


def test_a_refusal_opens_an_alarm_and_the_same_one_bumps_it(alarms: ProviderAlarms) -> None:
    first, opened = alarms.raise_alarm("aliyun", BALANCE, "account balance is insufficient", AT)
    assert opened and first.id is not None and first.is_open
    assert (first.provider, first.code, first.count, first.first_at, first.last_at) == (
        "aliyun",
        BALANCE,
        1,
        AT,
        AT,
    )
    later = AT + timedelta(minutes=3)
    bumped, opened_again = alarms.raise_alarm("aliyun", BALANCE, "balance still insufficient", later)
    assert not opened_again and bumped.id == first.id
    assert (bumped.count, bumped.first_at, bumped.last_at) == (2, AT, later)
    assert bumped.message == "balance still insufficient", "the latest words of the provider"
    assert [alarm.id for alarm in alarms.alarms()] == [first.id]


def test_another_code_or_provider_is_an_alarm_of_its_own(alarms: ProviderAlarms) -> None:
    balance, _ = alarms.raise_alarm("aliyun", BALANCE, "balance", AT)
    signature, opened = alarms.raise_alarm("aliyun", SIGNATURE, "signature suspended", AT + timedelta(1))
    tencent, _ = alarms.raise_alarm("tencent", "FailedOperation.InsufficientBalance", "balance", AT)
    assert opened and len({balance.id, signature.id, tencent.id}) == 3
    # The circuit asks per provider: the oldest open alarm holds it.
    assert (found := alarms.open_alarm("aliyun")) is not None and found.id == balance.id
    assert (found := alarms.open_alarm("tencent")) is not None and found.id == tencent.id
    assert alarms.open_alarm("webhook") is None
    # The newest first.
    assert [alarm.id for alarm in alarms.alarms()] == [signature.id, tencent.id, balance.id]


def test_clearing_records_who_and_when_once_and_reopens_on_the_next_refusal(alarms: ProviderAlarms) -> None:
    alarm, _ = alarms.raise_alarm("aliyun", BALANCE, "balance", AT)
    assert alarm.id is not None
    cleared_at = AT + timedelta(hours=2)
    cleared, done = alarms.clear(alarm.id, "ann", cleared_at)
    assert done and not cleared.is_open and (cleared.cleared_by, cleared.cleared_at) == ("ann", cleared_at)
    assert alarms.open_alarm("aliyun") is None and alarms.alarms() == []
    again, done_again = alarms.clear(alarm.id, "bob", cleared_at + timedelta(hours=1))
    assert not done_again and (again.cleared_by, again.cleared_at) == ("ann", cleared_at), (
        "the first clear stays"
    )
    # The account fails again: a new alarm, the cleared one kept as it was.
    reopened, opened = alarms.raise_alarm("aliyun", BALANCE, "balance again", AT + timedelta(days=1))
    assert opened and reopened.id != alarm.id and reopened.count == 1
    assert [a.id for a in alarms.alarms(include_cleared=True)] == [reopened.id, alarm.id]
    assert [a.id for a in alarms.alarms()] == [reopened.id]
    with pytest.raises(AlarmNotFoundError):
        alarms.clear(9999, "ann", AT)
    with pytest.raises(AlarmNotFoundError):
        alarms.get(9999)


def test_sends_refused_at_once_leave_one_alarm(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    engines = [make_engine(url) for _ in range(8)]
    try:
        results = at_once(8, lambda: ProviderAlarms(engines.pop()).raise_alarm("aliyun", BALANCE, "b", AT))
    finally:
        for each in engines:
            each.dispose()
    assert sum(opened for _, opened in results) == 1
    assert len({alarm.id for alarm, _ in results}) == 1
    [alarm] = ProviderAlarms(engine).alarms(include_cleared=True)
    assert alarm.count == 8


def test_the_open_alarms_are_unique_per_provider_and_code_in_the_schema(engine: Engine) -> None:
    indexes = {index["name"]: index for index in inspect(engine).get_indexes("provider_alarm")}
    assert indexes[OPEN_ALARM_INDEX]["unique"]
    assert indexes[OPEN_ALARM_INDEX]["column_names"] == ["provider", "code"]


def test_an_alarm_keeps_no_phone_number(alarms: ProviderAlarms) -> None:
    words = "号码 13800138000 天级流控; to +86 138-0013-8000,\n retry\tlater (RequestId 5E2C-11)"
    alarm, _ = alarms.raise_alarm("aliyun", BALANCE, words, AT)
    assert "13800138000" not in alarm.message and "0013" not in alarm.message
    assert alarm.message == "号码 *** 天级流控; to ***, retry later (RequestId 5E2C-11)"
    assert len(safe_message("x" * 5000)) == MESSAGE_LENGTH

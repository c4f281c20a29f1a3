"""The response model measured from the audit log (``kindly.simulator.observed``): logs with known counts
give exactly the rates they should, cell by cell and falling back for thin cells; each SMS has at most
its first response; payments, promises and calls are read as the domain words them."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine

from kindly.domain import completions
from kindly.domain.completions import SmsAction
from kindly.domain.contract import AccountInput, SignalName, TemplateName
from kindly.domain.effects import ActionKind, Effect, apply_signal
from kindly.domain.policy.model import BUILT_IN_POLICIES
from kindly.domain.state import AccountState, start_entries
from kindly.errors import SimulationInputError
from kindly.simulator.observed import observed_response_model
from kindly.simulator.responses import CallOdds, ResponseModel, TouchOdds, TouchRule, parse_response_model
from kindly.store import AuditEntry, AuditLog, make_engine
from tests.databases import database_url  # noqa: F401  (SQLite and PostgreSQL, a fixture)
from tests.postgres import postgres_url  # noqa: F401  (the session's PostgreSQL cluster, a fixture)

DUE = date(2026, 3, 1)
SENT = datetime(2026, 3, 6, 2, 0, tzinfo=UTC)
"""Five days past ``DUE``: the ``1-30`` bucket."""
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
_keys = itertools.count(1)

Story = Callable[[str, datetime], list[AuditEntry]]
"""What an account did after its SMS (sent at the given instant)."""


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:  # noqa: F811
    """A fresh, migrated database: SQLite, and PostgreSQL (whose server runs in another time zone)."""
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def write(engine: Engine, entries: Sequence[AuditEntry]) -> None:
    AuditLog(engine).append(entries)


# --- Audit rows, worded as the domain words them -----------------------------------------------------------


def row(account: str, at: datetime, kind: str, detail: str = "-", template: str | None = None) -> AuditEntry:
    return AuditEntry(
        event_key=f"observed/{next(_keys)}",
        account_id=account,
        at=at,
        kind=kind,
        detail=detail,
        template=template,
        recorded_at=at,
    )


def started(account: str, at: datetime, segment: str = "standard", due: date = DUE) -> AuditEntry:
    return row(account, at, "started", f"segment {segment}, 1000.00 CNY due {due}")


def sms(account: str, at: datetime, template: str = "first_overdue") -> AuditEntry:
    return row(account, at, "sms_sent", f"{template} touchpoint 1 (1 segment(s))", template)


def reply(account: str, at: datetime, intent: str) -> AuditEntry:
    return row(account, at, "reply_received", f"reply ({intent}, 9 chars)")


def opted_out(account: str, at: datetime) -> AuditEntry:
    return row(account, at, "opted_out", "no further SMS; escalation continues by phone")


def handed(account: str, at: datetime, intent: str) -> AuditEntry:
    return row(account, at, "handed_to_person", f"{intent} reported; automated contact stops")


def promise(account: str, at: datetime, by: date, via: str = "customer") -> AuditEntry:
    return row(account, at, "promise", f"{via} promised to pay by {by}; contact held")


def paid(account: str, at: datetime, amount: str, left: str) -> list[AuditEntry]:
    received = row(account, at, "repayment_received", f"{amount} received (ref-{next(_keys)}); {left} left")
    return [received, row(account, at, "repaid", "paid in full")] if Decimal(left) == 0 else [received]


def task(account: str, at: datetime, status: str = "accepted") -> AuditEntry:
    return row(account, at, "escalated_phone", f"call task attempt 1 (3 reminders unanswered): {status}")


def call(account: str, at: datetime, outcome: str = "reached") -> AuditEntry:
    return row(account, at, "call_outcome", f"{outcome} (attempt 1)")


def silent(account: str, at: datetime) -> list[AuditEntry]:
    return []


def after(delay: timedelta, make: Callable[[str, datetime], AuditEntry | list[AuditEntry]]) -> Story:
    """A story: ``make`` at ``delay`` after the SMS."""

    def story(account: str, at: datetime) -> list[AuditEntry]:
        made = make(account, at + delay)
        return made if isinstance(made, list) else [made]

    return story


def customers(
    prefix: str,
    stories: Sequence[Story],
    *,
    segment: str = "standard",
    due: date = DUE,
    at: datetime = SENT,
    template: str = "first_overdue",
) -> list[AuditEntry]:
    """One account per story: started, one SMS of ``template`` at ``at``, then the story."""
    rows: list[AuditEntry] = []
    for number, story in enumerate(stories):
        account = f"{prefix}-{number}"
        rows += [
            started(account, at - 10 * DAY, segment, due),
            sms(account, at, template),
            *story(account, at),
        ]
    return rows


def many(count: int, story: Story) -> list[Story]:
    return [story] * count


# --- A cell's rates --------------------------------------------------------------------------------------


def forty_customers() -> list[AuditEntry]:
    """40 SMS of ``first_overdue`` to ``standard`` accounts 5 days late; every response 2 hours after."""
    later = 2 * HOUR
    stories = [
        *many(4, after(later, lambda a, t: reply(a, t, "other"))),
        *many(2, after(later, lambda a, t: reply(a, t, "help"))),
        after(later, lambda a, t: [reply(a, t, "opt_out"), opted_out(a, t)]),
        after(later, opted_out),  # on the self-service page
        after(later, lambda a, t: [reply(a, t, "hardship"), handed(a, t, "hardship")]),
        after(later, lambda a, t: handed(a, t, "dispute")),  # on the self-service page
        *many(2, after(later, lambda a, t: promise(a, t, DUE + 10 * DAY))),
        after(later, lambda a, t: promise(a, t, DUE + 10 * DAY, via="customer, on the self-service page,")),
        after(later, lambda a, t: promise(a, t, DUE + 10 * DAY, via="on the phone, customer")),  # a call's
        *many(4, after(later, lambda a, t: paid(a, t, "1000.00", "0.00"))),
        after(later, lambda a, t: paid(a, t, "200.00", "800.00")),
        after(later, lambda a, t: paid(a, t, "500.00", "500.00")),
    ]
    return customers("C", [*stories, *many(40 - len(stories), silent)])


EXPECTED = TouchOdds(
    reply=6 / 40,
    stop=2 / 40,
    hardship=1 / 40,
    dispute=1 / 40,
    promise=3 / 40,
    full_payment=4 / 40,
    partial_payment=2 / 40,
)


def odds(found: TouchOdds) -> TouchOdds:
    """The odds alone, without a rule's keys."""
    return TouchOdds(**{response.value: chance for response, chance in found.odds().items()})


def test_a_cell_with_enough_sms_gets_exactly_its_counted_rates(engine: Engine) -> None:
    write(engine, forty_customers())

    model = observed_response_model(engine)

    cell = [rule for rule in model.rules if rule.keys == 3]
    first = TemplateName.FIRST_OVERDUE
    assert cell == [TouchRule(segment="standard", dpd="1-30", template=first, **EXPECTED.model_dump())]
    assert odds(model.odds_for("standard", "1-30", first)) == EXPECTED
    assert model.default == EXPECTED  # the whole log is this one cell
    assert model.response_after_hours == 2.0
    assert model.partial_share == pytest.approx((0.2 + 0.5) / 2)
    assert model.calls == CallOdds()  # no call task: the built-in phone figures


def test_the_model_round_trips_through_its_json_form(engine: Engine) -> None:
    write(engine, forty_customers())
    model = observed_response_model(engine)

    assert parse_response_model(model.model_dump(mode="json"), source="x") == model


# --- Thin cells ------------------------------------------------------------------------------------------


def test_a_thin_cell_falls_back_to_its_segment_and_template_then_its_template_then_the_default(
    engine: Engine,
) -> None:
    replied = after(HOUR, lambda a, t: reply(a, t, "other"))
    write(
        engine,
        [
            # standard, 1-30: 10 SMS, 2 replies (its own rule)
            *customers("S1", [*many(2, replied), *many(8, silent)]),
            # standard, 31-60: 3 SMS, 3 replies (thin: standard's first_overdue, 13 SMS, 5 replies)
            *customers("S2", many(3, replied), due=DUE - 35 * DAY),
            # gentle, 1-30: 4 SMS, no reply (thin, and so is gentle's first_overdue: 17 SMS, 5 replies)
            *customers("G", many(4, silent), segment="gentle"),
            # follow_up: 2 SMS, both paid in full (thin all the way: the whole log, 19 SMS)
            *customers(
                "F", many(2, after(HOUR, lambda a, t: paid(a, t, "1000.00", "0.00"))), template="follow_up"
            ),
        ],
    )

    model = observed_response_model(engine, min_sends=10)

    first = TemplateName.FIRST_OVERDUE
    assert model.odds_for("standard", "1-30", first).reply == 0.2
    assert model.odds_for("standard", "31-60", first) == TouchRule(
        segment="standard", template=first, reply=round(5 / 13, 4)
    )
    assert model.odds_for("gentle", "1-30", first) == TouchRule(template=first, reply=round(5 / 17, 4))
    assert model.odds_for("standard", "1-30", TemplateName.FOLLOW_UP) is model.default
    assert model.default == TouchOdds(reply=round(5 / 19, 4), full_payment=round(2 / 19, 4))
    assert [(rule.segment, rule.dpd, rule.template) for rule in model.rules] == [
        (None, None, first),
        ("standard", None, first),
        ("standard", "1-30", first),
    ]


def test_days_past_due_are_the_utc_date_of_the_send_less_the_due_date(engine: Engine) -> None:
    sends = {
        "before": (datetime(2026, 2, 26, 10, 0, tzinfo=UTC), "pre_due"),
        "on the day": (datetime(2026, 3, 1, 23, 59, tzinfo=UTC), "due_today"),
        "a day late": (datetime(2026, 3, 2, 0, 1, tzinfo=UTC), "first_overdue"),
        "31 days late": (datetime(2026, 4, 1, 9, 0, tzinfo=UTC), "follow_up"),
        "91 days late": (datetime(2026, 5, 31, 9, 0, tzinfo=UTC), "gentle_reminder"),
    }
    write(
        engine,
        [
            entry
            for name, (at, template) in sends.items()
            for entry in customers(name, [silent], at=at, template=template)
        ],
    )

    model = observed_response_model(engine, min_sends=1)

    cells = {(rule.template, rule.dpd) for rule in model.rules if rule.keys == 3}
    assert cells == {
        (TemplateName.PRE_DUE, "current"),
        (TemplateName.DUE_TODAY, "current"),
        (TemplateName.FIRST_OVERDUE, "1-30"),
        (TemplateName.FOLLOW_UP, "31-60"),
        (TemplateName.GENTLE_REMINDER, "90+"),
    }


# --- Which response ----------------------------------------------------------------------------------------


def test_an_sms_has_only_its_first_response_before_the_next_sms_and_within_14_days(engine: Engine) -> None:
    def story(account: str, at: datetime) -> list[AuditEntry]:
        return [
            reply(account, at + HOUR, "other"),  # first_overdue's response
            promise(account, at + 3 * HOUR, DUE + 20 * DAY),  # a second one: ignored
            sms(account, at + 2 * DAY, "follow_up"),
            *paid(account, at + 3 * DAY, "100.00", "900.00"),  # follow_up's response, a day later
        ]

    late = after(15 * DAY, lambda a, t: paid(a, t, "1000.00", "0.00"))  # too late to answer the SMS
    write(engine, [*customers("X", many(3, story)), *customers("W", [late])])

    model = observed_response_model(engine, min_sends=3)

    assert odds(model.odds_for("standard", "1-30", TemplateName.FIRST_OVERDUE)) == TouchOdds(reply=0.75)
    assert odds(model.odds_for("standard", "1-30", TemplateName.FOLLOW_UP)) == TouchOdds(partial_payment=1.0)
    assert model.response_after_hours == (3 * 1 + 3 * 24) / 6
    assert model.partial_share == 0.1


def test_full_and_partial_payments_and_a_call_as_the_domain_words_them(engine: Engine) -> None:
    """The rows come from the domain's own functions, so that a change of its wording fails here."""
    account = AccountInput(
        account_id="D-1",
        customer_name="Li Lei",
        phone="+8613800138000",
        timezone="Asia/Shanghai",
        locale="zh-CN",
        amount_due=Decimal("1000.00"),
        due_date=DUE,
        segment="standard",
        currency="CNY",
    )
    state = AccountState.for_new_account(account, BUILT_IN_POLICIES["standard"], DUE, opted_out=False)
    rows = [row("D-1", SENT - DAY, kind, detail) for kind, detail in start_entries(account, opted_out=False)]

    def record(at: datetime, effect: Effect) -> AccountState:
        rows.extend(row("D-1", at, entry.kind, entry.detail) for entry in effect.entries)
        return effect.state

    def send(at: datetime, template: TemplateName) -> AccountState:
        action = SmsAction(ActionKind.REMINDER, template, touchpoint=len(rows))
        return record(
            at, completions.sms_finished(state, action, "sent", segments=1, detail="", today=at.date())
        )

    def signal(at: datetime, name: SignalName, payload: dict[str, Any]) -> AccountState:
        return record(at, apply_signal(state, name, payload, at))

    state = send(SENT, TemplateName.FIRST_OVERDUE)
    state = signal(SENT + HOUR, SignalName.REPAYMENT, {"amount": "250.00", "reference": "p-1"})
    state = send(SENT + DAY, TemplateName.FOLLOW_UP)
    created = completions.call_task_created(
        state,
        attempt=1,
        touchpoint=9,
        reason="unanswered",
        status="accepted",
        detail="",
        now=SENT + DAY + HOUR,
    )
    state = record(SENT + DAY + HOUR, created)
    promised = {"outcome": "promise_to_pay", "promise_date": str(SENT.date() + 4 * DAY)}
    state = signal(SENT + DAY + 4 * HOUR, SignalName.CALL_OUTCOME, promised)  # the phone's, not the SMS's
    state = send(SENT + 3 * DAY, TemplateName.FOLLOW_UP)
    state = signal(SENT + 3 * DAY + 2 * HOUR, SignalName.REPAYMENT, {"amount": "750.00", "reference": "p-2"})
    assert state.outcome is not None, "the second payment repays the account"
    rows.append(started("D-2", SENT + 10 * DAY))  # the log goes on past the promised date
    write(engine, rows)

    model = observed_response_model(engine, min_sends=1)

    assert odds(model.odds_for("standard", "1-30", TemplateName.FIRST_OVERDUE)) == TouchOdds(
        partial_payment=1
    )
    assert odds(model.odds_for("standard", "1-30", TemplateName.FOLLOW_UP)) == TouchOdds(full_payment=0.5)
    assert model.partial_share == 0.25
    assert model.calls.odds() == {result: float(result == "promise") for result in model.calls.odds()}
    assert model.calls.recorded_after_hours == 3.0
    assert model.promise_days == 3  # promised on the 7th for the 10th
    assert model.promise_kept == 1.0  # paid in full on the 9th


def test_a_payment_that_does_not_say_what_is_left_is_full_when_the_account_is_repaid_with_it(
    engine: Engine,
) -> None:
    def odd(account: str, at: datetime) -> list[AuditEntry]:
        text = "1000.00 received by a channel of old"
        return [row(account, at, "repayment_received", text), row(account, at, "repaid", "paid in full")]

    unclear = after(HOUR, lambda a, t: row(a, t, "repayment_received", "300.00 received by a channel of old"))
    write(engine, customers("R", [after(HOUR, odd), unclear]))

    model = observed_response_model(engine, min_sends=2)

    assert model.default == TouchOdds(full_payment=0.5, partial_payment=0.5)
    assert model.partial_share == ResponseModel().partial_share  # nothing to measure it by


def test_rates_that_round_over_one_give_the_excess_back(engine: Engine) -> None:
    stories = [
        after(HOUR, lambda a, t: reply(a, t, "other")),
        after(HOUR, lambda a, t: paid(a, t, "100.00", "900.00")),
        after(HOUR, lambda a, t: paid(a, t, "1000.00", "0.00")),
        after(HOUR, lambda a, t: promise(a, t, DUE + 9 * DAY)),
        after(HOUR, opted_out),
        after(HOUR, lambda a, t: handed(a, t, "hardship")),
    ]
    write(engine, customers("Y", stories))

    model = observed_response_model(engine, min_sends=6)

    chances = sorted(model.default.odds().values())
    assert chances == [0.0, 0.1666, 0.1666, 0.1667, 0.1667, 0.1667, 0.1667]  # six 1/6, rounded: 1.0002
    assert sum(chances) == pytest.approx(1.0, abs=1e-9)


# --- Promises and calls ----------------------------------------------------------------------------------


def test_promises_are_kept_by_a_payment_by_their_date_and_judged_once_their_date_is_over(
    engine: Engine,
) -> None:
    made = SENT + HOUR
    write(
        engine,
        customers(
            "P",
            [
                after(
                    HOUR,
                    lambda a, t: [
                        promise(a, t, made.date() + 3 * DAY),
                        *paid(a, t + 2 * DAY, "10.00", "990.00"),
                    ],
                ),
                after(HOUR, lambda a, t: promise(a, t, made.date() + 5 * DAY)),  # nothing paid
                after(
                    HOUR,
                    lambda a, t: [
                        promise(a, t, made.date() + 4 * DAY),
                        *paid(a, t + 6 * DAY, "10.00", "990.00"),
                    ],
                ),
                # not due yet when the log ends (its last entry, 20 days on): cannot be judged
                after(HOUR, lambda a, t: promise(a, t, made.date() + 25 * DAY)),
                after(20 * DAY, lambda a, t: promise(a, t, t.date() + 8 * DAY)),  # neither; it ends the log
            ],
        ),
    )

    model = observed_response_model(engine, min_sends=1)

    assert model.promise_kept == round(1 / 3, 4)
    assert model.promise_days == (3 + 5 + 4 + 25 + 8) / 5


def test_call_outcomes_answer_the_task_before_them(engine: Engine) -> None:
    t = SENT

    def story(name: str, *entries: AuditEntry) -> list[AuditEntry]:
        return [started(name, t - DAY), *entries]

    write(
        engine,
        [
            *customers("SMS", many(10, silent)),
            *story("reached", task("reached", t), call("reached", t + HOUR)),
            *story(
                "call back",
                task("call back", t),
                call("call back", t + 3 * HOUR, "call_back"),
                row(
                    "call back",
                    t + 3 * HOUR,
                    "call_outcome",
                    "customer asked to be called back at 2026-03-07 10:00",
                ),
                task("call back", t + DAY),
                call("call back", t + DAY + HOUR, "no_answer"),
            ),
            *story("no answer", task("no answer", t), call("no answer", t + 2 * HOUR, "no_answer")),
            *story(
                "promise",
                sms("promise", t - HOUR),
                task("promise", t),
                call("promise", t + 4 * HOUR, "promise_to_pay"),
                promise("promise", t + 4 * HOUR, t.date() + 2 * DAY, via="on the phone, customer"),
            ),
            *story("wrong", task("wrong", t), call("wrong", t + HOUR, "wrong_number")),
            *story("refused", task("refused", t), call("refused", t + HOUR, "refused")),
            *story("again", task("again", t), task("again", t + 2 * DAY), call("again", t + 2 * DAY + HOUR)),
            *story("no outcome", task("no outcome", t)),
            *story("rejected", task("rejected", t, status="rejected"), call("rejected", t + HOUR)),
            *story("no task", call("no task", t + HOUR)),
        ],
    )

    model = observed_response_model(engine, min_sends=10)

    assert model.calls == CallOdds(
        reached=0.3, no_answer=0.2, promise=0.1, wrong_number=0.1, refused=0.1, recorded_after_hours=14 / 8
    )
    assert model.default == TouchOdds()  # the phone promise answered the call, not the SMS before it
    assert model.promise_days == 2


# --- Too little data, and since ----------------------------------------------------------------------------


def test_too_few_sms_is_refused_naming_the_counts(engine: Engine) -> None:
    with pytest.raises(SimulationInputError) as empty:
        observed_response_model(engine)
    assert str(empty.value) == "observed responses: the audit log has 0 SMS; at least 30 are needed"

    before = datetime(2025, 12, 20, 3, 0, tzinfo=UTC)
    since = datetime(2026, 1, 1, tzinfo=UTC)
    helped = after(HOUR, lambda a, t: sms(a, t, "help"))  # a service reply: not a reminder
    write(engine, [*customers("OLD", many(40, silent), at=before), *customers("NEW", many(12, helped))])

    with pytest.raises(SimulationInputError) as thin:
        observed_response_model(engine, since=since)
    assert str(thin.value) == (
        "observed responses: the audit log has 12 SMS since 2026-01-01; at least 30 are needed"
    )
    assert observed_response_model(engine).default == TouchOdds()  # 52 SMS in the whole log


def test_since_reads_the_window_but_every_account_s_start(engine: Engine) -> None:
    since = datetime(2026, 3, 1)  # naive: UTC
    account = "A-1"
    write(
        engine,
        [
            started(account, datetime(2026, 2, 1, tzinfo=UTC), segment="gentle", due=date(2026, 2, 20)),
            sms(account, datetime(2026, 2, 25, tzinfo=UTC)),
            reply(account, datetime(2026, 2, 25, 1, tzinfo=UTC), "other"),  # before the window
            sms(account, datetime(2026, 3, 2, tzinfo=UTC), "follow_up"),
            sms(account, datetime(2026, 3, 4, tzinfo=UTC), "follow_up"),
            reply(account, datetime(2026, 3, 4, 2, tzinfo=UTC), "other"),
        ],
    )

    model = observed_response_model(engine, since=since, min_sends=2)

    assert [
        (rule.segment, rule.dpd, rule.template, rule.reply) for rule in model.rules if rule.keys == 3
    ] == [("gentle", "1-30", TemplateName.FOLLOW_UP, 0.5)]
    assert model.default == TouchOdds(reply=0.5)
    assert model.response_after_hours == 2.0


def test_min_sends_must_be_positive(engine: Engine) -> None:
    with pytest.raises(SimulationInputError, match="min_sends must be at least 1"):
        observed_response_model(engine, min_sends=0)

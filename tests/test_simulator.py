"""The simulator's parts on their own: an account's run on the workflow's decisions, the response model
and its file, the world's draws, the tally and the figures. The comparison with the real workflow on
Temporal's time-skipping server is ``test_simulator_fidelity``; the command, ``test_simulate_cli``."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from kindly.domain.contract import AccountInput, SignalName, TemplateName
from kindly.domain.messages.formatting import sms_segments
from kindly.domain.messages.links import sample_link
from kindly.domain.policy.model import load_policies
from kindly.domain.policy.schedule import zone_date
from kindly.errors import SimulationInputError
from kindly.settings import Settings
from kindly.simulator import (
    Happening,
    Horizon,
    ModelWorld,
    ResponseModel,
    Scenario,
    ScriptedWorld,
    TouchOdds,
    TouchRule,
    dpd_bucket,
    parse_response_model,
    simulate,
    synthetic_book,
    trace_account,
)
from kindly.simulator.recorder import Recorder
from kindly.simulator.report import Prices, build_report
from kindly.simulator.run import _sizer
from kindly.simulator.tally import Tally
from kindly.simulator.world import World

SHANGHAI = ZoneInfo("Asia/Shanghai")
START = datetime(2027, 3, 1, tzinfo=SHANGHAI)
"""A Monday in a month without mainland holidays."""
POLICIES = load_policies(None)
PLAIN = {**POLICIES, "plain": POLICIES["standard"].model_copy(update={"holiday_calendar": None})}
SETTINGS = Settings()
PRICES = Prices(sms_price=Decimal("0.05"), handle_minutes=6, gateway_per_minute=3000)


def account(due: date, *, segment: str = "plain", amount: str = "1200.00") -> AccountInput:
    return AccountInput(
        account_id="SIM-1",
        customer_name="Simulated",
        phone="+8613800138000",
        timezone="Asia/Shanghai",
        locale="zh-CN",
        amount_due=Decimal(amount),
        due_date=due,
        segment=segment,
    )


def trace(acc: AccountInput, world: World, days: int = 60) -> list[tuple[str, str | None, datetime]]:
    horizon = Horizon(START, days, seed=1, zone="Asia/Shanghai")
    entries = trace_account(acc, world, Scenario(PLAIN, ResponseModel()), horizon, SETTINGS)
    return [(entry.kind, entry.template, entry.at.astimezone(SHANGHAI)) for entry in entries]


def test_a_quiet_account_follows_the_cadence_to_the_specialists() -> None:
    due = date(2027, 3, 10)
    steps = trace(account(due), ScriptedWorld())
    kinds = [(kind, template) for kind, template, _ in steps]
    assert kinds == [
        ("sms", "pre_due"),
        ("sms", "due_today"),
        ("sms", "first_overdue"),
        ("sms", "follow_up"),
        ("sms", "follow_up"),
        ("call_task", None),
        ("call_task", None),
        ("specialist", None),
    ]
    days = [zone_date("Asia/Shanghai", at) for _, _, at in steps]
    assert days[:3] == [due - timedelta(days=7), due, due + timedelta(days=1)]
    assert days[3] - days[2] == timedelta(days=7) and days[4] - days[3] == timedelta(days=7)
    for kind, _, at in steps:
        if kind == "sms":
            assert time(9, 0) <= at.time() < time(20, 0)
    calls = [at for kind, _, at in steps if kind == "call_task"]
    assert calls[1] - calls[0] >= timedelta(hours=48)


def test_a_full_payment_ends_the_account_and_counts_a_cure() -> None:
    due = date(2027, 3, 10)
    paid_at = datetime(2027, 3, 12, 12, 0, tzinfo=SHANGHAI)
    payment = Happening(
        paid_at, SignalName.REPAYMENT, {"amount": "1200.00", "reference": "r1"}, "full_payment"
    )
    steps = trace(account(due), ScriptedWorld([payment]))
    assert [template for _, template, _ in steps] == ["pre_due", "due_today", "first_overdue"]
    assert all(at < paid_at for _, _, at in steps)


def test_a_promise_holds_contact_and_a_broken_one_brings_the_firmer_reminder() -> None:
    due = date(2027, 3, 10)
    promised_at = datetime(2027, 3, 11, 18, 0, tzinfo=SHANGHAI)
    promise = Happening(promised_at, SignalName.PROMISE_TO_PAY, {"date": "2027-03-15"}, "promise")
    steps = trace(account(due), ScriptedWorld([promise]), days=20)
    after = [(template, zone_date("Asia/Shanghai", at)) for kind, template, at in steps if at > promised_at]
    # Nothing until the promised day has passed (one day of grace); then the firmer message.
    assert after[0] == ("broken_promise", date(2027, 3, 16))


def test_a_stop_is_confirmed_and_the_account_goes_to_the_phone() -> None:
    due = date(2027, 3, 10)
    stop = Happening(datetime(2027, 3, 4, 10, 0, tzinfo=SHANGHAI), SignalName.CUSTOMER_REPLY, {"text": "TD"})
    steps = trace(account(due), ScriptedWorld([stop]))
    assert [(kind, template) for kind, template, _ in steps][:3] == [
        ("sms", "pre_due"),
        ("sms", "opt_out_confirmation"),
        ("call_task", None),
    ]
    assert zone_date("Asia/Shanghai", steps[2][2]) == due + timedelta(days=1)


def test_the_world_draws_from_the_accounts_own_seeded_stream() -> None:
    model = ResponseModel(default=TouchOdds(reply=0.3, full_payment=0.2, promise=0.2))
    due = date(2027, 3, 2)
    runs = [trace(account(due), ModelWorld(model, random.Random(f"7/{n}")), days=40) for n in (1, 1, 2, 3, 4)]
    assert runs[0] == runs[1]
    assert len({tuple(run) for run in runs[1:]}) > 1


def test_a_certain_payment_cures_every_account_after_its_first_reminder() -> None:
    model = ResponseModel(default=TouchOdds(full_payment=1.0), response_after_hours=1)
    book = synthetic_book(60, seed=3, start=START.date(), days=30, policies=POLICIES, from_file=())
    tally = simulate(
        book, Scenario(POLICIES, model), Horizon(START, 30, 3, "Asia/Shanghai"), SETTINGS, workers=1
    )
    report = build_report(
        tally, label="t", start=START.date(), days=30, seed=3, timezone="Asia/Shanghai", prices=PRICES
    )
    reminded = report.total.sms
    assert report.total.call_tasks == 0
    assert report.total.cures == reminded  # one reminder each, then paid in full
    assert report.by_day[-1].open_accounts == 60 - reminded


def test_the_figures_do_not_depend_on_the_number_of_workers() -> None:
    book = synthetic_book(120, seed=5, start=START.date(), days=45, policies=POLICIES, from_file=())
    horizon, scenario = Horizon(START, 45, 5, "Asia/Shanghai"), Scenario(POLICIES, ResponseModel())
    reports = [
        build_report(
            simulate(book, scenario, horizon, SETTINGS, workers=workers),
            label="t",
            start=START.date(),
            days=45,
            seed=5,
            timezone="Asia/Shanghai",
            prices=PRICES,
        )
        for workers in (1, 2)
    ]
    assert reports[0] == reports[1]
    assert reports[0].total.sms > 0 and reports[0].accounts == 120


def test_the_most_specific_rule_answers() -> None:
    model = ResponseModel(
        default=TouchOdds(reply=0.01),
        rules=[
            TouchRule(template=TemplateName.FOLLOW_UP, reply=0.02),
            TouchRule(segment="gentle", template=TemplateName.FOLLOW_UP, reply=0.03),
            TouchRule(segment="gentle", dpd="1-30", template=TemplateName.FOLLOW_UP, reply=0.04),
            TouchRule(segment="gentle", dpd="1-30", template=TemplateName.FOLLOW_UP, reply=0.05),
        ],
    )
    assert model.odds_for("standard", "1-30", TemplateName.PRE_DUE).reply == 0.01
    assert model.odds_for("standard", "1-30", TemplateName.FOLLOW_UP).reply == 0.02
    assert model.odds_for("gentle", "31-60", TemplateName.FOLLOW_UP).reply == 0.03
    assert model.odds_for("gentle", "1-30", TemplateName.FOLLOW_UP).reply == 0.04  # the first of equals


@pytest.mark.parametrize(
    ("days", "bucket"),
    [(-3, "current"), (0, "current"), (1, "1-30"), (30, "1-30"), (31, "31-60"), (90, "61-90"), (91, "90+")],
)
def test_days_past_due_buckets_are_the_reports(days: int, bucket: str) -> None:
    assert dpd_bucket(days) == bucket


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"default": {"reply": 1.5}}, "default.reply"),
        ({"default": {"reply": 0.7, "stop": 0.4}}, "default: the probabilities add up to 1.1000"),
        ({"rules": [{"template": "follow_up"}, {"dpd": "7-14"}]}, "rules.1.dpd"),
        ({"rules": [{"template": "reminder"}]}, "rules.0.template"),
        ({"calls": {"reached": 0.9, "no_answer": 0.9}}, "calls: the probabilities add up"),
        ({"promise_kept": -1}, "promise_kept"),
        ({"defaults": {}}, "defaults: Extra inputs are not permitted"),
    ],
)
def test_a_bad_response_model_is_refused_naming_the_field(raw: dict[str, object], named: str) -> None:
    with pytest.raises(SimulationInputError) as refused:
        parse_response_model(raw, source="responses.json")
    assert "responses.json" in str(refused.value)
    assert named in str(refused.value)


def test_an_sms_bills_the_parts_of_the_message_as_rendered() -> None:
    sizer = _sizer(SETTINGS)
    from kindly.domain import actions
    from kindly.domain.messages.rendering import MessageRenderer, build_template_environment

    state = actions.new_account(account(date(2027, 3, 10)), PLAIN["plain"], START, opted_out=False)
    renderer = MessageRenderer(
        build_template_environment(None),
        brand=SETTINGS.brand_name,
        hotline=SETTINGS.hotline,
        repayment_channels=SETTINGS.repayment_channels,
    )
    context = actions.message_context(state, START).model_copy(
        update={"link": sample_link(SETTINGS.public_base_url)}
    )
    body = renderer.render(TemplateName.PRE_DUE, "zh-CN", context)
    assert sizer.segments(state, TemplateName.PRE_DUE, START) == sms_segments(body) > 1


def test_the_report_counts_open_accounts_costs_and_minutes_over_the_rate() -> None:
    tally = Tally()
    recorder = Recorder(tally, SHANGHAI, "all", "CNY")
    day_one = START + timedelta(hours=10)
    recorder.started(START)
    for offset in range(4):
        recorder.sms(day_one + timedelta(seconds=offset), "pre_due", 2)
    recorder.call_task(day_one + timedelta(days=1))
    recorder.collected(day_one + timedelta(days=2), Decimal("1200.00"), cured=True)
    recorder.ended(day_one + timedelta(days=2))
    prices = Prices(sms_price=Decimal("0.045"), handle_minutes=9, gateway_per_minute=3)
    report = build_report(
        tally, label="t", start=START.date(), days=3, seed=0, timezone="Asia/Shanghai", prices=prices
    )
    first, second, third = report.by_day
    assert (first.sms, first.sms_parts, first.sms_cost) == (4, 8, Decimal("0.36"))
    assert (first.peak_per_minute, first.minutes_over_rate) == (4, 1)
    assert (second.call_tasks, second.agent_hours) == (1, 0.15)
    assert (third.cures, third.collected) == (1, {"CNY": Decimal("1200.00")})
    assert [day.open_accounts for day in report.by_day] == [1, 1, 0]
    assert report.total.cure_rate == 1.0
    assert Counter(first.sms_by_template) == Counter({"pre_due": 4})

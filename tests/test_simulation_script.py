"""The simulation's scripts and their shrinking, without Temporal: determinism, validity against the
contract once the relative dates are made absolute, coverage of every kind of action, consistent
payments, and a shrinker that finds the minimal failing script within its budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from kindly.domain.contract import SIGNAL_MODELS, AccountInput, SignalName, UpdateContact
from kindly.domain.policy.replies import ReplyIntent, classify_reply
from kindly.programs.api.webhooks import InboundSms, PaymentNotice
from tests.simulation.model import AccountScript, Action, Faults, Script
from tests.simulation.policies import SEGMENTS
from tests.simulation.script import ZONES, default_faults, generate, hostile_payloads
from tests.simulation.shrink import MAX_CALLS, describe, offset, shrink

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2026, 3, 7, 22, 30, tzinfo=UTC)  # a DST weekend in the US, late in the UTC day
SEEDS = range(5)


def scripts(**kwargs: Any) -> Iterator[Script]:
    for seed in SEEDS:
        yield generate(seed, accounts=40, days=30, **kwargs)


def actions_of(script: Script) -> Iterator[tuple[AccountScript, Action]]:
    for account in script.accounts:
        for action in account.actions:
            yield account, action


# --- the runner's job, in small: relative dates made absolute --------------------------------------


def absolute_account(account: dict[str, Any], start: date) -> dict[str, Any]:
    fields = {k: v for k, v in account.items() if k not in ("due_in_days", "birthday_in_days")}
    fields["due_date"] = (start + timedelta(days=account["due_in_days"])).isoformat()
    if "birthday_in_days" in account:
        day = start + timedelta(days=account["birthday_in_days"])
        fields["birthday"] = date(
            1990, day.month, min(day.day, 28) if day.month == 2 else day.day
        ).isoformat()
    return fields


def absolute_payload(payload: dict[str, Any], at: datetime) -> dict[str, Any]:
    realized: dict[str, Any] = {}
    for key, value in payload.items():
        if key.endswith("_in_days"):
            realized[key.removesuffix("_in_days")] = (at.date() + timedelta(days=value)).isoformat()
        elif key.endswith("_in_hours"):
            realized[key.removesuffix("_in_hours")] = (at + timedelta(hours=value)).isoformat()
        else:
            realized[key] = value
    return realized


def signal_is_valid(name: str, payload: dict[str, Any], at: datetime) -> bool:
    if name not in {s.value for s in SignalName}:
        return False
    try:
        SIGNAL_MODELS[SignalName(name)].model_validate(absolute_payload(payload, at))
    except ValidationError:
        return False
    return True


# --- determinism ----------------------------------------------------------------------------------


def test_the_same_seed_makes_the_same_script() -> None:
    assert generate(7, accounts=30, days=40) == generate(7, accounts=30, days=40)
    assert generate(7, accounts=30, days=40).to_json() == generate(7, accounts=30, days=40).to_json()


def test_different_seeds_make_different_scripts() -> None:
    made = [json.dumps(generate(seed, accounts=10, days=30).to_json()) for seed in range(6)]
    assert len(set(made)) == len(made)
    one, two = generate(1, accounts=10, days=30), generate(2, accounts=10, days=30)
    assert [a.account["phone"] for a in one.accounts] != [a.account["phone"] for a in two.accounts] or [
        a.actions for a in one.accounts
    ] != [a.actions for a in two.accounts]


def test_an_accounts_script_does_not_depend_on_the_number_of_accounts() -> None:
    few, many = generate(42, accounts=3, days=30), generate(42, accounts=25, days=30)
    assert many.accounts[:3] == few.accounts
    assert many.faults == few.faults


def test_the_script_is_the_same_in_another_process() -> None:
    """No dependence on hash randomisation (``random.Random`` seeded from strings hashes them itself)."""
    code = (
        "import json; from tests.simulation.script import generate; "
        "print(json.dumps(generate(5, accounts=8, days=20).to_json(), sort_keys=True))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == generate(5, accounts=8, days=20).to_json()


def test_scripts_round_trip_through_json() -> None:
    for script in scripts():
        assert Script.from_json(json.loads(json.dumps(script.to_json(), ensure_ascii=False))) == script
    quiet = generate(3, accounts=2, days=5, faults=Faults())
    assert Script.from_json(json.loads(json.dumps(quiet.to_json()))) == quiet


# --- validity -------------------------------------------------------------------------------------


def test_every_account_is_a_valid_account_input_once_its_dates_are_absolute() -> None:
    for script in scripts():
        for account in script.accounts:
            data = account.account
            assert data["account_id"] == f"SIM-{script.seed}-{script.accounts.index(account)}"
            valid = AccountInput.model_validate(absolute_account(data, START.date()))
            assert valid.segment in SEGMENTS and valid.timezone in ZONES
            assert Decimal("100.00") <= valid.amount_due <= Decimal("5000.00")
            assert valid.amount_due.as_tuple().exponent == -2
            assert -10 <= data["due_in_days"] <= 20
            assert 0 <= data.get("birthday_in_days", 0) < script.days
            assert valid.phone.startswith("+86139" if valid.currency == "CNY" else "+1")
            if valid.segment == "sim_cn":
                assert valid.phone.startswith("+86139")
            if valid.segment == "sim_us":
                assert valid.phone.startswith("+1")
            if valid.contact_after and valid.contact_before:
                assert valid.contact_after < valid.contact_before


def test_phones_are_distinct_and_replies_come_from_the_number_in_use() -> None:
    for script in scripts():
        owners: dict[str, str] = {}
        for account in script.accounts:
            phone = account.account["phone"]
            numbers = [phone]
            for action in account.actions:
                if action.name == "update_contact" and signal_is_valid(action.name, action.payload, START):
                    phone = UpdateContact.model_validate(action.payload).phone
                    assert phone is not None
                    numbers.append(phone)
                if action.channel == "reply_webhook":
                    assert action.payload["from"] == phone
            for number in numbers:
                assert owners.setdefault(number, account.account_id) == account.account_id


def test_actions_are_in_time_order_within_the_run() -> None:
    counts = Counter[int]()
    for script in scripts():
        for account in script.accounts:
            timed = [a for a in account.actions if a.trigger == "time"]
            afters = [a.after for a in timed]
            assert afters == sorted(afters)
            assert all(timedelta(0) <= after < timedelta(days=script.days) for after in afters)
            assert all(after.microseconds == 0 for after in afters)
            counts[len(afters)] += 1
            # At most one more, delivered minutes into a retry, whenever that comes.
            on_retry = account.actions[len(timed) :]
            assert len(on_retry) <= 1 and all(a.trigger == "retrying" for a in on_retry)
            assert all(timedelta(seconds=20) <= a.after <= timedelta(minutes=20) for a in on_retry)
    assert max(counts) <= 10
    assert counts[0] > 0 and sum(counts.values()) - counts[0] > 0.7 * sum(counts.values())


def test_non_hostile_payloads_are_valid_once_made_absolute() -> None:
    for script in scripts(hostile_rate=0.0):
        for account, action in actions_of(script):
            at = START + action.after
            if action.channel == "signal":
                assert signal_is_valid(action.name, action.payload, at), action
            elif action.channel == "reply_webhook":
                assert action.name == "customer_reply"
                InboundSms.model_validate(action.payload)
            else:
                assert action.name == "repayment"
                notice = PaymentNotice.model_validate(action.payload)
                assert notice.account_id == account.account_id
            assert 1 <= action.copies <= 3
            assert action.copies == 1 or action.channel != "signal"


def test_every_hostile_payload_is_refused_by_the_contract() -> None:
    for name, payload in hostile_payloads("SIM-1-1"):
        assert not signal_is_valid(name, payload, START), (name, payload)


def test_about_one_action_in_twenty_is_hostile() -> None:
    total = hostile = 0
    for script in scripts():
        for _, action in actions_of(script):
            total += 1
            if action.channel == "signal" and not signal_is_valid(action.name, action.payload, START):
                hostile += 1
    assert 0.02 < hostile / total < 0.10


# --- coverage -------------------------------------------------------------------------------------


def test_every_keyword_family_channel_and_kind_of_action_occurs() -> None:
    texts: set[str] = set()
    names: set[str] = set()
    channels: set[str] = set()
    outcomes: set[str] = set()
    pauses: set[bool] = set()
    copies: set[tuple[str, int]] = set()
    zones: set[str] = set()
    windows = birthdays = 0
    for script in scripts():
        for _, action in actions_of(script):
            channels.add(action.channel)
            names.add(action.name)
            copies.add((action.channel, min(action.copies, 2)))
            if action.channel == "reply_webhook":
                texts.add(action.payload["text"])
            if action.name == "call_outcome" and "outcome" in action.payload:
                outcomes.add(str(action.payload["outcome"]))
            if action.name == "pause" and "until" not in action.payload:
                pauses.add("until_in_hours" in action.payload)
        for account in script.accounts:
            zones.add(account.account["timezone"])
            windows += "contact_after" in account.account or "contact_before" in account.account
            birthdays += "birthday_in_days" in account.account
    assert {"STOP", "stop", "退订", "TD", "HELP", "帮助"} <= texts
    intents = {(classify_reply(t), any("\u4e00" <= c <= "\u9fff" for c in t)) for t in texts}
    for intent in (ReplyIntent.HARDSHIP, ReplyIntent.DISPUTE, ReplyIntent.OTHER):
        assert {(intent, True), (intent, False)} <= intents
    assert {ReplyIntent.OPT_OUT, ReplyIntent.HELP} <= {intent for intent, _ in intents}
    assert "please stop calling my mother" in texts
    assert classify_reply("please stop calling my mother") is ReplyIntent.OTHER
    assert channels == {"signal", "reply_webhook", "payment_webhook"}
    kinds = {"pause", "resume", "promise_to_pay", "call_outcome", "update_contact", "settle", "close"}
    assert kinds | {"sms_undeliverable", "customer_reply", "repayment"} <= names
    assert names - {s.value for s in SignalName}, "no unknown signal name"
    assert outcomes >= {"reached", "no_answer", "promise_to_pay", "wrong_number", "refused"}
    assert pauses == {True, False}
    assert {("reply_webhook", 2), ("payment_webhook", 2)} <= copies
    assert zones == set(ZONES)
    assert windows > 0 and birthdays > 0


def payments(account: AccountScript) -> Iterator[tuple[Action, str]]:
    """Each payment webhook and what it is: partial, full, late or duplicate."""
    owed = Decimal(account.account["amount_due"])
    seen: set[str] = set()
    for action in account.actions:
        if action.channel != "payment_webhook":
            continue
        reference, amount = action.payload["reference"], Decimal(action.payload["amount"])
        if reference in seen:
            yield action, "duplicate"
        elif owed == 0:
            yield action, "late"
        else:
            assert amount <= owed, f"{account.account_id} pays {amount} of {owed}"
            owed -= amount
            yield action, "full" if owed == 0 else "partial"
        seen.add(reference)


def test_payments_add_up_to_the_amount_and_every_kind_occurs() -> None:
    kinds = Counter[str]()
    paid_off = 0
    for script in scripts():
        for account in script.accounts:
            found = list(payments(account))
            kinds.update(kind for _, kind in found)
            distinct = {
                a.payload["reference"]: Decimal(a.payload["amount"])
                for a, k in found
                if k in ("partial", "full")
            }
            if any(kind == "full" for _, kind in found):
                paid_off += 1
                assert sum(distinct.values()) == Decimal(account.account["amount_due"])
            else:
                assert not any(kind == "late" for _, kind in found)
            duplicates = [a for a, kind in found if kind == "duplicate"]
            originals = {a.payload["reference"]: a.payload for a, k in found if k != "duplicate"}
            assert all(a.payload == originals[a.payload["reference"]] for a in duplicates)
    assert min(kinds[k] for k in ("partial", "full", "late", "duplicate")) > 0, kinds
    assert paid_off > 10


def test_kept_and_broken_promises_occur() -> None:
    kept = broken = 0
    for script in scripts(hostile_rate=0.0):
        for account in script.accounts:
            paid = [a.after for a, kind in payments(account) if kind in ("partial", "full")]
            for action in account.actions:
                if action.name == "promise_to_pay":
                    days = action.payload["date_in_days"]
                    assert 1 <= days <= 14
                    by = action.after + timedelta(days=days)
                    if any(action.after < at <= by for at in paid):
                        kept += 1
                    else:
                        broken += 1
    assert kept > 0 and broken > 0


def test_default_faults_are_modest_with_an_outage_about_every_ten_days() -> None:
    import random

    for seed in range(20):
        faults = default_faults(random.Random(seed), days=30)
        assert 0 < faults.sms_refused <= 0.1 and 0 < faults.sms_timeout <= 0.03
        assert 0 < faults.sms_lost_answer <= 0.04 and 0 < faults.handoff_refused <= 0.12
        assert len(faults.outages) == 3
        for start, end in faults.outages:
            assert timedelta(0) <= start < end <= timedelta(days=30)
            assert timedelta(hours=2) <= end - start <= timedelta(hours=10)
    assert len(default_faults(random.Random(1), days=5).outages) == 2
    assert generate(1, accounts=1, days=10).faults == default_faults(random.Random(1), days=10)
    assert generate(1, accounts=1, days=10, faults=Faults()).faults == Faults()


def test_a_share_of_the_actions_fall_inside_the_outages() -> None:
    script = generate(3, accounts=60, days=30)
    inside = [
        action
        for account in script.accounts
        for action in account.actions
        if any(start <= action.after < end for start, end in script.faults.outages)
    ]
    total = sum(len(account.actions) for account in script.accounts)
    assert 0.15 * total < len(inside) < 0.5 * total, (len(inside), total)


# --- shrinking ------------------------------------------------------------------------------------


def reply(after_hours: int, text: str) -> Action:
    return Action(
        timedelta(hours=after_hours), "reply_webhook", "customer_reply", {"from": "+1", "text": text}
    )


def pay(after_hours: int, reference: str) -> Action:
    payload = {"account_id": "X", "amount": "10.00", "reference": reference}
    return Action(timedelta(hours=after_hours), "payment_webhook", "repayment", payload)


def signal(after_hours: int, name: str, payload: dict[str, Any]) -> Action:
    return Action(timedelta(hours=after_hours), "signal", name, payload)


def has_stop(account: AccountScript) -> bool:
    return any(
        a.channel == "reply_webhook" and a.payload["text"].strip().upper() == "STOP" for a in account.actions
    )


def has_payment(account: AccountScript) -> bool:
    return any(a.channel == "payment_webhook" for a in account.actions)


STOP_AT, PAY_AT = reply(30, "STOP"), pay(50, "ref-1")
NOISE = (
    reply(1, "hello"),
    signal(5, "pause", {"reason": "travel"}),
    reply(12, "HELP"),
    signal(20, "promise_to_pay", {"date_in_days": 3}),
    STOP_AT,
    signal(40, "resume", {}),
    reply(45, "好的"),
    PAY_AT,
    signal(60, "close", {"reason": "written off"}),
    reply(70, "who is this?"),
)


def with_actions(script: Script, index: int, actions: tuple[Action, ...]) -> Script:
    accounts = list(script.accounts)
    accounts[index] = AccountScript(accounts[index].account, actions)
    return Script(script.seed, script.days, tuple(accounts), script.faults)


class Fake:
    """A stand-in for a whole simulation run: fails by a rule, counts its calls."""

    def __init__(self, rule: Any) -> None:
        self.rule = rule
        self.calls = 0

    async def __call__(self, script: Script) -> bool:
        self.calls += 1
        return bool(self.rule(script))


@pytest.fixture
def failing() -> Script:
    base = generate(11, accounts=8, days=20)
    assert base.faults.sms_refused > 0 and base.faults.outages
    return with_actions(base, 5, NOISE)


def x_has_stop_and_payment(script: Script) -> bool:
    return any(a.account_id == "SIM-11-5" and has_stop(a) and has_payment(a) for a in script.accounts)


async def test_shrink_finds_the_minimal_script(failing: Script) -> None:
    fake = Fake(x_has_stop_and_payment)
    smallest = await shrink(failing, fake)
    expected = Script(11, 20, (AccountScript(failing.accounts[5].account, (STOP_AT, PAY_AT)),), Faults())
    assert smallest == expected
    assert fake.calls <= MAX_CALLS


async def test_shrink_starts_from_the_suspects_and_calls_less(failing: Script) -> None:
    blind, told = Fake(x_has_stop_and_payment), Fake(x_has_stop_and_payment)
    await shrink(failing, blind)
    smallest = await shrink(failing, told, suspects={"SIM-11-5", "SIM-11-2"})
    assert smallest.accounts == (AccountScript(failing.accounts[5].account, (STOP_AT, PAY_AT)),)
    assert told.calls < blind.calls


async def test_shrink_keeps_two_accounts_that_fail_only_together() -> None:
    base = generate(12, accounts=5, days=20)
    script = with_actions(with_actions(base, 1, NOISE), 3, NOISE)

    def rule(s: Script) -> bool:
        ids = {a.account_id: a for a in s.accounts}
        return (
            "SIM-12-1" in ids
            and "SIM-12-3" in ids
            and has_stop(ids["SIM-12-1"])
            and has_payment(ids["SIM-12-3"])
        )

    fake = Fake(rule)
    smallest = await shrink(script, fake)
    assert [a.account_id for a in smallest.accounts] == ["SIM-12-1", "SIM-12-3"]
    assert [a.actions for a in smallest.accounts] == [(STOP_AT,), (PAY_AT,)]
    assert smallest.faults == Faults()
    assert fake.calls <= MAX_CALLS


async def test_shrink_respects_a_small_budget_and_returns_a_failing_script(failing: Script) -> None:
    for budget in (3, 8):
        fake = Fake(x_has_stop_and_payment)
        smallest = await shrink(failing, fake, max_calls=budget)
        assert fake.calls <= budget
        assert x_has_stop_and_payment(smallest)
    # Eight calls: six accounts tried alone (the sixth is X), two kept for the faults.
    assert [a.account_id for a in smallest.accounts] == ["SIM-11-5"]


async def test_shrink_returns_the_script_when_nothing_smaller_fails(failing: Script) -> None:
    fake = Fake(lambda s: s == failing)
    assert await shrink(failing, fake) == failing
    assert fake.calls <= MAX_CALLS


async def test_shrink_drops_only_the_faults_that_do_not_matter(failing: Script) -> None:
    fake = Fake(lambda s: x_has_stop_and_payment(s) and s.faults.sms_refused > 0 and s.faults.outages)
    smallest = await shrink(failing, fake)
    assert smallest.faults.sms_refused == failing.faults.sms_refused
    assert (
        smallest.faults.sms_timeout == smallest.faults.sms_lost_answer == smallest.faults.handoff_refused == 0
    )
    assert 1 <= len(smallest.faults.outages) <= len(failing.faults.outages)


# --- describing -----------------------------------------------------------------------------------


def test_describe_lists_every_account_and_action() -> None:
    script = generate(9, accounts=6, days=30)
    text = describe(script)
    lines = text.splitlines()
    assert len(lines) == 1 + sum(1 + max(1, len(a.actions)) for a in script.accounts)
    assert "sms_refused" in lines[0] and "outage +" in lines[0]
    remaining = iter(lines[1:])
    for account in script.accounts:
        header = next(remaining)
        for field in ("account_id", "segment", "timezone"):
            assert str(account.account[field]) in header
        assert f"due_in_days={account.account['due_in_days']}" in header
        for action in account.actions:
            line = next(remaining)
            assert line.startswith(f"  {offset(action.after)} ")
            assert f" {action.name} via {action.channel}" in line
            assert len(line) < 200
        if not account.actions:
            assert next(remaining) == "  (no actions)"
    assert offset(timedelta(days=2, hours=3, minutes=17, seconds=59)) == "+2d03h17m"
    stop = describe(Script(1, 3, (AccountScript({"account_id": "A"}, (reply(51, "STOP"),)),)))
    assert '+2d03h00m customer_reply via reply_webhook {"from": "+1", "text": "STOP"}' in stop


def test_describe_says_when_an_action_waits_for_a_retry() -> None:
    retrying = Action(timedelta(minutes=5), "signal", "pause", {"reason": "x"}, trigger="retrying")
    script = Script(seed=1, days=3, accounts=(AccountScript({"account_id": "A"}, (retrying,)),))
    assert "+0d00h05m after a message of its is first refused in an outage, pause via signal" in describe(
        script
    )

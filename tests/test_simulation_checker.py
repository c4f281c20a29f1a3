"""The simulation's checker on hand-made observations: a clean run passes, and each broken promise is caught.

Pure data, no Temporal: each test builds the world's logs with :class:`World` (local times in the
customer's zone, written ``"2026-03-09 09:30"``) and asks the checker.
"""

from __future__ import annotations

import ast
import itertools
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from kindly.domain.contract import TimelineKind
from kindly.domain.policy.model import ContactPolicy
from tests.simulation import checker
from tests.simulation.checker import check
from tests.simulation.model import (
    AccountEnd,
    Action,
    Delivery,
    HandoffAttempt,
    Observations,
    SmsAttempt,
    SmsOutcome,
    Violation,
)

START = datetime(2026, 3, 1, tzinfo=UTC)
NEW_YORK = "America/New_York"  # daylight saving time from 2026-03-08 02:00 local
KOLKATA = "Asia/Kolkata"  # UTC+05:30
SHANGHAI = "Asia/Shanghai"
AUCKLAND = "Pacific/Auckland"  # UTC+13 in March: local days straddle UTC days

POLICIES = {
    "plain": ContactPolicy(holiday_calendar=None),
    "cn": ContactPolicy(regime="cn", holiday_calendar="cn"),
    "us": ContactPolicy(regime="us", holiday_calendar="us"),
    "capped": ContactPolicy(holiday_calendar=None, max_sms_per_day=1, max_sms_per_7_days=2),
    "straight": ContactPolicy(holiday_calendar=None, route_straight_to_specialist=True),
    "blocked": ContactPolicy(holiday_calendar=None, blocked_dates=["2026-03-12"]),
}

SIGNAL_KINDS = {
    "pause": TimelineKind.PAUSED,
    "resume": TimelineKind.RESUMED,
    "promise_to_pay": TimelineKind.PROMISE,
    "call_outcome": TimelineKind.CALL_OUTCOME,
    "update_contact": TimelineKind.CONTACT_UPDATED,
    "sms_undeliverable": TimelineKind.SMS_UNDELIVERABLE,
    "settle": TimelineKind.SETTLED,
    "close": TimelineKind.CLOSED,
}


class World:
    """Builds :class:`Observations` as the runner would fill them, with a consistent timeline."""

    def __init__(self, start: datetime = START, days: int = 40) -> None:
        self.start = start
        self.observations = Observations(
            started_at=start,
            ended_at=start + timedelta(days=days),
            policies={name: policy.model_dump(mode="json") for name, policy in POLICIES.items()},
        )
        self.zones: dict[str, str] = {}
        self.timelines: dict[str, list[tuple[datetime, str, str]]] = defaultdict(list)
        self.touchpoints = itertools.count(1)

    # --- accounts ------------------------------------------------------------------------------

    def account(
        self, account_id: str, *, zone: str, due: str, segment: str = "plain", **fields: Any
    ) -> World:
        self.zones[account_id] = zone
        self.observations.accounts[account_id] = {
            "account_id": account_id,
            "customer_name": "Sim Customer",
            "phone": f"+1555{len(self.zones):07d}",
            "timezone": zone,
            "locale": "en-US",
            "amount_due": "1000.00",
            "currency": "CNY",
            "due_date": due,
            "segment": segment,
            "birthday": None,
            "contact_after": None,
            "contact_before": None,
            **fields,
        }
        self.note(account_id, self.start, TimelineKind.STARTED, f"segment {segment}")
        self.observations.ends[account_id] = AccountEnd(
            account_id=account_id,
            workflow_status="RUNNING",
            status={
                "account_id": account_id,
                "stage": "overdue",
                "amount_due": self.observations.accounts[account_id]["amount_due"],
                "sms_sent": 0,
                "unanswered_sms": 0,
                "next_touchpoint_at": (self.observations.ended_at + timedelta(hours=10)).isoformat(),
                "paused": False,
            },
            timeline=[],
        )
        return self

    def phone(self, account_id: str) -> str:
        return str(self.observations.accounts[account_id]["phone"])

    def local(self, account_id: str, when: str, zone: str | None = None) -> datetime:
        naive = datetime.fromisoformat(when)
        return naive.replace(tzinfo=ZoneInfo(zone or self.zones[account_id])).astimezone(UTC)

    def note(self, account_id: str, at: datetime, kind: str, detail: str = "") -> None:
        self.timelines[account_id].append((at, str(kind), detail))

    # --- what the world saw --------------------------------------------------------------------

    def sms(
        self,
        account_id: str,
        when: str,
        template: str,
        *,
        outcome: SmsOutcome = "delivered",
        key: str | None = None,
        body: str | None = None,
        zone: str | None = None,
    ) -> str:
        """One gateway request at local ``when``; a new key unless one is given."""
        key = key or f"overdue-{account_id}/run/tp-{next(self.touchpoints)}"
        at = self.local(account_id, when, zone)
        self.observations.sms.append(
            SmsAttempt(
                at=at,
                key=key,
                account_id=account_id,
                to=self.phone(account_id),
                template=template,
                body=body or f"{template} for {account_id}",
                outcome=outcome,
            )
        )
        if outcome in ("delivered", "duplicate"):
            self.note(account_id, at, TimelineKind.SMS_SENT, f"{template} touchpoint")
        return key

    def signal(
        self, account_id: str, when: str, name: str, payload: dict[str, Any], *, accepted: bool = True
    ) -> datetime:
        """A signal; the workflow records its entry a moment later (or rejects it)."""
        at = self.local(account_id, when)
        action = Action(at - self.start, "signal", name, payload)
        self.observations.deliveries.append(Delivery(account_id, action, at, "signalled"))
        recorded = at + timedelta(milliseconds=300)
        if not accepted:
            self.note(account_id, recorded, TimelineKind.SIGNAL_REJECTED, f"{name}: rejected")
        elif name == "promise_to_pay":
            self.note(
                account_id, recorded, TimelineKind.PROMISE, f"customer promised to pay by {payload['date']}"
            )
        elif name == "call_outcome":
            self.note(account_id, recorded, TimelineKind.CALL_OUTCOME, f"{payload['outcome']} (attempt 1)")
            if payload["outcome"] == "promise_to_pay":
                detail = f"on the phone, customer promised to pay by {payload['promise_date']}"
                self.note(account_id, recorded, TimelineKind.PROMISE, detail)
        else:
            self.note(account_id, recorded, SIGNAL_KINDS[name], name)
        return at

    def reply(self, account_id: str, when: str, text: str, *, answer: str = "200") -> datetime:
        at = self.local(account_id, when)
        payload = {"from": self.phone(account_id), "text": text}
        action = Action(at - self.start, "reply_webhook", "customer_reply", payload)
        self.observations.deliveries.append(Delivery(account_id, action, at, answer))
        if answer == "200":
            self.note(account_id, at, TimelineKind.REPLY_RECEIVED, f"reply ({len(text)} chars)")
            if text.strip().upper() == "STOP":
                self.note(account_id, at, TimelineKind.OPTED_OUT, "no further SMS")
        return at

    def payment(
        self, account_id: str, when: str, amount: str, reference: str, *, left: str, credited: bool = True
    ) -> datetime:
        at = self.local(account_id, when)
        payload = {"account_id": account_id, "amount": amount, "reference": reference}
        action = Action(at - self.start, "payment_webhook", "repayment", payload)
        self.observations.deliveries.append(Delivery(account_id, action, at, "200"))
        if credited:
            detail = f"{amount} received ({reference}); {left} left"
            self.note(account_id, at, TimelineKind.REPAYMENT_RECEIVED, detail)
        return at

    def handoff(
        self,
        account_id: str,
        when: str,
        kind: str = "phone",
        *,
        accepted: bool = True,
        key: str | None = None,
    ) -> str:
        key = key or f"overdue-{account_id}/run/tp-{next(self.touchpoints)}"
        at = self.local(account_id, when)
        self.observations.handoffs.append(
            HandoffAttempt(at, key, account_id, "phone" if kind == "phone" else "specialist", accepted)
        )
        timeline_kind = TimelineKind.ESCALATED_PHONE if kind == "phone" else TimelineKind.ESCALATED_SPECIALIST
        self.note(account_id, at, timeline_kind, "accepted" if accepted else "refused")
        return key

    def end(self, account_id: str, **changes: Any) -> AccountEnd:
        """Change the account's end: ``status`` fields by name, or the ``AccountEnd`` attributes."""
        end = self.observations.ends[account_id]
        for name, value in changes.items():
            if hasattr(end, name):
                setattr(end, name, value)
            else:
                assert end.status is not None
                end.status[name] = value.isoformat() if isinstance(value, datetime) else value
        return end

    def build(self) -> Observations:
        for account_id, entries in self.timelines.items():
            zone = ZoneInfo(self.zones[account_id])
            self.observations.ends[account_id].timeline = [
                {"at": at.astimezone(zone).isoformat(timespec="seconds"), "kind": kind, "detail": detail}
                for at, kind, detail in sorted(entries, key=lambda e: e[0])
            ]
        return self.observations


def clean_world() -> World:
    """Three accounts whose histories keep every promise.

    - ``ny``: Regulation F in New York across the DST switch (due the day after it); a pause and a
      resume, a reply, a promise then a broken-promise reminder on its release day, a partial payment.
    - ``in``: Kolkata (+05:30); HELP answered, three unanswered overdue reminders, two call tasks (the
      phone team answers the first ``no_answer``), then the specialists.
    - ``cn``: Shanghai, mainland calendar; STOP, its confirmation, a call at once, paid in full.
    """
    world = World()
    world.account("ny", zone=NEW_YORK, due="2026-03-09", segment="us")
    world.sms("ny", "2026-03-02 10:00", "pre_due")
    world.sms("ny", "2026-03-09 09:30", "due_today")  # 13:30 UTC: 08:30 in standard time
    world.sms("ny", "2026-03-10 10:00", "first_overdue")
    world.signal("ny", "2026-03-12 12:00", "pause", {"reason": "hospital"})
    world.signal("ny", "2026-03-15 12:00", "resume", {})
    world.sms("ny", "2026-03-17 10:00", "follow_up")
    world.reply("ny", "2026-03-17 15:00", "I will pay soon")
    world.signal("ny", "2026-03-18 10:00", "promise_to_pay", {"date": "2026-03-25"})
    world.sms("ny", "2026-03-26 09:30", "broken_promise")
    world.payment("ny", "2026-03-27 11:00", "300.00", "PAY-NY-1", left="700.00")
    world.sms("ny", "2026-04-03 09:30", "follow_up")
    next_at = world.local("ny", "2026-04-10 09:30")
    world.end("ny", amount_due="700.00", unanswered_sms=1, next_touchpoint_at=next_at)
    world.end(
        "ny",
        search_attributes={
            "CollectionStage": "overdue",
            "Paused": False,
            "UnansweredSms": 1,
            "NextTouchpointAt": next_at.isoformat(),
        },
    )

    world.account("in", zone=KOLKATA, due="2026-03-05")
    world.sms("in", "2026-03-05 09:15", "due_today")  # 03:45 UTC
    world.reply("in", "2026-03-05 12:00", " help ")
    world.sms("in", "2026-03-05 12:00:20", "help")
    world.sms("in", "2026-03-06 09:15", "first_overdue")
    world.sms("in", "2026-03-13 09:15", "follow_up")
    world.sms("in", "2026-03-20 09:15", "follow_up")
    world.handoff("in", "2026-03-27 09:15")
    world.signal("in", "2026-03-27 14:00", "call_outcome", {"outcome": "no_answer"})
    world.handoff("in", "2026-03-29 09:15")
    world.handoff("in", "2026-03-31 09:15", "specialist")
    world.end("in", stage="specialist", unanswered_sms=3, next_touchpoint_at=None)

    world.account("cn", zone=SHANGHAI, due="2026-03-03", segment="cn")
    world.sms("cn", "2026-03-03 09:30", "due_today")
    world.reply("cn", "2026-03-04 10:00", "stop")
    world.sms("cn", "2026-03-04 10:00:20", "opt_out_confirmation")
    world.handoff("cn", "2026-03-04 10:01")
    world.signal("cn", "2026-03-05 15:00", "call_outcome", {"outcome": "reached"})
    world.payment("cn", "2026-03-06 11:00", "1000.00", "PAY-CN-1", left="0.00")
    world.note("cn", world.local("cn", "2026-03-06 11:00"), TimelineKind.REPAID, "paid in full")
    world.end(
        "cn",
        workflow_status="COMPLETED",
        result={"outcome": "repaid", "amount_collected": "1000.00"},
        stage="repaid",
        amount_due="0.00",
        next_touchpoint_at=None,
    )
    return world


def of(observations: Observations, invariant: str) -> list[Violation]:
    """The run's violations of ``invariant`` (others may come with them)."""
    return [violation for violation in check(observations) if violation.invariant == invariant]


def invariants(observations: Observations) -> set[str]:
    return {violation.invariant for violation in check(observations)}


def only(observations: Observations, invariant: str) -> list[Violation]:
    """The violations of a run, asserting that they all belong to ``invariant`` (and that there are some)."""
    violations = check(observations)
    assert violations, f"expected a {invariant} violation"
    assert {v.invariant for v in violations} == {invariant}, [str(v) for v in violations]
    return violations


# --- the clean run ------------------------------------------------------------------------------


def test_a_clean_run_keeps_every_promise() -> None:
    violations = check(clean_world().build())
    assert violations == [], [str(v) for v in violations]


def test_every_invariant_is_checked() -> None:
    names = [invariant.__name__ for invariant in checker.INVARIANTS]
    assert names == [
        "one_message_per_key",
        "legal_window",
        "blocked_day",
        "caps",
        "holds",
        "after_stop",
        "after_end",
        "stated_amount",
        "escalation",
        "payments",
        "liveness",
        "search_attributes",
    ]
    assert all(invariant.__doc__ for invariant in checker.INVARIANTS)


def test_the_checker_does_not_lean_on_kindlys_own_logic() -> None:
    tree = ast.parse(Path(checker.__file__).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    forbidden = {
        "kindly.domain.policy.schedule",
        "kindly.domain.effects",
        "kindly.domain.completions",
        "kindly.domain.state",
        "kindly.domain.policy.replies",
    }
    assert not imported & forbidden
    assert not any(str(module).startswith(("workflows", "activities")) for module in imported)


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("  Stop \n", "opt_out"),
        ("td", "opt_out"),
        ("退订", "opt_out"),
        ("please stop texting", "other"),
        ("HELP", "help"),
        ("I LOST MY JOB", "hardship"),
        ("stop, this is not my loan", "dispute"),
        ("我失业了", "hardship"),
    ],
)
def test_replies_are_read_from_the_policys_keywords(text: str, intent: str) -> None:
    keywords = ContactPolicy().reply_keywords.model_dump()
    assert checker._intent(text, keywords) == intent


# --- 1. one message per key ---------------------------------------------------------------------


def test_two_deliveries_of_one_key_are_caught() -> None:
    world = clean_world()
    key = world.sms("in", "2026-03-23 10:00", "follow_up", outcome="lost_answer")
    world.sms("in", "2026-03-23 10:05", "follow_up", key=key)  # delivered again
    violations = only(world.build(), "one_message_per_key")
    assert "reached the customer 2 times" in violations[0].detail


def test_a_key_whose_text_changed_after_the_gateway_took_it_is_caught() -> None:
    world = clean_world()
    key = world.sms("in", "2026-03-23 10:00", "follow_up", outcome="lost_answer", body="3 days past due")
    world.sms("in", "2026-03-24 10:00", "follow_up", key=key, outcome="duplicate", body="4 days past due")
    assert "different values of body" in only(world.build(), "one_message_per_key")[0].detail


def test_a_key_rendered_again_before_the_gateway_took_it_is_fine() -> None:
    world = clean_world()
    key = world.sms("in", "2026-03-23 19:59", "follow_up", outcome="refused", body="3 days past due")
    world.sms("in", "2026-03-24 09:15", "follow_up", key=key, body="4 days past due")
    assert check(world.build()) == []


# --- 2. legal window ----------------------------------------------------------------------------


def test_a_night_time_send_is_caught() -> None:
    world = clean_world()
    world.sms("in", "2026-03-07 22:15", "help")  # service message, but after the 22:00 legal end
    violations = only(world.build(), "legal_window")
    assert "legal window 08:00-22:00" in violations[0].detail


def test_windows_follow_daylight_saving_time() -> None:
    world = World()
    world.account("ny", zone=NEW_YORK, due="2026-03-20", segment="us")
    world.sms("ny", "2026-03-06 08:30", "pre_due")  # EST: before the preferred 09:00
    world.sms("ny", "2026-03-09 20:30", "pre_due")  # EDT: 00:30 UTC, 19:30 were it still EST
    world.sms("ny", "2026-03-10 09:05", "pre_due")  # EDT: 13:05 UTC, 08:05 were it still EST: fine
    violations = only(world.build(), "legal_window")
    assert [v.detail.split(" at ")[1][:25] for v in violations] == [
        "2026-03-06T08:30:00-05:00",
        "2026-03-09T20:30:00-04:00",
    ]
    assert all("preferred window 09:00-20:00" in v.detail for v in violations)


def test_half_hour_offsets_reminders_and_service_messages() -> None:
    world = World()
    world.account("in", zone=KOLKATA, due="2026-03-20")
    world.sms("in", "2026-03-06 08:45", "pre_due")  # 03:15 UTC: before the preferred window
    world.sms("in", "2026-03-07 08:45", "help")  # a service message may go from 08:00
    world.sms("in", "2026-03-08 21:50", "opt_out_confirmation")  # and until 22:00
    world.sms("in", "2026-03-09 19:59:59", "pre_due")
    violations = only(world.build(), "legal_window")
    assert len(violations) == 1
    assert "2026-03-06T08:45:00+05:30" in violations[0].detail


def test_the_customers_own_window_narrows_reminders_only_when_it_leaves_a_window() -> None:
    world = World()
    world.account("late", zone=SHANGHAI, due="2026-03-20", contact_after="10:00:00")
    world.account("odd", zone=SHANGHAI, due="2026-03-20", contact_after="21:00:00")
    world.sms("late", "2026-03-06 09:30", "pre_due")  # before the customer's 10:00
    world.sms("odd", "2026-03-06 09:30", "pre_due")  # 21:00-20:00 is empty: ignored
    violations = only(world.build(), "legal_window")
    assert [v.account_id for v in violations] == ["late"]
    assert "preferred window 10:00-20:00" in violations[0].detail


def test_a_new_time_zone_counts_from_its_update() -> None:
    world = World()
    world.account("mover", zone=SHANGHAI, due="2026-03-20")
    world.signal("mover", "2026-03-05 12:00", "update_contact", {"timezone": NEW_YORK})
    # 09:30 in New York is 22:30 in Shanghai: fine now; the same instant before the move was not.
    world.sms("mover", "2026-03-06 09:30", "pre_due", zone=NEW_YORK)
    world.sms("mover", "2026-03-04 09:30", "pre_due", zone=NEW_YORK)
    violations = only(world.build(), "legal_window")
    assert len(violations) == 1
    assert "2026-03-04T22:30:00+08:00 Asia/Shanghai" in violations[0].detail


def test_a_rejected_zone_update_changes_nothing() -> None:
    world = World()
    world.account("stay", zone=SHANGHAI, due="2026-03-20")
    world.signal("stay", "2026-03-05 12:00", "update_contact", {"timezone": NEW_YORK}, accepted=False)
    world.sms("stay", "2026-03-06 09:30", "pre_due", zone=NEW_YORK)
    assert only(world.build(), "legal_window")


# --- 3. blocked days ----------------------------------------------------------------------------


def test_a_reminder_on_a_mainland_holiday_is_caught() -> None:
    world = World(start=datetime(2026, 9, 20, tzinfo=UTC))
    world.account("cn", zone=SHANGHAI, due="2026-09-28", segment="cn")
    world.sms("cn", "2026-09-29 10:00", "first_overdue")
    world.sms("cn", "2026-10-01 10:00", "follow_up")  # National Day
    world.sms("cn", "2026-10-08 10:00", "follow_up")
    violations = only(world.build(), "blocked_day")
    assert len(violations) == 1
    assert "2026-10-01T10:00:00+08:00" in violations[0].detail and "cn public holiday" in violations[0].detail


def test_holidays_are_local_days() -> None:
    # 2026-09-30 20:00 UTC is already National Day in Shanghai.
    world = World(start=datetime(2026, 9, 20, tzinfo=UTC))
    world.account("cn", zone=SHANGHAI, due="2026-09-28", segment="cn")
    world.sms("cn", "2026-10-01 04:00", "follow_up", zone="UTC")
    assert "cn public holiday" in only(world.build(), "blocked_day")[0].detail


def test_blocked_dates_and_birthdays_hold_reminders_but_not_service_messages() -> None:
    world = World()
    world.account("b", zone=KOLKATA, due="2026-03-05", segment="blocked", birthday="1990-03-14")
    world.sms("b", "2026-03-12 10:00", "follow_up")  # a blocked date
    world.sms("b", "2026-03-14 10:00", "follow_up")  # the birthday
    world.sms("b", "2026-03-14 11:00", "help")  # a reply the customer asked for
    violations = only(world.build(), "blocked_day")
    assert ["blocked date" in violations[0].detail, "birthday" in violations[1].detail] == [True, True]


# --- 4. caps ------------------------------------------------------------------------------------


def test_two_reminders_on_one_local_day_are_caught() -> None:
    # 09:00 and 19:00 on 2026-03-10 in Auckland are on two UTC days.
    world = World()
    world.account("nz", zone=AUCKLAND, due="2026-03-05", segment="capped")
    world.sms("nz", "2026-03-10 09:00", "follow_up")
    world.sms("nz", "2026-03-10 19:00", "follow_up")
    violations = only(world.build(), "caps")
    assert "2 reminders on local day 2026-03-10" in violations[0].detail


def test_more_reminders_in_seven_days_than_the_cap_are_caught() -> None:
    world = World()
    world.account("in", zone=KOLKATA, due="2026-03-05", segment="capped")
    world.sms("in", "2026-03-06 10:00", "first_overdue")
    world.sms("in", "2026-03-08 10:00", "follow_up")
    world.sms("in", "2026-03-08 12:00", "help")  # service messages are not capped
    world.sms("in", "2026-03-12 10:00", "follow_up")  # the third in 03-06..03-12
    world.sms("in", "2026-03-15 10:00", "follow_up")  # 03-12 and 03-15 alone in 03-09..03-15: fine
    violations = only(world.build(), "caps")
    assert [v.detail for v in violations] == [
        "3 reminders in local days 2026-03-06..2026-03-12 (max_sms_per_7_days 2)"
    ]


# --- 5. holds -----------------------------------------------------------------------------------


def test_a_reminder_while_paused_is_caught() -> None:
    world = clean_world()
    world.sms("ny", "2026-03-13 10:00", "follow_up")
    violations = only(world.build(), "holds")
    assert "paused since 2026-03-12T12:00:00-04:00" in violations[0].detail


def test_a_reminder_already_on_the_wire_when_the_pause_came_is_not_counted() -> None:
    world = clean_world()
    world.sms("ny", "2026-03-12 12:00:10", "follow_up")  # 10 s after the pause
    assert check(world.build()) == []
    world = clean_world()
    world.sms("ny", "2026-03-12 12:00:45", "follow_up")  # 45 s: it should have been cancelled
    assert len(only(world.build(), "holds")) == 1


def test_a_pause_ends_at_its_until() -> None:
    world = World()
    world.account("p", zone=KOLKATA, due="2026-03-05")
    until = world.local("p", "2026-03-10 09:00")
    world.signal("p", "2026-03-08 12:00", "pause", {"reason": "travel", "until": until.isoformat()})
    world.sms("p", "2026-03-09 10:00", "follow_up")  # held
    world.sms("p", "2026-03-10 09:00", "follow_up")  # the moment the pause ends
    world.signal("p", "2026-03-12 12:00", "pause", {"reason": 42}, accepted=False)
    world.sms("p", "2026-03-13 10:00", "follow_up")  # a rejected pause holds nothing
    violations = only(world.build(), "holds")
    assert len(violations) == 1 and "2026-03-09T10:00:00+05:30" in violations[0].detail


def test_a_reminder_during_a_promise_is_caught() -> None:
    world = clean_world()
    world.sms("ny", "2026-03-25 18:00", "broken_promise")  # the promised day itself: grace runs to 03-26
    violations = only(world.build(), "holds")
    assert "holds contact until local day 2026-03-26" in violations[0].detail


def test_a_promise_on_the_phone_holds_contact_too() -> None:
    world = World()
    world.account("p", zone=SHANGHAI, due="2026-03-05")
    world.signal(
        "p", "2026-03-08 12:00", "call_outcome", {"outcome": "promise_to_pay", "promise_date": "2026-03-10"}
    )
    world.sms("p", "2026-03-10 10:00", "follow_up")  # the promised day: held (grace 1)
    world.sms("p", "2026-03-11 10:00", "broken_promise")  # its release day
    assert len(only(world.build(), "holds")) == 1


# --- 6. after STOP ------------------------------------------------------------------------------


def test_a_message_after_stop_other_than_the_confirmation_is_caught() -> None:
    world = clean_world()
    world.sms("cn", "2026-03-05 10:00", "follow_up")
    violations = only(world.build(), "after_stop")
    assert (
        "follow_up" in violations[0].detail and "opt-out of 2026-03-04T10:00:00+08:00" in violations[0].detail
    )


def test_the_confirmation_goes_once() -> None:
    world = clean_world()
    world.sms("cn", "2026-03-04 10:30", "opt_out_confirmation")
    assert "2 opt-out confirmations" in only(world.build(), "after_stop")[0].detail


def test_a_reminder_on_the_wire_at_stop_is_not_counted() -> None:
    world = clean_world()
    world.sms("cn", "2026-03-04 10:00:10", "first_overdue")
    assert check(world.build()) == []


def test_stop_is_read_by_the_checker_not_taken_from_the_timeline() -> None:
    # The workflow (here) failed to hear "Stop " as an opt-out: the checker still does.
    world = World()
    world.account("s", zone=SHANGHAI, due="2026-03-05")
    at = world.local("s", "2026-03-06 10:00")
    action = Action(
        at - START, "reply_webhook", "customer_reply", {"from": world.phone("s"), "text": "Stop "}
    )
    world.observations.deliveries.append(Delivery("s", action, at, "200"))
    world.sms("s", "2026-03-13 10:00", "follow_up")
    assert len(only(world.build(), "after_stop")) == 1


def test_a_reply_from_another_number_does_not_stop_the_account() -> None:
    world = World()
    world.account("s", zone=SHANGHAI, due="2026-03-05")
    at = world.local("s", "2026-03-06 10:00")
    action = Action(at - START, "reply_webhook", "customer_reply", {"from": "+8613900000000", "text": "STOP"})
    world.observations.deliveries.append(Delivery("s", action, at, "200"))
    world.sms("s", "2026-03-13 10:00", "follow_up")
    assert check(world.build()) == []


# --- 7. escalation ------------------------------------------------------------------------------


def test_a_message_after_the_account_ended_is_caught() -> None:
    world = clean_world()
    world.sms("cn", "2026-03-07 10:00", "follow_up")
    [violation] = of(world.build(), "after_end")
    assert "follow_up" in violation.detail and "ended at 2026-03-06T11:00:00+08:00" in violation.detail


def test_the_owed_confirmation_and_a_send_on_the_wire_may_follow_the_end() -> None:
    world = World()
    world.account("cn", zone=SHANGHAI, due="2026-03-03")
    world.end("cn", amount_due="0.00")
    world.payment("cn", "2026-03-06 11:00", "1000.00", "PAY-CN-1", left="0.00")
    world.note("cn", world.local("cn", "2026-03-06 11:00"), TimelineKind.REPAID, "paid in full")
    world.sms("cn", "2026-03-06 11:00:10", "first_overdue")  # on the wire when the payment came
    world.sms("cn", "2026-03-06 12:00", "opt_out_confirmation")
    assert of(world.build(), "after_end") == []


def test_a_message_stating_an_amount_a_payment_changed_is_caught() -> None:
    world = clean_world()
    world.sms("ny", "2026-04-03 09:30", "follow_up", key="overdue-ny/run/tp-late", body="USD 1,000.00 is due")
    [violation] = of(world.build(), "stated_amount")
    assert "states 1000.00; 700.00 was owed" in violation.detail


def test_the_amount_owed_or_one_on_the_wire_when_a_payment_came_is_true() -> None:
    world = clean_world()
    world.sms("ny", "2026-03-27 11:00:10", "follow_up", body="USD 1,000.00 is due")  # on the wire
    world.sms("ny", "2026-04-03 09:30", "follow_up", body="USD 700.00 is due")
    assert of(world.build(), "stated_amount") == []


def test_a_call_task_after_one_unanswered_reminder_is_caught() -> None:
    world = World()
    world.account("e", zone=KOLKATA, due="2026-03-05")
    world.sms("e", "2026-03-06 09:15", "first_overdue")
    world.handoff("e", "2026-03-13 09:15")
    violations = only(world.build(), "escalation")
    assert "after only 1 unanswered overdue reminder(s)" in violations[0].detail


def test_an_answer_starts_the_count_again() -> None:
    world = World()
    world.account("e", zone=KOLKATA, due="2026-03-05")
    world.sms("e", "2026-03-05 09:15", "due_today")  # not an overdue reminder
    world.sms("e", "2026-03-06 09:15", "first_overdue")
    world.sms("e", "2026-03-13 09:15", "follow_up")
    world.reply("e", "2026-03-14 10:00", "who is this?")
    world.sms("e", "2026-03-20 09:15", "follow_up")
    world.sms("e", "2026-03-27 09:15", "follow_up")
    world.handoff("e", "2026-04-03 09:15")
    assert "after only 2 unanswered" in only(world.build(), "escalation")[0].detail


def test_a_reached_call_starts_a_new_phone_stage() -> None:
    world = clean_world()
    world.signal("in", "2026-03-29 15:00", "call_outcome", {"outcome": "reached"})
    world.handoff("in", "2026-03-30 09:15")  # a new first call, with no reminder since the answer
    details = [v.detail for v in only(world.build(), "escalation")]
    # ... and the specialists after it came with one call task of the new stage, not two.
    assert len(details) == 2
    assert "call task" in details[0] and "after only 0 unanswered" in details[0]
    assert "specialist case" in details[1] and "1 call task(s) (phone_attempts 2)" in details[1]


def test_undeliverable_numbers_go_to_the_phone_at_once() -> None:
    world = World()
    world.account("u", zone=SHANGHAI, due="2026-03-05")
    world.sms("u", "2026-03-06 09:15", "first_overdue")
    world.signal("u", "2026-03-07 09:00", "sms_undeliverable", {"reason": "carrier"})
    world.handoff("u", "2026-03-07 09:01")
    assert check(world.build()) == []


def test_a_specialist_case_without_a_reason_is_caught() -> None:
    world = World()
    world.account("s", zone=SHANGHAI, due="2026-03-05")
    world.sms("s", "2026-03-06 09:15", "first_overdue")
    world.reply("s", "2026-03-06 12:00", "I lost everything, sorry")  # no hardship keyword
    world.handoff("s", "2026-03-06 12:01", "specialist")
    assert "with no reason" in only(world.build(), "escalation")[0].detail


def test_hardship_and_phone_outcomes_bring_the_specialists() -> None:
    world = World()
    world.account("h", zone=SHANGHAI, due="2026-03-05")
    world.reply("h", "2026-03-06 12:00", "I LOST MY JOB last week")
    world.handoff("h", "2026-03-06 12:00:01", "specialist")
    world.account("w", zone=SHANGHAI, due="2026-03-05", segment="plain")
    world.signal("w", "2026-03-06 12:00", "call_outcome", {"outcome": "wrong_number"})
    world.handoff("w", "2026-03-06 12:00:02", "specialist")
    assert check(world.build()) == []


def test_a_straight_to_specialist_segment_still_waits_for_the_count() -> None:
    world = World()
    world.account("st", zone=SHANGHAI, due="2026-03-05", segment="straight")
    world.sms("st", "2026-03-06 09:15", "first_overdue")
    world.sms("st", "2026-03-13 09:15", "follow_up")
    world.handoff("st", "2026-03-20 09:15", "specialist")
    assert only(world.build(), "escalation")
    world.sms("st", "2026-03-20 09:14", "follow_up")
    assert check(world.build()) == []


# --- 8. payments --------------------------------------------------------------------------------


def test_a_payment_credited_twice_is_caught() -> None:
    world = clean_world()
    at = world.local("ny", "2026-03-27 11:05")
    world.note("ny", at, TimelineKind.REPAYMENT_RECEIVED, "300.00 received (PAY-NY-1); 400.00 left")
    world.end("ny", amount_due="400.00")
    details = [v.detail for v in only(world.build(), "payments")]
    assert details == ["payment PAY-NY-1 credited 2 times"]


def test_the_amount_due_must_follow_the_credits() -> None:
    world = clean_world()
    world.end("ny", amount_due="1000.00")
    assert "less credits of 300.00 is 700.00" in only(world.build(), "payments")[0].detail


def test_a_completed_accounts_result_must_add_up() -> None:
    world = clean_world()
    world.end("cn", result={"outcome": "repaid", "amount_collected": "1300.00"})
    assert "amount_collected 1300.00" in only(world.build(), "payments")[0].detail


def test_a_settlement_counts_in_the_result() -> None:
    world = World()
    world.account("set", zone=SHANGHAI, due="2026-03-05")
    world.payment("set", "2026-03-07 10:00", "100.00", "PAY-1", left="900.00")
    world.signal("set", "2026-03-08 10:00", "settle", {"amount": "600.00", "reference": "SET-1"})
    result = {"outcome": "settled", "amount_collected": "700.00"}
    world.end("set", workflow_status="COMPLETED", result=result, stage="settled", amount_due="900.00")
    world.end("set", next_touchpoint_at=None)
    assert check(world.build()) == []


def test_a_payment_accepted_but_never_credited_is_caught() -> None:
    world = clean_world()
    world.payment("ny", "2026-03-30 11:00", "50.00", "PAY-NY-2", left="650.00", credited=False)
    assert "PAY-NY-2 answered 200" in only(world.build(), "payments")[0].detail


def test_a_payment_after_the_one_that_repaid_may_go_uncredited_though_the_end_is_recorded_later() -> None:
    """A workflow held up (its worker killed) takes its signals in one go: the full payment ends it, and
    one that arrived after it is ignored, though both were answered 200 before the end was recorded."""
    world = World()
    world.account("cn", zone=SHANGHAI, due="2026-03-03")
    world.payment("cn", "2026-03-06 11:00:00", "1000.00", "PAY-1", left="0.00", credited=False)
    world.payment("cn", "2026-03-06 11:00:03", "50.00", "PAY-2", left="0.00", credited=False)
    late = world.local("cn", "2026-03-06 11:00:20")
    world.note("cn", late, TimelineKind.REPAYMENT_RECEIVED, "1000.00 received (PAY-1); 0.00 left")
    world.note("cn", late, TimelineKind.REPAID, "paid in full")
    world.end("cn", workflow_status="COMPLETED", stage="repaid", amount_due="0.00", next_touchpoint_at=None)
    world.end("cn", result={"outcome": "repaid", "amount_collected": "1000.00"})
    assert of(world.build(), "payments") == []


def test_a_copy_of_a_payment_notice_is_not_a_second_payment() -> None:
    world = clean_world()
    first = next(d for d in world.observations.deliveries if d.action.payload.get("reference") == "PAY-NY-1")
    world.observations.deliveries.append(
        Delivery("ny", first.action, first.at + timedelta(minutes=40), "200")
    )
    assert check(world.build()) == []


# --- 9. liveness --------------------------------------------------------------------------------


def test_a_failed_workflow_is_caught() -> None:
    world = clean_world()
    world.end("in", workflow_status="FAILED")
    assert only(world.build(), "liveness")[0].detail == "workflow ended FAILED"


def test_a_running_account_must_have_a_next_touchpoint() -> None:
    world = clean_world()
    world.end("ny", next_touchpoint_at=None, search_attributes=None)
    assert "no next touchpoint" in only(world.build(), "liveness")[0].detail


def test_a_running_account_must_answer_its_queries() -> None:
    world = clean_world()
    world.end("ny", status=None)
    assert "status query" in only(world.build(), "liveness")[0].detail


def test_a_next_touchpoint_long_past_is_stuck() -> None:
    world = clean_world()
    stale = world.observations.ended_at - timedelta(days=3)
    world.end("ny", next_touchpoint_at=stale, search_attributes=None)
    assert "long past" in only(world.build(), "liveness")[0].detail


def test_an_open_ended_pause_needs_no_next_touchpoint_but_a_timed_one_does() -> None:
    world = World()
    world.account("p", zone=KOLKATA, due="2026-03-20")
    world.signal("p", "2026-03-08 12:00", "pause", {"reason": "dispute review"})
    world.end("p", stage="paused", paused=True, next_touchpoint_at=None)
    assert check(world.build()) == []
    until = world.local("p", "2026-05-01 09:00")
    world.signal("p", "2026-03-09 12:00", "pause", {"reason": "review", "until": until.isoformat()})
    assert "no next touchpoint" in only(world.build(), "liveness")[0].detail


# --- 10. search attributes ----------------------------------------------------------------------


def test_a_stale_search_attribute_is_caught() -> None:
    world = clean_world()
    end = world.observations.ends["ny"]
    assert end.search_attributes is not None
    end.search_attributes["UnansweredSms"] = 3
    end.search_attributes["NextTouchpointAt"] = None
    details = [v.detail for v in only(world.build(), "search_attributes")]
    assert len(details) == 2 and "UnansweredSms 3 but unanswered_sms 1" in details[0]


def test_a_stage_only_the_calendar_moved_is_not_stale() -> None:
    world = clean_world()
    end = world.observations.ends["ny"]
    assert end.search_attributes is not None
    end.search_attributes["CollectionStage"] = ["due"]  # due day's attributes, past local midnight
    assert check(world.build()) == []
    end.search_attributes["CollectionStage"] = "phone"
    assert "CollectionStage 'phone'" in only(world.build(), "search_attributes")[0].detail


def test_attributes_are_not_judged_while_a_send_is_in_flight() -> None:
    world = clean_world()
    end = world.observations.ends["ny"]
    assert end.search_attributes is not None
    end.search_attributes["UnansweredSms"] = 0
    world.sms("ny", "2026-04-10 09:30", "follow_up", outcome="refused")  # retrying at the end
    assert check(world.build()) == []


# --- the whole ----------------------------------------------------------------------------------


def test_check_reports_every_broken_promise_of_a_run() -> None:
    world = clean_world()
    world.sms("cn", "2026-03-05 10:00", "follow_up")  # after STOP
    world.sms("in", "2026-03-07 22:15", "help")  # at night
    world.end("in", workflow_status="TERMINATED")
    assert invariants(world.build()) == {"after_stop", "legal_window", "liveness"}
    assert all(str(v).startswith(f"[{v.invariant}] ") for v in check(world.build()))

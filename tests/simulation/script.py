"""Seeded random scripts: many accounts, each with a random history of customers, operators and payments.

``generate(seed, accounts=..., days=...)`` is deterministic: the faults come from ``random.Random(seed)``,
and account ``n`` from its own ``random.Random`` derived from ``(seed, n)``, so account ``n``'s script is
the same whatever the number of accounts (a failing account can be replayed alone).

An account's history is planned as random instants in ``[0, days)``; each instant is given a kind of
action (one small function per kind, below) and made into an ``Action`` in time order, so that each
function sees the account as the script left it: what is still owed, the references already paid, the
phone number in use. Some kinds ask for a follow-up later (a kept promise's payment, a pause's resume, a
payment sent again); the last planned instant gives way to it if need be: at most ten actions.

The run's start is known only when it runs, so dates are relative and the runner makes them absolute:

- account: ``due_in_days`` (-> ``due_date`` = start date + n days) and ``birthday_in_days`` (optional,
  -> ``birthday``: that day's month and day, in some past year);
- ``promise_to_pay``: ``{"date_in_days": k}`` -> ``date`` = the customer's local date at the action's
  instant + k (k >= 1, so a UTC or local reading of "today" both keep it in the future);
- ``call_outcome`` ``promise_to_pay``: ``promise_date_in_days`` -> ``promise_date``, the same way;
- ``pause``: ``until_in_hours`` (optional) -> ``until`` = the action's instant + h hours (aware).

Reply webhooks carry ``{"from", "text", "message_id"}``: the message id is the script's own, unique and
stable when a shrinker drops other actions (copies of the action are duplicates of one message); payment
webhooks ``{"account_id", "amount", "reference"}``. About 5% of
the actions are hostile signals (wrong types, missing fields, huge strings, negative amounts, unknown
names): the contract refuses every one of them (``hostile_payloads``).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from tests.simulation.model import AccountScript, Action, Faults, Script
from tests.simulation.policies import SEGMENTS

MAX_ACTIONS = 10
QUIET_SHARE = 0.15
"""The share of accounts nobody touches: the workflow alone, reminders and escalation."""
HOSTILE_RATE = 0.05
WEBHOOK_COPIES_RATE = 0.12
"""How often a webhook is delivered two or three times (the sender's retries)."""
MAX_PHONE_CHANGES = 3

ZONES = (
    # Daylight saving time.
    "America/New_York",
    "America/Los_Angeles",
    "Europe/London",
    "Australia/Sydney",
    # Half- and quarter-hour offsets.
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Adelaide",
    "America/St_Johns",
    # No DST, the mainland's own zone.
    "Asia/Shanghai",
)

CONTACT_WINDOWS: tuple[tuple[str | None, str | None], ...] = (
    ("10:00:00", "18:00:00"),
    ("09:30:00", "20:30:00"),
    ("12:00:00", "14:00:00"),
    ("11:00:00", None),
    (None, "17:00:00"),
)

NAMES = {
    "zh-CN": ("王芳", "李伟", "张敏", "刘洋", "陈静", "杨磊"),
    "en-US": ("Alex Morgan", "Sam Rivera", "Jordan Lee", "Taylor Brooks", "Casey Nguyen", "Robin Ortiz"),
}
US_AREA_CODES = ("212", "415", "646", "312", "617", "206", "305")

REPLIES: dict[str, tuple[str, ...]] = {
    "opt_out": ("STOP", "stop", "退订", "TD", " Stop ", "UNSUBSCRIBE"),
    "help": ("HELP", "帮助", "help"),
    "hardship_zh": ("我失业了，现在真的没钱", "最近住院了，暂时还不起", "家里有困难，能不能晚点还"),
    "hardship_en": ("I lost my job last month", "medical bills, I can't pay right now", "got laid off"),
    "dispute_zh": ("这不是我的贷款，我没借过", "金额不对，我要投诉", "我的身份被盗用了"),
    "dispute_en": ("This is not my loan", "I dispute this, wrong amount", "I never borrowed anything"),
    "other_zh": ("好的，下周还", "知道了", "你们是哪家公司？", "可以分期吗"),
    "other_en": ("ok will pay friday", "who is this?", "please stop calling my mother", "thanks"),
}
"""Reply texts by keyword family (``kindly.domain.policy.replies``), in both languages where the family has
phrases; ``other`` includes "please stop calling my mother", which is not an opt-out."""
REPLY_WEIGHTS = {"opt_out": 4, "help": 2, "hardship": 2, "dispute": 2, "other": 6}

PAUSE_REASONS = ("customer travelling", "bereavement", "complaint under review", "agreed by supervisor")
CLOSE_REASONS = ("written off", "sold to agency", "deceased", "duplicate account")
UNDELIVERABLE_REASONS = ("carrier: number disconnected", "carrier: landline", "carrier: blocked")
CALL_OUTCOMES = ("reached", "no_answer", "promise_to_pay", "wrong_number", "refused")
HUGE = "九" * 2000 + "x" * 2000
RETRY_TRIGGERED = 0.4
"""The share of accounts given one more action, delivered while one of their messages is retrying."""
DURING_OUTAGE = 0.3
"""The share of an account's actions that fall inside a gateway outage (when there are outages)."""


def generate(
    seed: int, *, accounts: int, days: int, faults: Faults | None = None, hostile_rate: float = HOSTILE_RATE
) -> Script:
    """A script of ``accounts`` accounts over ``days`` days; ``faults`` ``None`` draws modest faults
    from the seed (pass ``Faults()`` for none). ``hostile_rate`` is the share of hostile signals."""
    if accounts < 0 or accounts > 1_000_000:
        raise ValueError("accounts: 0 to 1,000,000 (phone numbers encode the account's index)")
    if days < 1:
        raise ValueError("days: at least 1")
    rng = random.Random(seed)
    if faults is None:
        faults = default_faults(rng, days=days)
    scripts = tuple(
        account_script(seed, n, days=days, hostile_rate=hostile_rate, outages=faults.outages)
        for n in range(accounts)
    )
    return Script(seed=seed, days=days, accounts=scripts, faults=faults)


def default_faults(rng: random.Random, *, days: int = 30) -> Faults:
    """Modest fault rates, and a gateway outage of 2-10 hours about every ten days (at least two): long
    enough that reminders retry through them while customers and operators act."""
    run = days * 86_400
    outages = []
    for _ in range(max(2, days // 10)):
        length = rng.randint(120, 600) * 60
        start = rng.randrange(max(1, (run - length) // 60)) * 60
        outages.append((timedelta(seconds=start), timedelta(seconds=min(run, start + length))))
    return Faults(
        sms_refused=round(rng.uniform(0.05, 0.10), 3),
        sms_timeout=round(rng.uniform(0.01, 0.03), 3),
        sms_lost_answer=round(rng.uniform(0.02, 0.04), 3),
        handoff_refused=round(rng.uniform(0.06, 0.12), 3),
        outages=tuple(sorted(outages)),
    )


def account_script(
    seed: int,
    n: int,
    *,
    days: int,
    hostile_rate: float = HOSTILE_RATE,
    outages: tuple[tuple[timedelta, timedelta], ...] = (),
) -> AccountScript:
    """Account ``n`` of the script for ``seed``: the same whatever the number of accounts. A share of
    its actions fall inside the gateway's ``outages``, when a reminder may be retrying."""
    rng = random.Random(f"kindly-sim/{seed}/{n}")
    account = _account(rng, seed, n, days)
    state = _Account(
        rng=rng, n=n, end=timedelta(days=days), account=account, hostile_rate=hostile_rate, outages=outages
    )
    return AccountScript(account, state.play())


# --- the account -----------------------------------------------------------------------------------


def _account(rng: random.Random, seed: int, n: int, days: int) -> dict[str, Any]:
    segment = rng.choice(SEGMENTS)
    region = {"sim_cn": "cn", "sim_us": "us"}.get(segment) or rng.choice(("cn", "us"))
    home = "zh-CN" if region == "cn" else "en-US"
    locale = home if rng.random() < 0.85 else ("en-US" if home == "zh-CN" else "zh-CN")
    account: dict[str, Any] = {
        "account_id": f"SIM-{seed}-{n}",
        "customer_name": rng.choice(NAMES[locale]),
        "phone": _phone(region, n, 0, rng.choice(US_AREA_CODES)),
        "timezone": rng.choice(ZONES),
        "locale": locale,
        "amount_due": _money(rng.randint(10_000, 500_000)),
        "currency": "CNY" if region == "cn" else "USD",
        "segment": segment,
        "due_in_days": rng.randint(-10, 20),
    }
    if rng.random() < 0.3:
        account["birthday_in_days"] = rng.randrange(days)
    if rng.random() < 0.3:
        after, before = rng.choice(CONTACT_WINDOWS)
        if after is not None:
            account["contact_after"] = after
        if before is not None:
            account["contact_before"] = before
    return account


def _phone(region: str, n: int, change: int, area: str) -> str:
    """Distinct for each (account index, number of changes): the index is in the last digits."""
    if region == "cn":
        return f"+86139{change}{n:07d}"
    return f"+1{area}{change + 2}{n:06d}"


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _cents(amount: str) -> int:
    whole, _, fraction = amount.partition(".")
    return int(whole) * 100 + int((fraction + "00")[:2])


# --- the history -----------------------------------------------------------------------------------

Kind = Callable[["_Account", timedelta], Action]


@dataclass
class _Account:
    """An account's history as it is written: what is owed, what was paid, the phone in use."""

    rng: random.Random
    n: int
    end: timedelta
    account: dict[str, Any]
    hostile_rate: float
    outages: tuple[tuple[timedelta, timedelta], ...] = ()
    remaining: int = 0
    """Cents still owed, as the script's payments so far leave it."""
    phone: str = ""
    """The number the customer writes from now."""
    payments: list[dict[str, Any]] = field(default_factory=list)
    phone_changes: int = 0
    serial: int = 0
    planned: list[timedelta] = field(default_factory=list)
    pending: list[tuple[timedelta, int, str]] = field(default_factory=list)
    written: int = 0

    def __post_init__(self) -> None:
        self.remaining, self.phone = _cents(self.account["amount_due"]), str(self.account["phone"])

    @property
    def account_id(self) -> str:
        return str(self.account["account_id"])

    def play(self) -> tuple[Action, ...]:
        rng = self.rng
        count = 0 if rng.random() < QUIET_SHARE else rng.randint(1, MAX_ACTIONS)
        seconds = int(self.end.total_seconds())
        self.planned = sorted(self.moment(seconds) for _ in range(count))
        actions = []
        while self.planned or self.pending:
            if self.pending and (not self.planned or self.pending[0][0] <= self.planned[0]):
                after, _, name = heapq.heappop(self.pending)
                kind = FOLLOW_UPS[name]
            else:
                after = self.planned.pop(0)
                kind = self.pick()
            actions.append(kind(self, after))
            self.written += 1
        if rng.random() < RETRY_TRIGGERED:
            # A change that may make a retrying message unwanted, some seconds to minutes into its retries.
            delay = timedelta(seconds=rng.randint(20, 1200))
            change = rng.choice(MID_RETRY_CHANGES)(self, delay)
            actions.append(replace(change, trigger="retrying"))
        return tuple(actions)

    def moment(self, seconds: int) -> timedelta:
        """A random instant of the run; with ``DURING_OUTAGE`` chance one inside an outage."""
        if self.outages and self.rng.random() < DURING_OUTAGE:
            start, end = self.rng.choice(self.outages)
            return timedelta(
                seconds=self.rng.randint(int(start.total_seconds()), int(end.total_seconds()) - 1)
            )
        return timedelta(seconds=self.rng.randrange(seconds))

    def pick(self) -> Kind:
        rng = self.rng
        if rng.random() < self.hostile_rate:
            return hostile
        weights = [weight for weight, _ in KINDS.values()]
        return rng.choices([kind for _, kind in KINDS.values()], weights=weights)[0]

    def later(self, after: timedelta, name: str, low: timedelta, high: timedelta) -> None:
        """Ask for a follow-up ``name`` between ``low`` and ``high`` after ``after``: none past the end,
        and none beyond ``MAX_ACTIONS`` (the last planned instant gives way to it if need be)."""
        when = after + timedelta(
            seconds=self.rng.randint(int(low.total_seconds()), int(high.total_seconds()))
        )
        if when >= self.end:
            return
        if self.written + 1 + len(self.planned) + len(self.pending) + 1 > MAX_ACTIONS:
            if not self.planned:
                return
            self.planned.pop()
        heapq.heappush(self.pending, (when, self.next_serial(), name))

    def next_serial(self) -> int:
        self.serial += 1
        return self.serial

    def copies(self) -> int:
        return self.rng.choice((2, 3)) if self.rng.random() < WEBHOOK_COPIES_RATE else 1

    def pay(self, after: timedelta, cents: int) -> Action:
        """A new payment of ``cents`` through the payment webhook; what is owed goes down."""
        payload = {
            "account_id": self.account_id,
            "amount": _money(cents),
            "reference": f"{self.account_id}-p{self.next_serial()}",
        }
        self.remaining = max(0, self.remaining - cents)
        self.payments.append(payload)
        return Action(after, "payment_webhook", "repayment", payload, self.copies())

    def signal(self, after: timedelta, name: str, payload: dict[str, Any]) -> Action:
        return Action(after, "signal", name, payload)


# --- one function per kind of action ---------------------------------------------------------------


def reply(acc: _Account, after: timedelta) -> Action:
    """An SMS from the customer's current number, in any keyword family, mostly in their language."""
    rng = acc.rng
    family = rng.choices(list(REPLY_WEIGHTS), weights=list(REPLY_WEIGHTS.values()))[0]
    if family not in REPLIES:
        own = "zh" if acc.account["locale"] == "zh-CN" else "en"
        other = "en" if own == "zh" else "zh"
        family = f"{family}_{own if rng.random() < 0.75 else other}"
    payload = {
        "from": acc.phone,
        "text": rng.choice(REPLIES[family]),
        "message_id": f"{acc.account_id}-m{acc.next_serial()}",
    }
    return Action(after, "reply_webhook", "customer_reply", payload, acc.copies())


def partial_payment(acc: _Account, after: timedelta) -> Action:
    """Part of what is left (all of it when little is left; a reply instead when nothing is)."""
    if acc.remaining == 0:
        return reply(acc, after)
    if acc.remaining < 200:
        return full_payment(acc, after)
    share = acc.rng.uniform(0.1, 0.6)
    return acc.pay(after, max(1, min(acc.remaining - 1, round(acc.remaining * share))))


def full_payment(acc: _Account, after: timedelta) -> Action:
    """Exactly what is left (a reply instead when nothing is: late payments are ``late_payment``'s)."""
    if acc.remaining == 0:
        return reply(acc, after)
    return acc.pay(after, acc.remaining)


def duplicate_payment(acc: _Account, after: timedelta) -> Action:
    """An earlier payment notified again (same reference and amount); with none yet, a payment now and
    its duplicate later."""
    if acc.payments:
        payload = dict(acc.rng.choice(acc.payments))
        return Action(after, "payment_webhook", "repayment", payload, acc.copies())
    acc.later(after, "duplicate_payment", timedelta(minutes=1), timedelta(days=5))
    return partial_payment(acc, after)


def late_payment(acc: _Account, after: timedelta) -> Action:
    """A payment after the account is paid; if it is not yet, it is paid now and the late one follows."""
    if acc.remaining > 0:
        acc.later(after, "late_payment", timedelta(hours=1), timedelta(days=7))
        return acc.pay(after, acc.remaining)
    return acc.pay(after, acc.rng.randint(1_000, 50_000))


def kept_promise_payment(acc: _Account, after: timedelta) -> Action:
    """The payment that keeps a promise: mostly all that is left, sometimes part of it."""
    if acc.rng.random() < 0.7:
        return full_payment(acc, after)
    return partial_payment(acc, after)


def promise(acc: _Account, after: timedelta, *, kept: bool) -> Action:
    days = acc.rng.randint(1, 14)
    if kept:
        acc.later(after, "kept_promise_payment", timedelta(minutes=30), timedelta(days=days))
    return acc.signal(after, "promise_to_pay", {"date_in_days": days})


def kept_promise(acc: _Account, after: timedelta) -> Action:
    """A promise to pay, then a payment by its date (if the run lasts that long)."""
    return promise(acc, after, kept=True)


def broken_promise(acc: _Account, after: timedelta) -> Action:
    """A promise to pay and no payment planned for it."""
    return promise(acc, after, kept=False)


def pause_until(acc: _Account, after: timedelta) -> Action:
    payload = {"reason": acc.rng.choice(PAUSE_REASONS), "until_in_hours": acc.rng.randint(1, 240)}
    return acc.signal(after, "pause", payload)


def open_pause(acc: _Account, after: timedelta) -> Action:
    """A pause with no end, mostly resumed later."""
    if acc.rng.random() < 0.6:
        acc.later(after, "resume", timedelta(hours=1), timedelta(days=10))
    return acc.signal(after, "pause", {"reason": acc.rng.choice(PAUSE_REASONS)})


def resume(acc: _Account, after: timedelta) -> Action:
    return acc.signal(after, "resume", {})


def update_contact(acc: _Account, after: timedelta) -> Action:
    """A new phone number only; the customer's later replies come from it."""
    if acc.phone_changes >= MAX_PHONE_CHANGES:
        return reply(acc, after)
    acc.phone_changes += 1
    region = "cn" if acc.phone.startswith("+86") else "us"
    acc.phone = _phone(region, acc.n, acc.phone_changes, acc.phone[2:5])
    return acc.signal(after, "update_contact", {"phone": acc.phone})


def call_outcome(acc: _Account, after: timedelta) -> Action:
    outcome = acc.rng.choice(CALL_OUTCOMES)
    payload: dict[str, Any] = {"outcome": outcome}
    if outcome == "promise_to_pay":
        payload["promise_date_in_days"] = acc.rng.randint(1, 14)
    return acc.signal(after, "call_outcome", payload)


def settle(acc: _Account, after: timedelta) -> Action:
    """Settled for part of what is left (a discount), or for nothing more."""
    cents = round(acc.remaining * acc.rng.uniform(0.5, 0.9))
    payload = {"amount": _money(cents), "reference": f"{acc.account_id}-s{acc.next_serial()}"}
    return acc.signal(after, "settle", payload)


def close(acc: _Account, after: timedelta) -> Action:
    return acc.signal(after, "close", {"reason": acc.rng.choice(CLOSE_REASONS)})


def sms_undeliverable(acc: _Account, after: timedelta) -> Action:
    return acc.signal(after, "sms_undeliverable", {"reason": acc.rng.choice(UNDELIVERABLE_REASONS)})


def refresh_policy(acc: _Account, after: timedelta) -> Action:
    return acc.signal(after, "refresh_policy", {"reason": "simulation"})


def hostile(acc: _Account, after: timedelta) -> Action:
    """A signal the contract refuses."""
    name, payload = acc.rng.choice(hostile_payloads(acc.account_id))
    return acc.signal(after, name, payload)


def hostile_payloads(account_id: str) -> list[tuple[str, dict[str, Any]]]:
    """Every hostile signal: each refused by the contract (an invalid payload or an unknown name)."""
    ref = f"{account_id}-h"
    return [
        ("repayment", {"amount": "fifty", "reference": ref}),
        ("repayment", {"amount": "-25.00", "reference": ref}),
        ("repayment", {"amount": "12.345", "reference": ref}),
        ("repayment", {"amount": "10.00"}),
        ("repayment", {"amount": "10.00", "reference": HUGE}),
        ("customer_reply", {"text": HUGE}),
        ("customer_reply", {"text": 42}),
        ("customer_reply", {"txt": "STOP"}),
        ("pause", {"reason": ""}),
        ("pause", {"reason": "travel", "until": "next tuesday"}),
        ("pause", {"reason": "travel", "until": "2030-01-01T09:00:00"}),
        ("promise_to_pay", {"date": "soon"}),
        ("promise_to_pay", {}),
        ("settle", {"amount": -5, "reference": ref}),
        ("close", {}),
        ("close", {"reason": HUGE}),
        ("update_contact", {"phone": "13800138000"}),
        ("update_contact", {"timezone": "Mars/Olympus_Mons"}),
        ("call_outcome", {"outcome": "maybe"}),
        ("sms_undeliverable", {"reason": ["x"]}),
        ("resume", {"force": True}),
        ("pasue", {"reason": "typo"}),
        ("refund", {"amount": "10.00"}),
    ]


KINDS: dict[str, tuple[int, Kind]] = {
    "reply": (30, reply),
    "partial_payment": (10, partial_payment),
    "full_payment": (8, full_payment),
    "duplicate_payment": (4, duplicate_payment),
    "late_payment": (3, late_payment),
    "kept_promise": (4, kept_promise),
    "broken_promise": (3, broken_promise),
    "pause_until": (3, pause_until),
    "open_pause": (3, open_pause),
    "resume": (2, resume),
    "update_contact": (4, update_contact),
    "call_outcome": (5, call_outcome),
    "settle": (2, settle),
    "close": (2, close),
    "sms_undeliverable": (2, sms_undeliverable),
    "refresh_policy": (1, refresh_policy),
}
"""Each kind of action: its weight and its function (hostile signals apart: ``HOSTILE_RATE``)."""

FOLLOW_UPS: dict[str, Kind] = {
    "duplicate_payment": duplicate_payment,
    "late_payment": late_payment,
    "kept_promise_payment": kept_promise_payment,
    "resume": resume,
}
"""Kinds asked for later by another (``_Account.later``)."""

MID_RETRY_CHANGES: tuple[Kind, ...] = (
    reply,
    partial_payment,
    full_payment,
    open_pause,
    broken_promise,
    sms_undeliverable,
    update_contact,
    settle,
    close,
)
"""Changes worth making while a message retries: each may make it unwanted
(``kindly.domain.effects.cancels``)."""

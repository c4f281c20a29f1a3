"""The simulation's data: what happens to each account (the script), and what the world saw (observations).

A script is data, made from a seed (``tests.simulation.script``), run by ``tests.simulation.runner`` and
judged by ``tests.simulation.checker``. Everything here is JSON-able, so a failing script can be printed,
shrunk and replayed. Times are offsets from the simulation's start (scripts) or instants of the Temporal
server's simulated clock (observations).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

Trigger = Literal["time", "retrying"]
"""When an action happens: at its time (``after`` the start), or ``after`` the first moment the gateway
refuses one of the account's messages (so that it lands while a message is retrying)."""
Channel = Literal["signal", "reply_webhook", "payment_webhook", "receipt_webhook"]
"""How an action reaches the account: a Temporal signal (operators, the phone team), or a webhook through
Kindly's API (the carrier's inbound SMS and delivery receipts, the lender's payment notifications), routed
by phone number, message id or account id as in production."""


@dataclass(frozen=True)
class Action:
    """One thing a customer, an operator or another system does to an account."""

    after: timedelta
    """When, after the simulation's start."""
    channel: Channel
    name: str
    """The signal's name (``repayment``, ``pause``, ...); for webhooks ``customer_reply`` or ``repayment``."""
    payload: dict[str, Any]
    copies: int = 1
    """How many times a webhook is delivered (a sender's retries: duplicates, not replays)."""
    trigger: Trigger = "time"

    def to_json(self) -> dict[str, Any]:
        return {
            "after_seconds": int(self.after.total_seconds()),
            "channel": self.channel,
            "name": self.name,
            "payload": self.payload,
            "copies": self.copies,
            "trigger": self.trigger,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Action:
        return cls(
            after=timedelta(seconds=data["after_seconds"]),
            channel=data["channel"],
            name=data["name"],
            payload=data["payload"],
            copies=data.get("copies", 1),
            trigger=data.get("trigger", "time"),
        )


@dataclass(frozen=True)
class AccountScript:
    """An account and what happens to it, in time order. ``account`` is its ``AccountInput`` as JSON,
    except that the dates are relative to the run's start, which is only known when it runs: ``due_in_days``
    instead of ``due_date``, and ``birthday_in_days`` (optional) instead of ``birthday``."""

    account: dict[str, Any]
    actions: tuple[Action, ...] = ()

    @property
    def account_id(self) -> str:
        return str(self.account["account_id"])

    def to_json(self) -> dict[str, Any]:
        return {"account": self.account, "actions": [action.to_json() for action in self.actions]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AccountScript:
        return cls(data["account"], tuple(Action.from_json(a) for a in data["actions"]))


@dataclass(frozen=True)
class Faults:
    """How often each fault strikes, as probabilities per request (decided from the seed and the request's
    own identity, so a subset of the accounts meets the same faults)."""

    sms_refused: float = 0.0
    """The gateway answers 503."""
    sms_timeout: float = 0.0
    """The gateway holds the request past the client's timeout, and does not take the message."""
    sms_lost_answer: float = 0.0
    """The gateway takes the message, then answers 500: the sender cannot know it went."""
    handoff_refused: float = 0.0
    """A hand-off endpoint (phone team, specialists) answers 503."""
    outages: tuple[tuple[timedelta, timedelta], ...] = ()
    """Windows (start, end after the simulation's start) in which the SMS gateway refuses everything."""

    def to_json(self) -> dict[str, Any]:
        return {
            "sms_refused": self.sms_refused,
            "sms_timeout": self.sms_timeout,
            "sms_lost_answer": self.sms_lost_answer,
            "handoff_refused": self.handoff_refused,
            "outages": [[int(a.total_seconds()), int(b.total_seconds())] for a, b in self.outages],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Faults:
        return cls(
            sms_refused=data["sms_refused"],
            sms_timeout=data["sms_timeout"],
            sms_lost_answer=data["sms_lost_answer"],
            handoff_refused=data["handoff_refused"],
            outages=tuple((timedelta(seconds=a), timedelta(seconds=b)) for a, b in data["outages"]),
        )


@dataclass(frozen=True)
class Script:
    """A whole simulation: the accounts, their actions, the faults, and the seed they came from."""

    seed: int
    days: int
    accounts: tuple[AccountScript, ...]
    faults: Faults = field(default_factory=Faults)

    def to_json(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "days": self.days,
            "faults": self.faults.to_json(),
            "accounts": [account.to_json() for account in self.accounts],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Script:
        return cls(
            seed=data["seed"],
            days=data["days"],
            faults=Faults.from_json(data["faults"]),
            accounts=tuple(AccountScript.from_json(a) for a in data["accounts"]),
        )


# --- what the world saw -------------------------------------------------------------------------

SmsOutcome = Literal["delivered", "duplicate", "refused", "timeout", "lost_answer"]
"""``delivered``: the gateway took the message and the customer got it (``lost_answer`` too: taken, but
the answer was lost); ``duplicate``: a key it had already taken (not delivered again); ``refused`` and
``timeout``: not taken."""


@dataclass(frozen=True)
class SmsAttempt:
    """One request the SMS gateway received."""

    at: datetime
    """The simulated instant it arrived (UTC)."""
    key: str
    account_id: str
    to: str
    template: str
    body: str
    outcome: SmsOutcome

    @property
    def reached_customer(self) -> bool:
        return self.outcome in ("delivered", "lost_answer")


@dataclass(frozen=True)
class HandoffAttempt:
    """One request a hand-off endpoint received: a call task or a specialist case."""

    at: datetime
    key: str
    account_id: str
    kind: Literal["phone", "specialist"]
    accepted: bool


@dataclass(frozen=True)
class Delivery:
    """An action as the runner delivered it: when (simulated) and what the receiver answered."""

    account_id: str
    action: Action
    at: datetime
    answer: str
    """HTTP status for webhooks (e.g. ``200``), ``signalled`` or ``closed`` for signals."""


@dataclass
class AccountEnd:
    """An account at the end of the run, read through the public queries and the workflow's description."""

    account_id: str
    workflow_status: str
    """``RUNNING``, ``COMPLETED``, ``FAILED``, ..."""
    status: dict[str, Any] | None
    """The ``status`` query's answer (``AccountStatus`` as JSON)."""
    timeline: list[dict[str, Any]]
    """The ``timeline`` query's answer (``TimelineEntry`` as JSON)."""
    result: dict[str, Any] | None = None
    """The workflow's result (``AccountResult`` as JSON) when it completed."""
    search_attributes: dict[str, Any] | None = None
    """Kindly's search attributes as the server has them (dev-server runs only)."""


@dataclass
class Observations:
    """Everything the checker may look at: none of it read from Kindly's own database."""

    started_at: datetime
    """The simulated instant the run began: scripts' offsets count from it."""
    ended_at: datetime
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each account's ``AccountInput`` as started (JSON; due date and birthday made from the start)."""
    policies: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Each segment's ``ContactPolicy`` as the workers ran it (JSON)."""
    sms: list[SmsAttempt] = field(default_factory=list)
    handoffs: list[HandoffAttempt] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    ends: dict[str, AccountEnd] = field(default_factory=dict)


@dataclass(frozen=True)
class Violation:
    """A promise broken: which, for which account, and the evidence."""

    invariant: str
    account_id: str
    detail: str

    def __str__(self) -> str:
        return f"[{self.invariant}] {self.account_id}: {self.detail}"

"""An independent judge of a simulation run: Kindly's promises, checked from what the outside world saw.

The checker reads only :class:`~tests.simulation.model.Observations`: the SMS gateway's and the hand-off
endpoints' logs, the actions the runner delivered (and what the receiver answered), and each account's
public queries at the end. It re-derives the rules from the policy *data* (``ContactPolicy``, ``REGIMES``,
the holiday calendars) and never imports Kindly's planner, effects, state or workflow: a bug there must
not be able to hide itself here.

``check`` runs every invariant; each invariant is also a function of its own (``legal_window``,
``caps``, ...) returning the violations it found, so a test can ask for exactly one.

How the checker decides that an action took effect:

- a webhook (customer reply, payment notice) when it was answered ``200``; copies of one delivery (a
  sender's retries) take effect once, with the first copy answered ``200``. A reply reaches the account
  whose phone number (as of that moment) it comes from;
- a signal when it was ``signalled`` and the public timeline shows the entry of its kind within
  ``SIGNAL_MATCH`` after it (a bad payload, a past promise date or a resume of an account that is not
  paused leave a ``signal_rejected`` entry instead). It took effect at the later of the two instants.

Time is the simulated clock; a customer's local time is the instant in the account's zone as of that
moment (``update_contact`` may change the zone, the number and the customer's own window).
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from kindly.domain.contract import CallOutcomeKind, SignalName, Stage, TemplateName, TimelineKind
from kindly.domain.policy.calendars import load_calendar
from kindly.domain.policy.model import REGIMES, ContactPolicy
from tests.simulation.model import (
    AccountEnd,
    Delivery,
    HandoffAttempt,
    Observations,
    SmsAttempt,
    Violation,
)

IN_FLIGHT = timedelta(seconds=30)
"""A message (or call task) whose request reached the other side at most this long after a change took
effect (a pause, a promise, STOP, a new zone, an answer) may have been on the wire already: it is judged
by the account as it was just before the change. Used by ``holds``, ``after_stop``, ``legal_window``,
``blocked_day`` and ``escalation``."""
SIGNAL_MATCH = timedelta(seconds=60)
"""A signal is confirmed by a timeline entry of its kind at most this long after it was delivered."""
STUCK_AFTER = timedelta(days=1)
"""A running account whose next touchpoint is this far behind the end of the run is stuck (a send
retrying through an outage keeps its planned instant, but never past its day's window)."""
BUSY_AT_END = timedelta(days=1)
"""An SMS or hand-off still unconfirmed this close to the end may be in flight: the workflow publishes
its search attributes only after it, so they may lag the status query."""
SAME_INSTANT = timedelta(seconds=1)
"""Timeline instants are whole seconds: an entry may read up to this much earlier than its event."""

REMINDERS = frozenset(
    {
        TemplateName.PRE_DUE,
        TemplateName.DUE_TODAY,
        TemplateName.FIRST_OVERDUE,
        TemplateName.FOLLOW_UP,
        TemplateName.BROKEN_PROMISE,
        TemplateName.GENTLE_REMINDER,
        TemplateName.INSTALMENT_OFFER,
    }
)
OVERDUE_REMINDERS = REMINDERS - {TemplateName.PRE_DUE, TemplateName.DUE_TODAY}
"""The reminders that count as unanswered toward a call task."""
SERVICE_MESSAGES = frozenset({TemplateName.HELP, TemplateName.OPT_OUT_CONFIRMATION})
"""Replies the customer asked for: the service window, no holidays, no caps. Any other template is judged
as a reminder."""
HEALTHY_ENDS = frozenset({"RUNNING", "COMPLETED"})
_TERMINAL_KINDS = frozenset({TimelineKind.REPAID, TimelineKind.SETTLED, TimelineKind.CLOSED})
_DATE_STAGES = (Stage.PRE_DUE.value, Stage.DUE.value, Stage.OVERDUE.value)
_TAKEN = frozenset({"delivered", "lost_answer", "duplicate"})
"""Outcomes of a request whose key the gateway had taken (this time or before)."""

_CONFIRMED_BY: dict[str, str] = {
    SignalName.PAUSE: TimelineKind.PAUSED,
    SignalName.RESUME: TimelineKind.RESUMED,
    SignalName.PROMISE_TO_PAY: TimelineKind.PROMISE,
    SignalName.CALL_OUTCOME: TimelineKind.CALL_OUTCOME,
    SignalName.UPDATE_CONTACT: TimelineKind.CONTACT_UPDATED,
    SignalName.SMS_UNDELIVERABLE: TimelineKind.SMS_UNDELIVERABLE,
    SignalName.REPAYMENT: TimelineKind.REPAYMENT_RECEIVED,
    SignalName.SETTLE: TimelineKind.SETTLED,
    SignalName.CLOSE: TimelineKind.CLOSED,
    SignalName.CUSTOMER_REPLY: TimelineKind.REPLY_RECEIVED,
}
"""The timeline entry that shows a signal was accepted."""

_CREDIT = re.compile(r"^(?P<amount>\S+) received \((?P<reference>.*)\); \S+ left$")
_SETTLED = re.compile(r"^settled for (?P<amount>\S+) \((?P<reference>.*)\)$")
_PROMISED = re.compile(r"promised to pay by (?P<day>\d{4}-\d{2}-\d{2})")
_UNTIL = re.compile(r" until (?P<until>\S+)$")

Invariant = Callable[[Observations], list[Violation]]


# --- reading the observations -------------------------------------------------------------------


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _instant(value: Any) -> datetime | None:
    """An aware instant from JSON (ISO text or Unix seconds), or None when it is not one."""
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    if isinstance(value, datetime):
        return _utc(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return None if parsed.tzinfo is None else _utc(parsed)
    return None


def _clock(value: Any) -> time | None:
    if isinstance(value, time):
        return value
    if isinstance(value, str):
        try:
            return time.fromisoformat(value)
        except ValueError:
            return None
    return None


def _day(value: Any) -> date | None:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


def _money(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def _zone(name: Any) -> ZoneInfo | None:
    if not isinstance(name, str) or not name or name == "localtime":
        return None
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        return None


def _scalar(value: Any) -> Any:
    """A search attribute's value: keyword and other attributes may come as a one-element list."""
    if isinstance(value, list | tuple) and len(value) == 1:
        return value[0]
    return value


def _normal_status(value: str) -> str:
    """``RUNNING`` from ``RUNNING``, ``WorkflowExecutionStatus.RUNNING`` or
    ``WORKFLOW_EXECUTION_STATUS_RUNNING``."""
    return value.rsplit(".", 1)[-1].upper().removeprefix("WORKFLOW_EXECUTION_STATUS_")


@dataclass(frozen=True)
class _Entry:
    """A timeline entry, its instant in UTC."""

    at: datetime
    kind: str
    detail: str


@dataclass(frozen=True)
class _Signal:
    """A signal the workflow accepted, and when it took effect."""

    delivery: Delivery
    at: datetime
    entry: _Entry

    @property
    def name(self) -> str:
        return self.delivery.action.name

    @property
    def payload(self) -> dict[str, Any]:
        return self.delivery.action.payload


@dataclass(frozen=True)
class _Contact:
    """How the account may be reached, from ``since`` on (its start, then each accepted update)."""

    since: datetime
    timezone: str
    phone: str
    contact_after: time | None
    contact_before: time | None

    def local(self, at: datetime) -> datetime:
        return at.astimezone(ZoneInfo(self.timezone))


@dataclass(frozen=True)
class _Reply:
    """A customer's reply that reached the account, and what it asks for (``_intent``)."""

    at: datetime
    intent: str


@dataclass(frozen=True)
class _Key:
    """One touchpoint's SMS as the gateway saw it (all the requests carrying its key)."""

    key: str
    template: str
    attempts: tuple[SmsAttempt, ...]

    @property
    def reached(self) -> tuple[SmsAttempt, ...]:
        return tuple(a for a in self.attempts if a.reached_customer)

    @property
    def first_reached(self) -> datetime | None:
        reached = self.reached
        return reached[0].at if reached else None

    @property
    def last_taken(self) -> datetime | None:
        """The last request the gateway answered for a taken key: when the sender may have learnt it went."""
        taken = [a.at for a in self.attempts if a.outcome in _TAKEN]
        return taken[-1] if taken else None


@dataclass(frozen=True)
class _Handoff:
    """One call task or specialist case as its endpoint saw it (all the requests carrying its key)."""

    key: str
    kind: str
    first: datetime
    last: datetime
    accepted: bool


@dataclass
class _Account:
    """Everything observed about one account, in time order."""

    account_id: str
    account: dict[str, Any] | None
    policy: ContactPolicy
    end: AccountEnd | None
    timeline: list[_Entry]
    visible_from: datetime | None
    """None when the timeline is whole (it begins with ``started``); else its first entry's instant."""
    sms: list[SmsAttempt]
    handoffs: list[HandoffAttempt]
    deliveries: list[Delivery]
    signals: list[_Signal]
    contacts: list[_Contact]
    replies: list[_Reply]

    # --- contact settings ----------------------------------------------------------------------

    def contact_at(self, at: datetime) -> _Contact | None:
        current = self.contacts[0] if self.contacts else None
        for contact in self.contacts:
            if contact.since <= at:
                current = contact
        return current

    def contacts_near(self, at: datetime) -> list[_Contact]:
        """The settings in effect at some instant of ``[at - IN_FLIGHT, at]``."""
        near = [
            contact
            for index, contact in enumerate(self.contacts)
            if contact.since <= at
            and (index + 1 == len(self.contacts) or self.contacts[index + 1].since > at - IN_FLIGHT)
        ]
        return near or self.contacts[:1]

    def local_date(self, at: datetime) -> date | None:
        contact = self.contact_at(at)
        return None if contact is None else contact.local(at).date()

    def local_text(self, at: datetime) -> str:
        contact = self.contact_at(at)
        shown = at if contact is None else contact.local(at)
        return shown.isoformat(timespec="seconds")

    # --- what happened -------------------------------------------------------------------------

    def sms_keys(self) -> list[_Key]:
        grouped: dict[str, list[SmsAttempt]] = defaultdict(list)
        for attempt in self.sms:
            grouped[attempt.key].append(attempt)
        keys = [_Key(key, attempts[0].template, tuple(attempts)) for key, attempts in grouped.items()]
        return sorted(keys, key=lambda k: k.attempts[0].at)

    def handoff_keys(self, kind: str) -> list[_Handoff]:
        grouped: dict[str, list[HandoffAttempt]] = defaultdict(list)
        for attempt in self.handoffs:
            if attempt.kind == kind:
                grouped[attempt.key].append(attempt)
        keys = [
            _Handoff(key, kind, tries[0].at, tries[-1].at, any(t.accepted for t in tries))
            for key, tries in grouped.items()
        ]
        return sorted(keys, key=lambda k: k.first)

    def entries(self, *kinds: str) -> list[_Entry]:
        return [entry for entry in self.timeline if entry.kind in kinds]

    def ended_at(self) -> datetime | None:
        """When the account reached its outcome (repaid, settled, closed), as its timeline says."""
        ends = self.entries(*_TERMINAL_KINDS)
        return ends[0].at if ends else None

    def confirmed(self, *names: str) -> list[_Signal]:
        return [signal for signal in self.signals if signal.name in names]

    def sees(self, at: datetime) -> bool:
        """Whether the timeline still holds the entries of ``at`` (older ones may have been dropped)."""
        return self.visible_from is None or at >= self.visible_from - SAME_INSTANT


def _intent(text: str, keywords: dict[str, list[str]]) -> str:
    """What a reply asks for, from the policy's keyword data: ``dispute`` and ``hardship`` phrases anywhere,
    any case (they win, so a person hears them); ``opt_out`` and ``help`` as the whole message, any case,
    surrounding blanks ignored; else ``other``."""
    folded = text.casefold()
    for family in ("dispute", "hardship"):
        if any(phrase.casefold() in folded for phrase in keywords.get(family, [])):
            return family
    word = text.strip().casefold()
    for family in ("opt_out", "help"):
        if word in {keyword.strip().casefold() for keyword in keywords.get(family, [])}:
            return family
    return "other"


def _timeline(end: AccountEnd | None) -> list[_Entry]:
    entries: list[_Entry] = []
    for raw in end.timeline if end is not None else []:
        at = _instant(raw.get("at"))
        if at is not None:
            entries.append(_Entry(at, str(raw.get("kind", "")), str(raw.get("detail", ""))))
    return entries


def _confirm_signals(deliveries: Sequence[Delivery], timeline: Sequence[_Entry]) -> list[_Signal]:
    """Each signal the workflow accepted: matched, in delivery order, to an unused timeline entry of its
    kind no earlier than the signal (whole seconds) and at most ``SIGNAL_MATCH`` after it."""
    used: set[int] = set()

    def match(kind: str, at: datetime) -> _Entry | None:
        low, high = at - SAME_INSTANT, at + SIGNAL_MATCH
        for index, entry in enumerate(timeline):
            if index not in used and entry.kind == kind and low <= entry.at <= high:
                used.add(index)
                return entry
        return None

    signals: list[_Signal] = []
    for delivery in deliveries:
        kind = _CONFIRMED_BY.get(delivery.action.name)
        if delivery.action.channel != "signal" or delivery.answer != "signalled" or kind is None:
            continue
        entry = match(kind, delivery.at)
        if entry is None:
            continue
        if (
            delivery.action.name == SignalName.CALL_OUTCOME
            and delivery.action.payload.get("outcome") == CallOutcomeKind.PROMISE_TO_PAY
        ):
            match(TimelineKind.PROMISE, delivery.at)  # its promise is this signal's, not another's
        signals.append(_Signal(delivery, max(delivery.at, entry.at), entry))
    return signals


def _first_copies(deliveries: Iterable[Delivery]) -> list[Delivery]:
    """Webhooks that took effect: answered 200, the first such copy of each delivered action."""
    seen: set[tuple[str, str, timedelta, str]] = set()
    taken: list[Delivery] = []
    for delivery in deliveries:
        action = delivery.action
        if action.channel == "signal" or delivery.answer != "200":
            continue
        payload = json.dumps(action.payload, sort_keys=True, default=str)
        identity = (action.channel, action.name, action.after, payload)
        if identity not in seen:
            seen.add(identity)
            taken.append(delivery)
    return taken


def _contacts(account: dict[str, Any] | None, signals: Sequence[_Signal]) -> list[_Contact]:
    if account is None or _zone(account.get("timezone")) is None:
        return []
    contacts = [
        _Contact(
            since=datetime.min.replace(tzinfo=UTC),
            timezone=str(account["timezone"]),
            phone=str(account.get("phone", "")).strip(),
            contact_after=_clock(account.get("contact_after")),
            contact_before=_clock(account.get("contact_before")),
        )
    ]
    for signal in signals:
        if signal.name != SignalName.UPDATE_CONTACT:
            continue
        payload, current = signal.payload, contacts[-1]
        changed = replace(current, since=signal.at)
        if _zone(payload.get("timezone")) is not None:
            changed = replace(changed, timezone=str(payload["timezone"]))
        if isinstance(payload.get("phone"), str):
            changed = replace(changed, phone=payload["phone"].strip())
        after, before = _clock(payload.get("contact_after")), _clock(payload.get("contact_before"))
        if after is not None:
            changed = replace(changed, contact_after=after)
        if before is not None:
            changed = replace(changed, contact_before=before)
        contacts.append(changed)
    return contacts


def _replies(
    account: _Account, deliveries: Sequence[Delivery], keywords: dict[str, list[str]]
) -> list[_Reply]:
    """Replies that reached the account: webhooks from its number of the moment, and reply signals."""
    ended = account.ended_at()
    replies: list[_Reply] = []
    for delivery in _first_copies(deliveries):
        payload = delivery.action.payload
        if delivery.action.name != SignalName.CUSTOMER_REPLY or not isinstance(payload.get("text"), str):
            continue
        contact = account.contact_at(delivery.at)
        sender = str(payload.get("from", "")).strip()
        if contact is not None and sender != contact.phone:
            continue  # routed by number: it reached whichever account has that number now
        if ended is not None and delivery.at >= ended:
            continue  # an ended account ignores signals
        replies.append(_Reply(delivery.at, _intent(payload["text"], keywords)))
    for signal in account.confirmed(SignalName.CUSTOMER_REPLY):
        text = signal.payload.get("text")
        if isinstance(text, str):
            replies.append(_Reply(signal.at, _intent(text, keywords)))
    return sorted(replies, key=lambda r: r.at)


def _views(observations: Observations) -> list[_Account]:
    """One view per account the run touched, in account id order."""
    sms: dict[str, list[SmsAttempt]] = defaultdict(list)
    handoffs: dict[str, list[HandoffAttempt]] = defaultdict(list)
    deliveries: dict[str, list[Delivery]] = defaultdict(list)
    for attempt in sorted(observations.sms, key=lambda a: _utc(a.at)):
        sms[attempt.account_id].append(replace(attempt, at=_utc(attempt.at)))
    for handoff in sorted(observations.handoffs, key=lambda h: _utc(h.at)):
        handoffs[handoff.account_id].append(replace(handoff, at=_utc(handoff.at)))
    for delivery in sorted(observations.deliveries, key=lambda d: _utc(d.at)):
        deliveries[delivery.account_id].append(replace(delivery, at=_utc(delivery.at)))
    ids = set(observations.accounts) | set(observations.ends) | set(sms) | set(handoffs) | set(deliveries)
    policies: dict[str, ContactPolicy] = {}
    views: list[_Account] = []
    for account_id in sorted(ids):
        account = observations.accounts.get(account_id)
        segment = str((account or {}).get("segment", "standard"))
        if segment not in policies:
            raw = observations.policies.get(segment)
            policies[segment] = ContactPolicy() if raw is None else ContactPolicy.model_validate(raw)
        end = observations.ends.get(account_id)
        timeline = _timeline(end)
        whole = bool(timeline) and timeline[0].kind == TimelineKind.STARTED
        signals = _confirm_signals(deliveries[account_id], timeline)
        view = _Account(
            account_id=account_id,
            account=account,
            policy=policies[segment],
            end=end,
            timeline=timeline,
            visible_from=None if whole else (timeline[0].at if timeline else _utc(observations.ended_at)),
            sms=sms[account_id],
            handoffs=handoffs[account_id],
            deliveries=deliveries[account_id],
            signals=signals,
            contacts=_contacts(account, signals),
            replies=[],
        )
        view.replies = _replies(view, deliveries[account_id], policies[segment].reply_keywords.model_dump())
        views.append(view)
    return views


# --- derived facts ------------------------------------------------------------------------------


def _pauses(account: _Account) -> list[tuple[datetime, datetime | None]]:
    """Paused stretches ``[start, end)`` (end None: still paused): from an accepted pause to the next
    accepted resume or the pause's ``until`` (a pause while paused replaces the ``until``)."""
    stretches: list[tuple[datetime, datetime | None]] = []
    since: datetime | None = None
    until: datetime | None = None
    for signal in account.confirmed(SignalName.PAUSE, SignalName.RESUME):
        if since is not None and until is not None and until <= signal.at:
            stretches.append((since, until))
            since = None
        if signal.name == SignalName.PAUSE:
            since = signal.at if since is None else since
            until = _instant(signal.payload.get("until"))
            if until is None and "until" in signal.payload and signal.payload["until"] is not None:
                found = _UNTIL.search(signal.entry.detail)
                until = None if found is None else _instant(found["until"])
        elif since is not None:
            stretches.append((since, signal.at))
            since = None
    if since is not None:
        stretches.append((since, until))
    return stretches


def _promises(account: _Account) -> list[tuple[datetime, date]]:
    """Accepted promises (a ``promise_to_pay`` signal or a call outcome): when, and the local day from
    which a broken-promise reminder may go (the promised date plus the policy's grace days)."""
    promises: list[tuple[datetime, date]] = []
    for signal in account.confirmed(SignalName.PROMISE_TO_PAY, SignalName.CALL_OUTCOME):
        if signal.name == SignalName.PROMISE_TO_PAY:
            promised = _day(signal.payload.get("date"))
        elif signal.payload.get("outcome") == CallOutcomeKind.PROMISE_TO_PAY:
            promised = _day(signal.payload.get("promise_date"))
        else:
            continue
        if promised is None:
            found = _PROMISED.search(signal.entry.detail)
            promised = None if found is None else date.fromisoformat(found["day"])
        if promised is not None:
            promises.append((signal.at, promised + timedelta(days=account.policy.promise_grace_days)))
    return promises


def _opted_out_at(account: _Account) -> datetime | None:
    """When the number was opted out: a reply the checker reads as an opt-out, or the timeline's own
    ``opted_out`` entry (also written at start for a number opted out earlier), whichever came first."""
    moments = [reply.at for reply in account.replies if reply.intent == "opt_out"]
    moments += [entry.at for entry in account.entries(TimelineKind.OPTED_OUT)]
    return min(moments, default=None)


def _undeliverable_at(account: _Account) -> datetime | None:
    moments = [entry.at for entry in account.entries(TimelineKind.SMS_UNDELIVERABLE)]
    return min(moments, default=None)


def _call_outcomes(account: _Account) -> list[tuple[datetime, str]]:
    return [
        (signal.at, str(signal.payload.get("outcome")))
        for signal in account.confirmed(SignalName.CALL_OUTCOME)
    ]


def _answers(account: _Account) -> list[datetime]:
    """When the customer answered (the unanswered count starts again): a reply, a credited payment, a
    promise, a call that reached them."""
    moments = [reply.at for reply in account.replies]
    moments += [entry.at for entry in account.entries(TimelineKind.REPAYMENT_RECEIVED)]
    moments += [at for at, _ in _promises(account)]
    moments += [at for at, outcome in _call_outcomes(account) if outcome == CallOutcomeKind.REACHED]
    return sorted(moments)


def _phone_stage_ends(account: _Account) -> list[datetime]:
    """When a promise or a reached call ended a phone stage: the next call task starts a new one."""
    moments = [at for at, _ in _promises(account)]
    moments += [at for at, outcome in _call_outcomes(account) if outcome == CallOutcomeKind.REACHED]
    return sorted(moments)


def _unanswered_before(account: _Account, at: datetime) -> int:
    """Overdue reminders that reached the customer before ``at`` since their last answer before it.

    Lenient where the sender could not know better: an answer within ``IN_FLIGHT`` before ``at`` may not
    have been seen when the call was decided, and a reminder counts from the last moment the gateway
    answered for its key (a lost answer is learnt on a later retry)."""
    answers = [moment for moment in _answers(account) if moment < at - IN_FLIGHT]
    last_answer = answers[-1] if answers else None
    count = 0
    for key in account.sms_keys():
        first, last = key.first_reached, key.last_taken
        if key.template not in OVERDUE_REMINDERS or first is None or last is None or first >= at:
            continue
        if last_answer is None or last > last_answer - IN_FLIGHT:
            count += 1
    return count


def _cadence_may_hand_over(account: _Account, at: datetime) -> bool:
    """Whether the SMS cadence may give the account to people at ``at``: the number can no longer be
    texted (opted out, reported undeliverable), or enough overdue reminders went unanswered."""
    no_sms = [m for m in (_opted_out_at(account), _undeliverable_at(account)) if m is not None]
    if any(moment <= at + SAME_INSTANT for moment in no_sms):
        return True
    return _unanswered_before(account, at) >= account.policy.unanswered_to_escalate


def _credits(account: _Account) -> list[tuple[datetime, Decimal, str]]:
    """Payments the timeline says were credited: when, how much, which reference."""
    credits: list[tuple[datetime, Decimal, str]] = []
    for entry in account.entries(TimelineKind.REPAYMENT_RECEIVED):
        found = _CREDIT.match(entry.detail)
        amount = None if found is None else _money(found["amount"])
        if found is not None and amount is not None:
            credits.append((entry.at, amount, found["reference"]))
    return credits


def _settlement(account: _Account) -> Decimal:
    for signal in account.confirmed(SignalName.SETTLE):
        amount = _money(signal.payload.get("amount"))
        if amount is not None:
            return amount
    for entry in account.entries(TimelineKind.SETTLED):
        found = _SETTLED.match(entry.detail)
        amount = None if found is None else _money(found["amount"])
        if amount is not None:
            return amount
    return Decimal(0)


def _window(policy: ContactPolicy, contact: _Contact, *, service: bool) -> tuple[time, time]:
    """The local clock window for a message: the service window for replies the customer asked for;
    else the preferred window, narrowed by the customer's own when that leaves something; both inside
    the regime's legal window."""
    legal = REGIMES[policy.regime]
    if service:
        start, end = policy.service_window_start, policy.service_window_end
    else:
        start, end = policy.window_start, policy.window_end
        narrowed_start = max(start, contact.contact_after) if contact.contact_after else start
        narrowed_end = min(end, contact.contact_before) if contact.contact_before else end
        if narrowed_start < narrowed_end:
            start, end = narrowed_start, narrowed_end
    return max(start, legal.legal_start), min(end, legal.legal_end)


def _window_problem(policy: ContactPolicy, contact: _Contact, attempt: SmsAttempt) -> str | None:
    local = contact.local(attempt.at)
    clock = local.time()
    legal = REGIMES[policy.regime]
    shown = f"{attempt.template} ({attempt.key}) at {local.isoformat(timespec='seconds')} {contact.timezone}"
    if not legal.legal_start <= clock < legal.legal_end:
        return (
            f"{shown}: outside the {policy.regime} legal window "
            f"{legal.legal_start:%H:%M}-{legal.legal_end:%H:%M}"
        )
    service = attempt.template in SERVICE_MESSAGES
    start, end = _window(policy, contact, service=service)
    if not start <= clock < end:
        what = "service" if service else "preferred"
        return f"{shown}: outside the {what} window {start:%H:%M}-{end:%H:%M}"
    return None


def _blocked(policy: ContactPolicy, account: dict[str, Any], day: date) -> str | None:
    if policy.holiday_calendar and load_calendar(policy.holiday_calendar).is_holiday(day):
        return f"a {policy.holiday_calendar} public holiday"
    if day in policy.blocked_dates:
        return "a blocked date of the policy"
    birthday = _day(account.get("birthday"))
    if (
        policy.avoid_birthday
        and birthday is not None
        and (birthday.month, birthday.day) == (day.month, day.day)
    ):
        return "the customer's birthday"
    return None


def _busy_at_end(account: _Account, ended_at: datetime) -> bool:
    """Whether an SMS or hand-off may still be in flight at the end (never confirmed taken, tried lately)."""
    for key in account.sms_keys():
        confirmed = any(a.outcome in ("delivered", "duplicate") for a in key.attempts)
        if not confirmed and key.attempts[-1].at >= ended_at - BUSY_AT_END:
            return True
    for kind in ("phone", "specialist"):
        for handoff in account.handoff_keys(kind):
            if not handoff.accepted and handoff.last >= ended_at - BUSY_AT_END:
                return True
    return False


def _violation(invariant: str, account_id: str, detail: str) -> Violation:
    return Violation(invariant=invariant, account_id=account_id, detail=detail)


# --- the invariants -----------------------------------------------------------------------------


def one_message_per_key(observations: Observations) -> list[Violation]:
    """Promise: a touchpoint texts the customer at most once, whatever the retries (idempotency keys).

    At most one request per key reached the customer (delivered or lost_answer). Every request of a key
    from the first the gateway took onward carries the same body, template, number and account: what the
    sender later confirmed as sent is what the customer got. (Before the gateway took a key, a send that
    waited for the next window is rendered again under the same key, its days past due moved on.)
    """
    grouped: dict[str, list[SmsAttempt]] = defaultdict(list)
    for attempt in sorted(observations.sms, key=lambda a: _utc(a.at)):
        grouped[attempt.key].append(attempt)
    violations: list[Violation] = []
    for key, attempts in grouped.items():
        account_id = attempts[0].account_id
        reached = [a for a in attempts if a.reached_customer]
        if len(reached) > 1:
            when = ", ".join(_utc(a.at).isoformat(timespec="seconds") for a in reached)
            violations.append(
                _violation(
                    "one_message_per_key",
                    account_id,
                    f"key {key} reached the customer {len(reached)} times ({when})",
                )
            )
        taken = next((i for i, a in enumerate(attempts) if a.outcome in _TAKEN), None)
        if taken is None:
            continue
        for field in ("account_id", "template", "to", "body"):
            values = sorted({str(getattr(a, field)) for a in attempts[taken:]})
            if len(values) > 1:
                violations.append(
                    _violation(
                        "one_message_per_key",
                        account_id,
                        f"key {key} carried {len(values)} different values of {field}: {values!r}",
                    )
                )
    return violations


def legal_window(observations: Observations) -> list[Violation]:
    """Promise: contact only in the customer's own hours.

    Every message that reached the customer lies inside the regime's legal window in the customer's
    zone; a reminder also inside the preferred window (narrowed by the customer's ``contact_after`` /
    ``contact_before`` when that leaves a window), a service message (HELP, opt-out confirmation) inside
    the service window. Within ``IN_FLIGHT`` of a change of zone or window, either setting will do.
    """
    violations: list[Violation] = []
    for account in _views(observations):
        for attempt in account.sms:
            if not attempt.reached_customer:
                continue
            if not account.contacts:
                violations.append(
                    _violation(
                        "legal_window",
                        account.account_id,
                        f"{attempt.template} ({attempt.key}) reached a customer of no known account or zone",
                    )
                )
                continue
            problems = [
                _window_problem(account.policy, c, attempt) for c in account.contacts_near(attempt.at)
            ]
            if all(problems):
                violations.append(_violation("legal_window", account.account_id, str(problems[-1])))
    return violations


def blocked_day(observations: Observations) -> list[Violation]:
    """Promise: no reminder on a public holiday (the policy's ``holiday_calendar``), a ``blocked_dates``
    day, or the customer's birthday (month and day, when the policy avoids it), in local days."""
    violations: list[Violation] = []
    for account in _views(observations):
        if account.account is None or not account.contacts:
            continue
        for attempt in account.sms:
            if not attempt.reached_customer or attempt.template in SERVICE_MESSAGES:
                continue
            reasons = [
                _blocked(account.policy, account.account, contact.local(attempt.at).date())
                for contact in account.contacts_near(attempt.at)
            ]
            if all(reasons):
                violations.append(
                    _violation(
                        "blocked_day",
                        account.account_id,
                        f"{attempt.template} ({attempt.key}) at {account.local_text(attempt.at)}: "
                        f"{reasons[-1]}",
                    )
                )
    return violations


def caps(observations: Observations) -> list[Violation]:
    """Promise: at most ``max_sms_per_day`` reminders a local day and ``max_sms_per_7_days`` in any 7
    consecutive local days (each touchpoint counted once, on the local day it first reached the customer)."""
    violations: list[Violation] = []
    for account in _views(observations):
        days: Counter[date] = Counter()
        for key in account.sms_keys():
            first = key.first_reached
            day = None if first is None else account.local_date(first)
            if key.template not in SERVICE_MESSAGES and day is not None:
                days[day] += 1
        policy = account.policy
        for day, count in sorted(days.items()):
            if count > policy.max_sms_per_day:
                violations.append(
                    _violation(
                        "caps",
                        account.account_id,
                        f"{count} reminders on local day {day} (max_sms_per_day {policy.max_sms_per_day})",
                    )
                )
        for first_day in sorted(days):
            week = sum(days[first_day + timedelta(days=n)] for n in range(7))
            if week > policy.max_sms_per_7_days:
                last_day = first_day + timedelta(days=6)
                violations.append(
                    _violation(
                        "caps",
                        account.account_id,
                        f"{week} reminders in local days {first_day}..{last_day} "
                        f"(max_sms_per_7_days {policy.max_sms_per_7_days})",
                    )
                )
    return violations


def holds(observations: Observations) -> list[Violation]:
    """Promise: a pause and a promise to pay hold every reminder.

    No reminder reaches the customer while paused (from the pause taking effect to the next resume or its
    ``until``), nor during a promise (from the promise until the local day ``promise_date +
    promise_grace_days``, when a broken-promise reminder may go). A request within ``IN_FLIGHT`` of the
    change may have been on the wire; a new promise within ``IN_FLIGHT`` may have released the hold.
    """
    violations: list[Violation] = []
    for account in _views(observations):
        pauses = _pauses(account)
        promises = _promises(account)
        for attempt in account.sms:
            if not attempt.reached_customer or attempt.template in SERVICE_MESSAGES:
                continue
            at = attempt.at
            shown = f"{attempt.template} ({attempt.key}) at {account.local_text(at)}"
            for start, end in pauses:
                if start + IN_FLIGHT < at and (end is None or at < end):
                    violations.append(
                        _violation(
                            "holds", account.account_id, f"{shown}: paused since {account.local_text(start)}"
                        )
                    )
                    break
            day = account.local_date(at)
            if day is None or not promises:
                continue
            # The promise in force at each instant of [at - IN_FLIGHT, at]: held only if every one holds.
            moments = [at - IN_FLIGHT] + [made for made, _ in promises if at - IN_FLIGHT < made <= at]
            in_force = [max(((m, r) for m, r in promises if m <= moment), default=None) for moment in moments]
            if all(p is not None and day < p[1] for p in in_force):
                made, release = in_force[-1] or (at, day)
                violations.append(
                    _violation(
                        "holds",
                        account.account_id,
                        f"{shown}: promise of {account.local_text(made)} holds contact until local day "
                        f"{release}",
                    )
                )
    return violations


def after_stop(observations: Observations) -> list[Violation]:
    """Promise: STOP means stop. Once an opt-out reply took effect (or the timeline says the number is
    opted out), nothing reaches the customer but the opt-out confirmation, at most once per account
    (a request within ``IN_FLIGHT`` of the opt-out may have been on the wire)."""
    violations: list[Violation] = []
    for account in _views(observations):
        confirmations = [
            key
            for key in account.sms_keys()
            if key.template == TemplateName.OPT_OUT_CONFIRMATION and key.first_reached is not None
        ]
        if len(confirmations) > 1:
            violations.append(
                _violation(
                    "after_stop",
                    account.account_id,
                    f"{len(confirmations)} opt-out confirmations reached the customer "
                    f"({', '.join(k.key for k in confirmations)})",
                )
            )
        stopped = _opted_out_at(account)
        if stopped is not None:
            violations += _sent_after(
                account, stopped, "after_stop", f"the opt-out of {account.local_text(stopped)}"
            )
    return violations


def _sent_after(account: _Account, moment: datetime, invariant: str, what: str) -> list[Violation]:
    """Messages but the opt-out confirmation that reached the customer more than ``IN_FLIGHT`` after
    ``moment``, each a violation of ``invariant`` ("... after ``what``")."""
    return [
        _violation(
            invariant,
            account.account_id,
            f"{attempt.template} ({attempt.key}) at {account.local_text(attempt.at)} after {what}",
        )
        for attempt in account.sms
        if attempt.reached_customer
        and attempt.template != TemplateName.OPT_OUT_CONFIRMATION
        and attempt.at > moment + IN_FLIGHT
    ]


def after_end(observations: Observations) -> list[Violation]:
    """Promise: an account that is repaid, settled or closed gets nothing more ("your payment is overdue"
    after paying is the complaint every lender dreads), except the opt-out confirmation it is owed. A
    request within ``IN_FLIGHT`` of the end may have been on the wire."""
    violations: list[Violation] = []
    for account in _views(observations):
        ended = account.ended_at()
        if ended is not None:
            what = f"the account ended at {account.local_text(ended)}"
            violations += _sent_after(account, ended, "after_end", what)
    return violations


_AMOUNT = re.compile(r"\d{1,3}(?:,\d{3})*\.\d{2}")
"""The amount a message states: the only number with cents in any template."""


def stated_amount(observations: Observations) -> list[Violation]:
    """Promise: a message tells the truth about what is owed. One that states an amount states what was
    owed when it reached the customer, or within ``IN_FLIGHT`` before (a payment arriving while it was on
    the wire): a message retried through an outage is not sent with the amount a payment has changed."""
    violations: list[Violation] = []
    for account in _views(observations):
        if account.account is None or not account.sees(observations.started_at):
            continue
        initial = _money(account.account.get("amount_due"))
        if initial is None:
            continue
        credits = _credits(account)

        def owed(at: datetime, initial: Decimal = initial, credits: list[Any] = credits) -> Decimal:
            return max(
                initial - sum((amount for when, amount, _ in credits if when <= at), Decimal(0)), Decimal(0)
            )

        for attempt in account.sms:
            found = _AMOUNT.search(attempt.body) if attempt.reached_customer else None
            if found is None:
                continue
            stated = Decimal(found.group().replace(",", ""))
            moments = [attempt.at - IN_FLIGHT] + [
                when for when, _, _ in credits if attempt.at - IN_FLIGHT < when <= attempt.at
            ]
            if stated not in {owed(moment) for moment in moments}:
                violations.append(
                    _violation(
                        "stated_amount",
                        account.account_id,
                        f"{attempt.template} ({attempt.key}) at {account.local_text(attempt.at)} states "
                        f"{stated}; {owed(attempt.at)} was owed",
                    )
                )
    return violations


def escalation(observations: Observations) -> list[Violation]:
    """Promise: people are brought in only when the rules say so.

    A phone stage's first call task (the account's first, and the first after a promise or a reached call
    ended a phone stage) comes only after ``unanswered_to_escalate`` overdue reminders reached the
    customer since their last answer (a reply, a payment, a promise, a reached call), unless the number
    was opted out or reported undeliverable. The specialist case comes only after a hardship or dispute
    reply, a ``wrong_number`` or ``refused`` call outcome, a call task the phone team never took,
    ``phone_attempts`` call tasks in the phone stage, or, in a segment that routes straight to the
    specialists, what would have brought the first call task.
    """
    violations: list[Violation] = []
    for account in _views(observations):
        policy = account.policy
        stage_ends = _phone_stage_ends(account)
        calls = account.handoff_keys("phone")
        previous: _Handoff | None = None
        for call in calls:
            new_stage = previous is None or any(
                previous.first < moment and moment + IN_FLIGHT < call.first for moment in stage_ends
            )
            previous = call
            if new_stage and not _cadence_may_hand_over(account, call.first):
                violations.append(
                    _violation(
                        "escalation",
                        account.account_id,
                        f"call task {call.key} at {account.local_text(call.first)} after only "
                        f"{_unanswered_before(account, call.first)} unanswered overdue reminder(s) "
                        f"(unanswered_to_escalate {policy.unanswered_to_escalate})",
                    )
                )
        cases = account.handoff_keys("specialist")
        if not cases:
            continue
        case = cases[0]
        at = case.first
        reasons: list[str] = []
        if any(r.intent in ("hardship", "dispute") and r.at <= at + SAME_INSTANT for r in account.replies):
            reasons.append("hardship or dispute reply")
        if any(
            outcome in (CallOutcomeKind.WRONG_NUMBER, CallOutcomeKind.REFUSED) and moment <= at + SAME_INSTANT
            for moment, outcome in _call_outcomes(account)
        ):
            reasons.append("call outcome")
        if any(not call.accepted and call.first < at for call in calls):
            reasons.append("call task not taken")
        stage_start = max((m for m in stage_ends if m < at), default=None)
        in_stage = [
            call
            for call in calls
            if call.first < at and (stage_start is None or call.first > stage_start - IN_FLIGHT)
        ]
        if len(in_stage) >= policy.phone_attempts:
            reasons.append("call attempts used up")
        if policy.route_straight_to_specialist and _cadence_may_hand_over(account, at):
            reasons.append("segment routes straight to specialists")
        if not reasons:
            violations.append(
                _violation(
                    "escalation",
                    account.account_id,
                    f"specialist case {case.key} at {account.local_text(at)} with no reason: no hardship or "
                    f"dispute reply, no wrong_number/refused outcome, {len(in_stage)} call task(s) "
                    f"(phone_attempts {policy.phone_attempts}), {_unanswered_before(account, at)} "
                    "unanswered overdue reminder(s)",
                )
            )
    return violations


def _end_caused_at(account: _Account, notices: Sequence[Delivery]) -> datetime | None:
    """When the delivery that ended the account arrived: its timeline entry may come much later (a
    workflow held up by a killed worker or a restarted server takes its signals in one go), and the
    workflow ignores whatever it takes after its end, though the API answered 200 earlier."""
    ended = account.ended_at()
    if ended is None:
        return None
    causes = [
        ended,
        *(signal.delivery.at for signal in account.confirmed(SignalName.SETTLE, SignalName.CLOSE)),
    ]
    credits = _credits(account)
    if credits and account.entries(TimelineKind.REPAID):
        last = credits[-1][2]
        causes += [n.at for n in notices if str(n.action.payload.get("reference")) == last]
    return min(causes)


def payments(observations: Observations) -> list[Violation]:
    """Promise: money is counted exactly once.

    Each payment reference is credited at most once, and only for a payment that was delivered (same
    reference and amount); a payment notice answered 200 while the account was open is credited. The
    final ``amount_due`` is the starting amount minus the credits (never below 0.00), and a completed
    workflow's ``amount_collected`` is the credits plus any settlement.
    """
    violations: list[Violation] = []
    for account in _views(observations):
        credits = _credits(account)
        seen: Counter[str] = Counter(reference for _, _, reference in credits)
        for reference, count in sorted(seen.items()):
            if count > 1:
                violations.append(
                    _violation("payments", account.account_id, f"payment {reference} credited {count} times")
                )
        # Whatever the answer: a notice answered 5xx may still have been signalled before the failure.
        delivered: dict[str, set[Decimal]] = defaultdict(set)
        for delivery in account.deliveries:
            amount = _money(delivery.action.payload.get("amount"))
            if delivery.action.name == SignalName.REPAYMENT and amount is not None:
                delivered[str(delivery.action.payload.get("reference"))].add(amount)
        notices = [d for d in _first_copies(account.deliveries) if d.action.name == SignalName.REPAYMENT]
        for at, amount, reference in credits:
            if amount not in delivered.get(reference, set()):
                violations.append(
                    _violation(
                        "payments",
                        account.account_id,
                        f"credited {amount} ({reference}) at {account.local_text(at)}, which no delivered "
                        "payment carried",
                    )
                )
        ended = _end_caused_at(account, notices)
        for notice in notices:
            reference = str(notice.action.payload.get("reference"))
            ours = notice.action.payload.get("account_id") == account.account_id
            still_open = ended is None or notice.at < ended
            if (
                ours
                and still_open
                and account.sees(notice.at)
                and account.end is not None
                and reference not in seen
            ):
                violations.append(
                    _violation(
                        "payments",
                        account.account_id,
                        f"payment {reference} answered 200 at {account.local_text(notice.at)}: not credited",
                    )
                )
        if account.account is None or account.end is None or account.visible_from is not None:
            continue
        credited = sum((amount for _, amount, _ in credits), Decimal(0))
        initial = _money(account.account.get("amount_due"))
        status = account.end.status
        if initial is not None and status is not None:
            expected = max(initial - credited, Decimal("0.00"))
            shown = _money(status.get("amount_due"))
            if shown != expected:
                violations.append(
                    _violation(
                        "payments",
                        account.account_id,
                        f"amount_due {shown} at the end; {initial} less credits of {credited} is {expected}",
                    )
                )
        result = account.end.result
        if _normal_status(account.end.workflow_status) == "COMPLETED" and result is not None:
            expected = credited + _settlement(account)
            collected = _money(result.get("amount_collected"))
            if collected != expected:
                violations.append(
                    _violation(
                        "payments",
                        account.account_id,
                        f"amount_collected {collected}; credits and settlement make {expected}",
                    )
                )
    return violations


def liveness(observations: Observations) -> list[Violation]:
    """Promise: every account is always looked after.

    No workflow ended other than COMPLETED (or is still RUNNING): not FAILED, TIMED_OUT, TERMINATED or
    CANCELED. A running account answers its status query and has a next touchpoint unless it waits for a
    person (stage ``specialist``) or for a resume (stage ``paused`` with no ``until``); that touchpoint is
    not more than ``STUCK_AFTER`` behind the end of the run.
    """
    violations: list[Violation] = []
    ended_at = _utc(observations.ended_at)
    for account in _views(observations):
        end = account.end
        if end is None:
            violations.append(_violation("liveness", account.account_id, "no end observed for the account"))
            continue
        status_name = _normal_status(end.workflow_status)
        if status_name not in HEALTHY_ENDS:
            violations.append(_violation("liveness", account.account_id, f"workflow ended {status_name}"))
            continue
        if status_name != "RUNNING":
            continue
        if end.status is None:
            violations.append(
                _violation("liveness", account.account_id, "running workflow did not answer its status query")
            )
            continue
        stage = end.status.get("stage")
        next_at = _instant(end.status.get("next_touchpoint_at"))
        if next_at is None:
            open_pause = [
                (s, e) for s, e in _pauses(account) if s <= ended_at and (e is None or ended_at < e)
            ]
            waits_for_resume = stage == Stage.PAUSED and all(e is None for _, e in open_pause)
            if stage != Stage.SPECIALIST and not waits_for_resume:
                violations.append(
                    _violation(
                        "liveness", account.account_id, f"running in stage {stage} with no next touchpoint"
                    )
                )
        elif next_at < ended_at - STUCK_AFTER:
            violations.append(
                _violation(
                    "liveness",
                    account.account_id,
                    f"next touchpoint {next_at.isoformat()} is long past at the end ({ended_at.isoformat()})",
                )
            )
    return violations


def search_attributes(observations: Observations) -> list[Violation]:
    """Promise: operators' searches find accounts as they are.

    When the run read them (dev-server runs), a running account's ``CollectionStage``, ``Paused``,
    ``UnansweredSms`` and ``NextTouchpointAt`` equal its status query's stage, paused flag, unanswered
    count and next touchpoint. Not judged: an account with a send or hand-off possibly in flight at the end
    (the workflow publishes after it), a stage the calendar alone moved on since the last publish
    (``pre_due`` → ``due`` → ``overdue`` at local midnight), and completed workflows (whose attributes
    stay as last published).
    """
    violations: list[Violation] = []
    ended_at = _utc(observations.ended_at)
    for account in _views(observations):
        end = account.end
        if end is None or end.search_attributes is None or end.status is None:
            continue
        if _normal_status(end.workflow_status) != "RUNNING" or _busy_at_end(account, ended_at):
            continue
        attributes, status = end.search_attributes, end.status
        problems: list[str] = []
        stage, published = status.get("stage"), _scalar(attributes.get("CollectionStage"))
        calendar_moved = (
            published in _DATE_STAGES
            and stage in _DATE_STAGES
            and _DATE_STAGES.index(str(published)) < _DATE_STAGES.index(str(stage))
        )
        if published != stage and not calendar_moved:
            problems.append(f"CollectionStage {published!r} but stage {stage!r}")
        if _scalar(attributes.get("Paused")) != status.get("paused"):
            problems.append(
                f"Paused {_scalar(attributes.get('Paused'))!r} but paused {status.get('paused')!r}"
            )
        if _scalar(attributes.get("UnansweredSms")) != status.get("unanswered_sms"):
            problems.append(
                f"UnansweredSms {_scalar(attributes.get('UnansweredSms'))!r} "
                f"but unanswered_sms {status.get('unanswered_sms')!r}"
            )
        published_next = _instant(attributes.get("NextTouchpointAt"))
        status_next = _instant(status.get("next_touchpoint_at"))
        if (published_next is None) != (status_next is None) or (
            published_next is not None
            and status_next is not None
            and abs(published_next - status_next) > SAME_INSTANT
        ):
            problems.append(f"NextTouchpointAt {published_next} but next_touchpoint_at {status_next}")
        violations.extend(_violation("search_attributes", account.account_id, p) for p in problems)
    return violations


INVARIANTS: tuple[Invariant, ...] = (
    one_message_per_key,
    legal_window,
    blocked_day,
    caps,
    holds,
    after_stop,
    after_end,
    stated_amount,
    escalation,
    payments,
    liveness,
    search_attributes,
)
"""Every invariant, in the order ``check`` runs them."""


def check(observations: Observations) -> list[Violation]:
    """Every promise broken in this run, invariant by invariant (empty when the run kept them all)."""
    return [violation for invariant in INVARIANTS for violation in invariant(observations)]

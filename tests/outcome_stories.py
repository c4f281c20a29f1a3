"""Accounts with known stories, as the audit log tells them, for the outcome analytics' tests
(``tests/test_outcomes.py``, ``tests/test_reports.py``). The details are worded as the domain writes them
(``tests/test_outcome_details.py`` checks the parsers against the domain). Every figure the tests
expect is worked out by hand in ``docs/analytics.md``'s terms in the comments below.

=========  ========  =========  =====  ======================================================================
account    segment   due        arm    story
=========  ========  =========  =====  ======================================================================
A-CURED    standard  01-10 CNY  gentle 3 SMS, a reply, a promise kept by a part payment, repaid day 10
B-SETTLED  standard  01-25 CNY  firm   promise broken, part payments, a second promise kept, call task,
                                       specialist, settled (collected 1,800)
C-OPTOUT   gentle    02-15 USD  -      STOP after first_overdue, a call task, closed
D-DISPUTE  standard  02-20 CNY  gentle dispute after pre_due, specialist, a complaint acknowledged and
                                       resolved late, still open
E-EARLY    gentle    03-05 USD  -      hardship after pre_due, repaid the day before the due date
F-PROMISES standard  03-20 CNY  -      a complaint before any SMS, resolved in time; paid after a promise's
                                       date, a promise replaced, one broken, open
G-NOSTART  -         -          -      no ``started`` entry: an outcome, but no report counts it
H-LATER    standard  07-02 CNY  -      due after the reports' day (2026-06-30)
=========  ========  =========  =====  ======================================================================
"""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta

from kindly.store import AuditEntry

AS_OF = date(2026, 6, 30)
EXPERIMENT = "tone"
_keys = itertools.count(1)


def entry(account_id: str, at: str, kind: str, detail: str = "-", template: str | None = None) -> AuditEntry:
    moment = datetime.fromisoformat(at + "+00:00")
    return AuditEntry(
        event_key=f"story/{account_id}/{next(_keys)}",
        account_id=account_id,
        at=moment,
        kind=kind,
        detail=detail,
        template=template,
        recorded_at=moment + timedelta(seconds=2),
    )


def started(account_id: str, at: str, segment: str, amount: str, currency: str, due: str) -> AuditEntry:
    return entry(account_id, at, "started", f"segment {segment}, {amount} {currency} due {due}")


def sms(
    account_id: str, at: str, template: str | None, touchpoint: int = 1, shown: str | None = None
) -> AuditEntry:
    detail = f"{shown or template} touchpoint {touchpoint} (1 segment(s))"
    return entry(account_id, at, "sms_sent", detail, template)


def reply(account_id: str, at: str, intent: str) -> AuditEntry:
    return entry(account_id, at, "reply_received", f"reply ({intent}, 12 chars)")


def paid(account_id: str, at: str, amount: str, left: str, reference: str) -> AuditEntry:
    return entry(account_id, at, "repayment_received", f"{amount} received ({reference}); {left} left")


def promise(account_id: str, at: str, by: str, via: str = "customer") -> AuditEntry:
    return entry(account_id, at, "promise", f"{via} promised to pay by {by}; contact held")


def broken(account_id: str, at: str, by: str) -> AuditEntry:
    detail = f"promised payment by {by} not received; firmer reminder"
    return entry(account_id, at, "promise_broken", detail)


def complaint(account_id: str, at: str, kind: str, number: int = 1) -> AuditEntry:
    """A complaint's entry, worded as ``kindly.domain.complaint_effects`` writes it (the parts read)."""
    said = {
        "complaint_opened": f"opened (sms_reply), received {at}; automated contact held",
        "complaint_acknowledgement_overdue": f"not acknowledged by its deadline {at}: escalated",
        "complaint_resolution_overdue": f"not resolved by its deadline {at}: escalated",
        "complaint_resolved": "resolved: upheld; contact stays held",
    }[kind]
    detail = f"complaint {number} {said}"
    return entry(account_id, at, kind, detail)


def arm(account_id: str, at: str, name: str) -> AuditEntry:
    return entry(account_id, at, "experiment_assigned", f"experiment {EXPERIMENT} arm {name}")


def stories() -> list[AuditEntry]:
    """Every story's entries, each account's in time order, the accounts one after another."""
    return [
        # A: cure day 10 (20 Jan - 10 Jan); the 400 on 14 Jan keeps the promise of 15 Jan.
        started("A-CURED", "2026-01-03T02:00:00", "standard", "1000.00", "CNY", "2026-01-10"),
        arm("A-CURED", "2026-01-03T02:00:00", "gentle"),
        sms("A-CURED", "2026-01-03T03:00:00", "pre_due"),
        entry("A-CURED", "2026-01-03T03:00:05", "delivery_receipt", "delivered"),
        entry("A-CURED", "2026-01-09T03:00:00", "deferred", "sms due_today D0 deferred (x) to y"),
        sms("A-CURED", "2026-01-10T03:00:00", "due_today", 2),
        sms("A-CURED", "2026-01-11T03:00:00", "first_overdue", 3),
        reply("A-CURED", "2026-01-11T05:00:00", "other"),
        promise("A-CURED", "2026-01-11T05:00:00", "2026-01-15"),
        paid("A-CURED", "2026-01-14T09:00:00", "400.00", "600.00", "P-A1"),
        paid("A-CURED", "2026-01-20T09:00:00", "600.00", "0.00", "P-A2"),
        entry("A-CURED", "2026-01-20T09:00:00", "repaid", "paid in full"),
        # B: the first promise is broken even though 500 came later; the 300 keeps the second.
        started("B-SETTLED", "2026-01-18T02:00:00", "standard", "2000.00", "CNY", "2026-01-25"),
        arm("B-SETTLED", "2026-01-18T02:00:00", "firm"),
        sms("B-SETTLED", "2026-01-26T02:00:00", "first_overdue"),
        reply("B-SETTLED", "2026-01-27T02:00:00", "other"),
        promise("B-SETTLED", "2026-01-27T02:00:00", "2026-02-01"),
        broken("B-SETTLED", "2026-02-02T02:00:00", "2026-02-01"),
        sms("B-SETTLED", "2026-02-02T02:00:01", "broken_promise", 2),
        paid("B-SETTLED", "2026-02-05T02:00:00", "500.00", "1500.00", "P-B1"),
        sms("B-SETTLED", "2026-02-09T02:00:00", "follow_up", 3),
        sms("B-SETTLED", "2026-02-16T02:00:00", "follow_up", 4),
        entry(
            "B-SETTLED",
            "2026-02-23T02:00:00",
            "escalated_phone",
            "call task attempt 1 (3 unanswered SMS): accepted",
        ),
        entry("B-SETTLED", "2026-02-25T02:00:00", "call_outcome", "promise_to_pay (attempt 1)"),
        promise("B-SETTLED", "2026-02-25T02:00:00", "2026-03-01", via="on the phone, customer"),
        paid("B-SETTLED", "2026-02-28T10:00:00", "300.00", "1200.00", "P-B2"),
        entry(
            "B-SETTLED",
            "2026-03-10T02:00:00",
            "escalated_specialist",
            "2 call attempt(s) without result: accepted",
        ),
        entry("B-SETTLED", "2026-04-10T02:00:00", "settled", "settled for 1000.00 (SET-B)"),
        # C: the STOP follows first_overdue; the confirmation is an SMS too.
        started("C-OPTOUT", "2026-02-08T02:00:00", "gentle", "500.00", "USD", "2026-02-15"),
        sms("C-OPTOUT", "2026-02-08T15:00:00", "pre_due"),
        sms("C-OPTOUT", "2026-02-16T15:00:00", "first_overdue", 2),
        reply("C-OPTOUT", "2026-02-16T17:00:00", "opt_out"),
        entry(
            "C-OPTOUT", "2026-02-16T17:00:00", "opted_out", "no further SMS; escalation continues by phone"
        ),
        sms("C-OPTOUT", "2026-02-16T17:01:00", "opt_out_confirmation", 3),
        entry(
            "C-OPTOUT", "2026-03-20T02:00:00", "escalated_phone", "call task attempt 1 (opted out): accepted"
        ),
        entry("C-OPTOUT", "2026-05-01T02:00:00", "closed", "written off"),
        # D: a dispute after pre_due.
        started("D-DISPUTE", "2026-02-13T02:00:00", "standard", "800.00", "CNY", "2026-02-20"),
        arm("D-DISPUTE", "2026-02-13T02:00:00", "gentle"),
        sms("D-DISPUTE", "2026-02-13T03:00:00", "pre_due"),
        reply("D-DISPUTE", "2026-02-14T03:00:00", "dispute"),
        entry(
            "D-DISPUTE",
            "2026-02-14T03:00:00",
            "handed_to_person",
            "dispute reported; automated contact stops",
        ),
        entry(
            "D-DISPUTE", "2026-02-15T03:00:00", "escalated_specialist", "customer reported dispute: accepted"
        ),
        # ... and a complaint after it, neither acknowledged nor resolved in time: all three against pre_due.
        complaint("D-DISPUTE", "2026-02-14T03:00:01", "complaint_opened"),
        complaint("D-DISPUTE", "2026-02-16T03:00:00", "complaint_acknowledgement_overdue"),
        complaint("D-DISPUTE", "2026-03-09T03:00:00", "complaint_resolution_overdue"),
        # E: cure day -1 (4 Mar - 5 Mar, UTC dates).
        started("E-EARLY", "2026-02-26T14:00:00", "gentle", "300.00", "USD", "2026-03-05"),
        sms("E-EARLY", "2026-02-26T15:00:00", "pre_due"),
        reply("E-EARLY", "2026-02-27T15:00:00", "hardship"),
        entry(
            "E-EARLY", "2026-02-27T15:00:00", "handed_to_person", "hardship reported; automated contact stops"
        ),
        paid("E-EARLY", "2026-03-04T23:30:00", "300.00", "0.00", "P-E"),
        entry("E-EARLY", "2026-03-04T23:30:00", "repaid", "paid in full"),
        # F: paid after the first promise's date (unresolved), the second replaced, the third broken; one
        # SMS row without its template column.
        started("F-PROMISES", "2026-03-13T02:00:00", "standard", "1500.00", "CNY", "2026-03-20"),
        # A complaint before any SMS: the account's and its group's, no template's.
        complaint("F-PROMISES", "2026-03-14T02:00:00", "complaint_opened"),
        complaint("F-PROMISES", "2026-03-18T02:00:00", "complaint_resolved"),
        sms("F-PROMISES", "2026-03-21T02:00:00", "first_overdue"),
        promise("F-PROMISES", "2026-03-22T02:00:00", "2026-03-25"),
        paid("F-PROMISES", "2026-03-27T02:00:00", "200.00", "1300.00", "P-F"),
        promise("F-PROMISES", "2026-03-28T02:00:00", "2026-04-02"),
        promise("F-PROMISES", "2026-04-01T02:00:00", "2026-04-05"),
        broken("F-PROMISES", "2026-04-06T02:00:00", "2026-04-05"),
        sms("F-PROMISES", "2026-04-06T02:00:01", None, 2, shown="broken_promise"),
        # G: entries of an account whose start is not in the log.
        sms("G-NOSTART", "2026-02-01T02:00:00", "follow_up", 9),
        entry("G-NOSTART", "2026-02-01T02:00:05", "delivery_receipt", "delivered"),
        # H: due after the reports' day.
        started("H-LATER", "2026-06-25T02:00:00", "standard", "900.00", "CNY", "2026-07-02"),
        sms("H-LATER", "2026-06-25T03:00:00", "pre_due"),
    ]

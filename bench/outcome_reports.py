"""The ``reports`` section: the outcome analytics (``kindly.analytics``) on a large audit log.

``--report-rows`` audit rows (1,000,000 by default, about 50,000 accounts) of realistic stories are
written into a fresh SQLite file: each account starts a week before its due date (half of them in an
experiment's arm), gets its reminders (each with a delivery receipt, some deferred), and replies, promises,
pays in part, opts out, disputes, is called, and is repaid, settled or closed as a seeded random draw
decides, over due dates spread across 16 months. Then, timed: the first build of ``account_outcomes``
(a full fold of the log), and a report's answer as the CLI and the API give it (refresh past the
watermark, then the query) for every report, and once more after 1,000 new rows arrived. No Temporal.

The check: a report answers in under ``REPORT_SECONDS``. Not a timed test: a figure printed with the
rest of the bench.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert

from kindly.analytics import ReportName, ReportQuery, build_report, refresh_outcomes
from kindly.store import make_engine
from kindly.store.audit import AUDIT_TABLE

REPORT_SECONDS = 2.0
"""A report (refresh + query) answers within this."""
FIRST_DUE = date(2025, 7, 1)
DUE_DAYS = 480
LOG_END = FIRST_DUE + timedelta(days=DUE_DAYS + 30)
"""The log's last day: the latest cohorts have only a few weeks of story."""
EXPERIMENT = "tone-2026"
_BATCH = 50_000


def measure(workdir: Path, rows: int, seed: int = 7) -> dict[str, Any]:
    path = workdir / "reports.sqlite3"
    path.unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{path}")
    try:
        started = time.perf_counter()
        accounts, written = _generate(engine, rows, random.Random(seed))
        generated = time.perf_counter() - started
        build = refresh_outcomes(engine)
        answers: dict[str, float] = {}
        for name in ReportName:
            began = time.perf_counter()
            build_report(engine, name, ReportQuery())
            answers[name] = round(time.perf_counter() - began, 3)
        _generate(engine, 1_000, random.Random(seed + 1), prefix="NEW", recorded_now=True)
        began = time.perf_counter()
        fresh = build_report(engine, ReportName.CURE_CURVE, ReportQuery())
        after_new = round(time.perf_counter() - began, 3)
    finally:
        engine.dispose()
    return {
        "audit_rows": written,
        "accounts": accounts,
        "database_mib": round(path.stat().st_size / 2**20, 1),
        "generate_seconds": round(generated, 1),
        "first_build_seconds": build.seconds,
        "first_build_accounts": build.accounts,
        "report_seconds": answers,
        "slowest_report_seconds": max(answers.values()),
        "report_after_1000_new_rows_seconds": after_new,
        "rows_read_after_new": fresh.refresh.audit_rows_read if fresh.refresh else None,
        "target_seconds": REPORT_SECONDS,
    }


def summarize(
    section: dict[str, Any], checks: list[dict[str, Any]], information: list[dict[str, Any]]
) -> None:
    slowest = section["slowest_report_seconds"]
    checks.append(
        {
            "check": f"outcome report answers (refresh + query) in < {REPORT_SECONDS:g} s "
            f"({section['audit_rows']:,} audit rows, {section['accounts']:,} accounts, SQLite)",
            "measured": f"slowest {slowest} s of {len(section['report_seconds'])} reports "
            f"({', '.join(f'{name} {seconds}' for name, seconds in section['report_seconds'].items())}); "
            f"{section['report_after_1000_new_rows_seconds']} s after 1,000 new rows",
            "pass": slowest < REPORT_SECONDS
            and section["report_after_1000_new_rows_seconds"] < REPORT_SECONDS,
        }
    )
    information.append(
        {
            "about": "outcome analytics: first build of account_outcomes",
            "measured": f"{section['first_build_seconds']} s for {section['audit_rows']:,} audit rows "
            f"({section['first_build_accounts']:,} accounts; generated in {section['generate_seconds']} s, "
            f"database {section['database_mib']} MiB)",
        }
    )


# --- the stories -----------------------------------------------------------------------------------


class _Account:
    """One account's audit rows, as the workflow would write them."""

    def __init__(self, account_id: str, rng: random.Random, recorded_now: bool) -> None:
        self.id, self.rng = account_id, rng
        self.rows: list[dict[str, Any]] = []
        self.due = FIRST_DUE + timedelta(days=rng.randrange(DUE_DAYS))
        self.recorded_now = recorded_now
        self.sequence = 0

    def add(self, day: int, kind: str, detail: str, template: str | None = None, minute: int = 0) -> None:
        at = datetime.combine(self.due, datetime.min.time(), UTC) + timedelta(
            days=day, hours=2, minutes=minute
        )
        self.sequence += 1
        self.rows.append(
            {
                "event_key": f"{self.id}/ev-{self.sequence}",
                "account_id": self.id,
                "at": at,
                "kind": kind,
                "detail": detail,
                "template": template,
                "outcome": None,
                "recorded_at": datetime.now(UTC) if self.recorded_now else at + timedelta(seconds=1),
            }
        )

    def sms(self, day: int, template: str, minute: int = 0) -> None:
        self.add(day, "sms_sent", f"{template} touchpoint {self.sequence} (1 segment(s))", template, minute)
        if self.rng.random() < 0.6:  # not every carrier sends receipts
            self.add(day, "delivery_receipt", "delivered", minute=minute + 1)


def _story(account: _Account) -> None:
    rng = account.rng
    amount = round(rng.uniform(200, 8000), 2)
    segment = rng.choice(("standard", "standard", "gentle", "prime"))
    currency = "CNY" if rng.random() < 0.8 else "USD"
    account.add(-7, "started", f"segment {segment}, {amount:.2f} {currency} due {account.due}")
    if rng.random() < 0.5:
        account.add(
            -7, "experiment_assigned", f"experiment {EXPERIMENT} arm {rng.choice(('champion', 'gentle'))}"
        )
    horizon = (LOG_END - account.due).days
    cure = int(rng.expovariate(1 / 20)) - 3 if rng.random() < 0.7 else None
    end_day = cure if cure is not None else (rng.randrange(30, 120) if rng.random() < 0.4 else 150)
    end_day = min(end_day, horizon)
    if cure is not None and cure > horizon:
        cure = None
    left, unanswered, promise, sms_ok, calls = amount, 0, None, True, 0
    for day in (-7, 0, 1, *range(8, 150, 7)):
        if day > end_day:
            break
        if promise is not None and day > promise:
            account.add(
                day,
                "promise_broken",
                f"promised payment by {account.due + timedelta(days=promise)} not received",
            )
            promise = None
        if rng.random() < 0.3:
            account.add(day, "deferred", "sms follow_up deferred (2026-01-01 holiday) to the next day")
        if sms_ok:
            account.sms(day, _template(day))
            unanswered += 1
        if unanswered >= 3 and calls < 2 and rng.random() < 0.5:
            calls += 1
            account.add(
                day, "escalated_phone", f"call task attempt {calls} (3 unanswered SMS): accepted", minute=30
            )
            account.add(day + 1, "call_outcome", rng.choice(("reached", "no_answer")) + f" (attempt {calls})")
            unanswered = 0
            if calls == 2:  # the specialists take the account: no more reminders
                account.add(day + 2, "escalated_specialist", "2 call attempt(s) without result: accepted")
                sms_ok = False
        draw = rng.random()
        if draw < 0.12:
            intent = rng.choices(("other", "help", "opt_out", "hardship", "dispute"), (60, 15, 10, 8, 7))[0]
            account.add(day, "reply_received", f"reply ({intent}, {rng.randrange(2, 80)} chars)", minute=60)
            unanswered = 0
            if intent == "opt_out" and sms_ok:
                account.add(day, "opted_out", "no further SMS; escalation continues by phone", minute=61)
                sms_ok = False
            elif intent in ("hardship", "dispute"):
                account.add(day, "handed_to_person", f"{intent} reported; automated contact stops", minute=61)
                account.add(day, "escalated_specialist", f"customer reported {intent}: accepted", minute=62)
                sms_ok = False
        elif draw < 0.18 and promise is None:
            promise = day + rng.randrange(2, 8)
            account.add(
                day,
                "promise",
                f"customer promised to pay by {account.due + timedelta(days=promise)}; contact held",
            )
        elif draw < 0.22 and left > 100:
            part = round(left * rng.uniform(0.1, 0.4), 2)
            left = round(left - part, 2)
            account.add(
                day, "repayment_received", f"{part:.2f} received (P-{account.id}-{day}); {left:.2f} left"
            )
    if cure is not None:
        account.add(
            cure, "repayment_received", f"{left:.2f} received (P-{account.id}-end); 0.00 left", minute=90
        )
        account.add(cure, "repaid", "paid in full", minute=90)
    elif end_day < 150:
        if rng.random() < 0.6:
            account.add(end_day, "settled", f"settled for {left * 0.7:.2f} (SET-{account.id})", minute=90)
        else:
            account.add(end_day, "closed", "written off", minute=90)


def _template(day: int) -> str:
    if day < 0:
        return "pre_due"
    if day == 0:
        return "due_today"
    if day == 1:
        return "first_overdue"
    return "instalment_offer" if day == 22 else "follow_up"


def _generate(
    engine: Engine, rows: int, rng: random.Random, prefix: str = "BENCH", recorded_now: bool = False
) -> tuple[int, int]:
    """Accounts' stories until ``rows`` audit rows are written; (accounts, rows)."""
    accounts = written = 0
    pending: list[dict[str, Any]] = []
    with engine.begin() as connection:
        while written + len(pending) < rows:
            account = _Account(f"{prefix}-{accounts:07d}", rng, recorded_now)
            _story(account)
            pending.extend(account.rows[: rows - written - len(pending)])
            accounts += 1
            if len(pending) >= _BATCH:
                connection.execute(insert(AUDIT_TABLE), pending)
                written, pending = written + len(pending), []
        if pending:
            connection.execute(insert(AUDIT_TABLE), pending)
            written += len(pending)
    return accounts, written

"""The outcome reports (``kindly.analytics.reports``) over the known stories of ``tests/outcome_stories``,
every figure worked out by hand, on SQLite and PostgreSQL; and ``kindly report`` and
``GET /reports/{name}`` giving the same answers (the CLI in process, the API on a real HTTP server)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from kindly.analytics import ReportError, ReportName, ReportQuery, Split, build_report, to_csv
from kindly.analytics.report_models import CureCurveReport, EfficiencyReport, RollRatesReport
from kindly.analytics.reports import check
from kindly.programs.api.app import create_app
from kindly.programs.api.settings import ApiSettings
from kindly.programs.cli import app
from kindly.settings import Settings
from kindly.store import AuditStore, make_engine
from tests.asgi_server import serving
from tests.databases import database_url  # noqa: F401  (SQLite and PostgreSQL, a fixture)
from tests.outcome_stories import AS_OF, EXPERIMENT, stories
from tests.postgres import postgres_url  # noqa: F401  (the session's PostgreSQL cluster, a fixture)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:  # noqa: F811
    engine = make_engine(database_url)
    AuditStore(engine).append(stories())
    yield engine
    engine.dispose()


def rows(engine: Engine, name: ReportName, **query: Any) -> list[dict[str, Any]]:
    report = build_report(engine, name, ReportQuery(as_of=AS_OF, days=30, **query))
    return [row.model_dump(mode="json") for row in report.rows]


def point(group: str, day: int, accounts: int, cured: int, share: float | None) -> dict[str, Any]:
    return {"group": group, "day": day, "accounts": accounts, "cured": cured, "share": share}


def test_the_cure_curve(engine: Engine) -> None:
    report = build_report(engine, ReportName.CURE_CURVE, ReportQuery(as_of=AS_OF, days=30))
    assert report.refresh is not None and report.refresh.rebuilt  # the first report builds the table
    assert (report.accounts, report.as_of, report.by) == (7, AS_OF, None)  # G has no start
    # H (due 2 July) is not observed yet; E is cured from day 0 (a day early), A on day 10.
    curve = [row.model_dump() for row in report.rows]
    assert len(curve) == 31
    assert curve[0] == curve[9] | {"day": 0} == point("all", 0, 6, 1, 0.1667)
    assert curve[10] == curve[30] | {"day": 10} == point("all", 10, 6, 2, 0.3333)

    by_arm = rows(engine, ReportName.CURE_CURVE, by=Split.ARM, experiment=EXPERIMENT)
    at = {(row["group"], row["day"]): row for row in by_arm}
    assert sorted({group for group, _ in at}) == ["firm", "gentle", "none"]
    assert at["gentle", 9] == point("gentle", 9, 2, 0, 0.0) and at["gentle", 10] == point(
        "gentle", 10, 2, 1, 0.5
    )
    assert at["firm", 30] == point("firm", 30, 1, 0, 0.0)
    assert at["none", 0] == point("none", 0, 3, 1, 0.3333)

    in_experiment = build_report(
        engine,
        ReportName.CURE_CURVE,
        ReportQuery(as_of=AS_OF, days=5, by=Split.SEGMENT, experiment=EXPERIMENT),
    )
    assert in_experiment.accounts == 3 and {row.group for row in in_experiment.rows} == {"standard"}


def test_the_cure_curve_counts_each_day_only_the_accounts_observed_that_long(engine: Engine) -> None:
    early = build_report(engine, ReportName.CURE_CURVE, ReportQuery(as_of=date(2026, 3, 10), days=30))
    assert isinstance(early, CureCurveReport)
    curve = {row.day: (row.accounts, row.cured, row.share) for row in early.rows}
    # Observed on 10 March: A 30+ days, B 30+, C 23, D 18, E 5 (cured on day -1); F and H not yet due.
    assert curve[0] == (5, 1, 0.2) and curve[5] == (5, 1, 0.2)
    assert curve[6] == (4, 0, 0.0) and curve[10] == (4, 1, 0.25)
    assert curve[19] == (3, 1, 0.3333) and curve[24] == (2, 1, 0.5) and curve[30] == (2, 1, 0.5)


def test_roll_rates_by_cohort(engine: Engine) -> None:
    report = build_report(engine, ReportName.ROLL_RATES, ReportQuery(as_of=AS_OF))
    assert isinstance(report, RollRatesReport)
    assert report.by is Split.COHORT  # the default split of roll rates
    moves = {
        (r.group, r.from_bucket, r.to_bucket): (r.accounts, r.from_accounts, r.share) for r in report.rows
    }
    assert len(moves) == len(report.rows) == 6 * (3 + 4 + 4)  # every destination of every bucket left
    assert {key: value for key, value in moves.items() if value[0]} == {
        # A cured before its first month-end: no move. B: 1-30, 31-60, 61-90, then settled.
        ("2026-01", "1-30", "31-60"): (1, 1, 1.0),
        ("2026-01", "31-60", "61-90"): (1, 1, 1.0),
        ("2026-01", "61-90", "closed"): (1, 1, 1.0),
        # C closed in May; D rolls on to 90+ and stays there.
        ("2026-02", "1-30", "31-60"): (2, 2, 1.0),
        ("2026-02", "31-60", "61-90"): (2, 2, 1.0),
        ("2026-02", "61-90", "closed"): (1, 2, 0.5),
        ("2026-02", "61-90", "90+"): (1, 2, 0.5),
        ("2026-02", "90+", "90+"): (1, 1, 1.0),
        # E: not yet due at February's end, repaid by March's. F rolls to 90+.
        ("2026-03", "current", "current"): (1, 1, 1.0),
        ("2026-03", "1-30", "31-60"): (1, 1, 1.0),
        ("2026-03", "31-60", "61-90"): (1, 1, 1.0),
        ("2026-03", "61-90", "90+"): (1, 1, 1.0),
    }
    by_segment = rows(engine, ReportName.ROLL_RATES, by=Split.SEGMENT)
    gentle = {(r["from_bucket"], r["to_bucket"]): r["accounts"] for r in by_segment if r["group"] == "gentle"}
    assert {key: count for key, count in gentle.items() if count} == {
        ("current", "current"): 1,
        ("1-30", "31-60"): 1,
        ("31-60", "61-90"): 1,
        ("61-90", "closed"): 1,
    }


def promises(
    group: str, accounts: int, with_promises: int, *figures: int, rate: float | None
) -> dict[str, Any]:
    made, kept, broken, unresolved = figures
    return {
        "group": group,
        "accounts": accounts,
        "accounts_with_promises": with_promises,
        "made": made,
        "kept": kept,
        "broken": broken,
        "unresolved": unresolved,
        "kept_rate": rate,
    }


def test_promises_kept(engine: Engine) -> None:
    assert rows(engine, ReportName.PROMISES) == [promises("all", 7, 3, 6, 2, 2, 2, rate=0.5)]
    assert rows(engine, ReportName.PROMISES, by=Split.SEGMENT) == [
        promises("gentle", 2, 0, 0, 0, 0, 0, rate=None),
        promises("standard", 5, 3, 6, 2, 2, 2, rate=0.5),
    ]
    assert rows(engine, ReportName.PROMISES, by=Split.ARM, experiment=EXPERIMENT) == [
        promises("firm", 1, 1, 2, 1, 1, 0, rate=0.5),
        promises("gentle", 2, 1, 1, 1, 0, 0, rate=1.0),
        promises("none", 4, 1, 3, 0, 1, 2, rate=0.0),
    ]


def rates(
    group: str,
    sms: int,
    replies: int,
    opt_outs: int,
    disputes: int,
    hardships: int,
    complaints: tuple[int, int, int] = (0, 0, 0),
) -> dict[str, Any]:
    """A row of the rates; ``complaints``: opened, acknowledged late, resolved late."""

    def per_1000(count: int) -> float | None:
        return round(1000 * count / sms, 2) if sms else None

    opened, acknowledged_late, resolved_late = complaints
    return {
        "group": group,
        "sms_sent": sms,
        "replies": replies,
        "opt_outs": opt_outs,
        "disputes": disputes,
        "hardships": hardships,
        "complaints": opened,
        "complaints_acknowledged_late": acknowledged_late,
        "complaints_resolved_late": resolved_late,
        "replies_per_1000_sms": per_1000(replies),
        "opt_outs_per_1000_sms": per_1000(opt_outs),
        "disputes_per_1000_sms": per_1000(disputes),
        "complaints_per_1000_sms": per_1000(opened),
        "complaints_acknowledged_late_per_1000_sms": per_1000(acknowledged_late),
        "complaints_resolved_late_per_1000_sms": per_1000(resolved_late),
    }


def test_rates_per_1000_sms_by_the_template_of_the_sms(engine: Engine) -> None:
    # D's complaint (acknowledged and resolved late) and F's (before any SMS) count for their groups.
    assert rows(engine, ReportName.RATES) == [rates("all", 15, 5, 1, 1, 1, complaints=(2, 1, 1))]
    assert rows(engine, ReportName.RATES)[0]["replies_per_1000_sms"] == 333.33
    assert rows(engine, ReportName.RATES)[0]["complaints_per_1000_sms"] == 133.33
    assert rows(engine, ReportName.RATES, by=Split.TEMPLATE) == [
        rates("broken_promise", 2, 0, 0, 0, 0),
        rates("due_today", 1, 0, 0, 0, 0),
        rates("first_overdue", 4, 3, 1, 0, 0),  # A's, B's and C's replies; C's STOP
        rates("follow_up", 2, 0, 0, 0, 0),  # B's two (G's is not counted: no start)
        rates("opt_out_confirmation", 1, 0, 0, 0, 0),
        rates("pre_due", 5, 2, 0, 1, 1, complaints=(1, 1, 1)),  # D's dispute and complaint, E's hardship
    ]
    assert rows(engine, ReportName.RATES, by=Split.COHORT) == [
        rates("2026-01", 7, 2, 0, 0, 0),
        rates("2026-02", 4, 2, 1, 1, 0, complaints=(1, 1, 1)),
        rates("2026-03", 3, 1, 0, 0, 1, complaints=(1, 0, 0)),
        rates("2026-07", 1, 0, 0, 0, 0),
    ]


def test_sms_and_money_per_cure_by_currency(engine: Engine) -> None:
    assert rows(engine, ReportName.EFFICIENCY) == [
        {
            "group": "all",
            "currency": "CNY",
            "accounts": 5,
            "cured": 1,
            "cured_within_days": 1,
            "sms_sent": 11,
            "call_tasks": 1,
            "collected": "3000.00",  # A 1,000; B 500 + 300 + a settlement of 1,000; F 200
            "sms_per_cured_account": 11.0,
            "collected_per_sms": "272.73",
        },
        {
            "group": "all",
            "currency": "USD",
            "accounts": 2,
            "cured": 1,
            "cured_within_days": 1,
            "sms_sent": 4,
            "call_tasks": 1,
            "collected": "300.00",
            "sms_per_cured_account": 4.0,
            "collected_per_sms": "75.00",
        },
    ]
    within = build_report(engine, ReportName.EFFICIENCY, ReportQuery(as_of=AS_OF, days=9, by=Split.SEGMENT))
    assert isinstance(within, EfficiencyReport)
    assert [(r.group, r.currency, r.cured, r.cured_within_days) for r in within.rows] == [
        ("gentle", "USD", 1, 1),
        ("standard", "CNY", 1, 0),  # A was cured on day 10
    ]
    assert within.rows[1].collected == Decimal("3000.00")


@pytest.mark.parametrize(
    ("name", "query", "field"),
    [
        (ReportName.CURE_CURVE, ReportQuery(by=Split.TEMPLATE), "by"),
        (ReportName.EFFICIENCY, ReportQuery(by=Split.TEMPLATE), "by"),
        (ReportName.RATES, ReportQuery(by=Split.ARM), "experiment"),
    ],
)
def test_a_split_a_report_does_not_take_is_refused_naming_it(
    name: ReportName, query: ReportQuery, field: str
) -> None:
    with pytest.raises(ReportError) as refused:
        check(name, query)
    assert refused.value.field == field


# --- kindly report and GET /reports ---------------------------------------------------------------


def kindly_report(url: str, *args: str) -> Any:
    return CliRunner().invoke(app, ["report", *args], env={"COLLECTIONS_DATABASE_URL": url, "COLUMNS": "200"})


def test_kindly_report_prints_json_csv_and_tables(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    printed = kindly_report(url, "cure-curve", "--days", "30", "--as-of", "2026-06-30", "--format", "json")
    assert printed.exit_code == 0, printed.output
    answer = json.loads(printed.output)
    assert answer["report"] == "cure-curve" and answer["accounts"] == 7
    assert answer["rows"] == rows(engine, ReportName.CURE_CURVE)

    table = kindly_report(url, "rates", "--by", "template", "--format", "csv")
    assert table.exit_code == 0, table.output
    read = list(csv.DictReader(io.StringIO(table.output)))
    assert [line["group"] for line in read][:3] == ["broken_promise", "due_today", "first_overdue"]
    assert read[2]["replies_per_1000_sms"] == "750.0" and read[1]["disputes_per_1000_sms"] == "0.0"
    assert table.output == to_csv(build_report(engine, ReportName.RATES, ReportQuery(by=Split.TEMPLATE)))

    shown = kindly_report(url, "roll-rates", "--as-of", "2026-06-30")
    assert shown.exit_code == 0, shown.output
    assert "roll-rates by cohort, as of 2026-06-30" in shown.output and "2026-02" in shown.output
    assert "7 account(s)" in shown.output
    arms = kindly_report(url, "promises", "--by", "arm", "--experiment", EXPERIMENT)
    assert arms.exit_code == 0 and "gentle" in arms.output and "firm" in arms.output

    for args, named in (
        (("cure-curve", "--by", "template"), "--by"),
        (("rates", "--by", "arm"), "--experiment"),
        (("efficiency", "--format", "xml"), "--format"),
        (("cure-curve", "--as-of", "1999-12-31"), "as_of"),
    ):
        refused = kindly_report(url, *args)
        assert refused.exit_code == 2 and named in refused.output, (args, refused.output)


async def test_get_reports_answers_json_and_csv_behind_the_api_key(
    env: WorkflowEnvironment, settings: Settings, engine: Engine
) -> None:
    api = create_app(env.client, settings, ApiSettings(api_key=SecretStr("key")), engine)
    expected = rows(engine, ReportName.PROMISES, by=Split.ARM, experiment=EXPERIMENT)  # builds the table
    async with serving(api) as url, httpx.AsyncClient(base_url=url, headers={"X-API-Key": "key"}) as http:
        answer = await http.get(
            "/reports/promises", params={"by": "arm", "experiment": EXPERIMENT, "as_of": "2026-06-30"}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["rows"] == expected
        assert answer.json()["refresh"]["audit_rows_read"] == 0  # the table was up to date already

        table = await http.get("/reports/efficiency", params={"format": "csv", "days": 30})
        assert table.status_code == 200 and table.headers["content-type"].startswith("text/csv")
        assert table.text.splitlines()[0].startswith("group,currency,accounts,cured,cured_within_days")
        assert "all,USD,2,1,1,4,1,300.00,4.0,75.00" in table.text.splitlines()

        for params, field in (
            ({"by": "template"}, "by"),
            ({"by": "arm"}, "experiment"),
            ({"days": -1}, "days"),
        ):
            refused = await http.get("/reports/cure-curve", params=params)
            assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["query", field]
        assert (await http.get("/reports/no-such-report")).status_code == 422
        async with httpx.AsyncClient(base_url=url) as anonymous:
            assert (await anonymous.get("/reports/rates")).status_code == 401


def test_cure_curves_and_roll_rates_are_drawn_as_svg(engine: Engine, tmp_path: Path) -> None:
    url = engine.url.render_as_string(hide_password=False)
    curve, bars = tmp_path / "cure.svg", tmp_path / "roll.svg"
    drawn = kindly_report(
        url,
        "cure-curve",
        "--by",
        "arm",
        "--experiment",
        EXPERIMENT,
        "--as-of",
        "2026-06-30",
        "--chart",
        str(curve),
    )
    assert drawn.exit_code == 0, drawn.output
    svg = ElementTree.fromstring(curve.read_text(encoding="utf-8"))
    names = {text.text for text in svg.iter("{http://www.w3.org/2000/svg}text")}
    assert {"gentle", "firm", "none"} <= names and "Cure curve by arm, as of 2026-06-30" in names
    assert len(list(svg.iter("{http://www.w3.org/2000/svg}polyline"))) == 3, "one line per arm"
    rolled = kindly_report(url, "roll-rates", "--as-of", "2026-06-30", "--chart", str(bars))
    assert rolled.exit_code == 0, rolled.output
    assert len(list(ElementTree.fromstring(bars.read_text()).iter("{http://www.w3.org/2000/svg}rect"))) > 5
    png = kindly_report(url, "cure-curve", "--chart", str(tmp_path / "cure.png"))
    assert png.exit_code == 2 and "--chart" in png.output and not (tmp_path / "cure.png").exists()

"""``kindly simulate``: the same seed gives the same figures on any number of workers, two policy files
compare on the same customers, an experiment's arms cover the book, a portfolio file is simulated, and
every unusable input exits 2 naming its file and field before anything is simulated."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from kindly.programs.cli import app
from kindly.simulator.report import Comparison, SimulationReport
from kindly.store import AuditLog, make_engine
from tests.test_simulator_observed import row

START = "2026-12-07"
SMALL = ("--synthetic", "300", "--days", "45", "--start", START, "--workers", "1")
"""A run that takes a fraction of a second: enough accounts for every kind of figure to be non-zero."""
HEADER = "account_id,customer_name,phone,timezone,locale,amount_due,currency,due_date,segment,birthday"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(autouse=True)
def own_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No setting of the developer's reaches a run: no ``COLLECTIONS_`` variable, no ``.env`` (the
    working folder is the test's own), and a database in the test's folder."""
    for name in list(os.environ):
        if name.startswith("COLLECTIONS_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLLECTIONS_DATABASE_URL", f"sqlite:///{tmp_path / 'kindly.db'}")
    yield tmp_path


def simulate(*args: str | Path) -> Result:
    return CliRunner().invoke(app, ["simulate", *map(str, args)], env={"COLUMNS": "200"})


def report_of(result: Result) -> SimulationReport:
    assert result.exit_code == 0, result.output
    return SimulationReport.model_validate_json(result.stdout)


def comparison_of(result: Result) -> Comparison:
    assert result.exit_code == 0, result.output
    return Comparison.model_validate_json(result.stdout)


def refused(result: Result) -> str:
    """The one line a refused run says on standard error; nothing was simulated or printed."""
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and "simulating" not in result.stderr, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def write_json(path: Path, value: Any) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


def policies(folder: Path, follow_up_days: int) -> Path:
    every = {"follow_up_interval_days": follow_up_days}
    return write_json(folder / f"every-{follow_up_days}-days.json", {"standard": every, "gentle": every})


# --- Reproducibility --------------------------------------------------------------------------------


def test_a_seed_gives_the_same_figures_on_one_worker_or_two_and_another_seed_others() -> None:
    one = simulate(*SMALL, "--seed", "7", "--json")
    two = simulate(*SMALL, "--seed", "7", "--json", "--workers", "2")
    again = simulate(*SMALL, "--seed", "7", "--json")
    other = simulate(*SMALL, "--seed", "8", "--json")

    report = report_of(one)
    assert one.stderr == "", "--json prints nothing but the report"
    assert report.accounts == 300 and report.days == 45 and len(report.by_day) == 45
    assert report.total.sms > 0 and report.total.call_tasks > 0 and report.total.cures > 0
    assert two.stdout == one.stdout and again.stdout == one.stdout
    assert report_of(other).total != report.total


# --- Two policies -----------------------------------------------------------------------------------


def test_a_shorter_follow_up_interval_sends_more_and_the_comparison_is_the_difference(
    tmp_path: Path,
) -> None:
    weekly, five_days = policies(tmp_path, 7), policies(tmp_path, 5)
    compared = comparison_of(simulate(*SMALL, "--policy", weekly, "--vs", five_days, "--json"))
    base, other = compared.base, compared.other

    assert other.total.sms > base.total.sms
    # The same book, seed and responses as each policy's run on its own.
    assert base == report_of(simulate(*SMALL, "--policy", weekly, "--json"))
    assert other == report_of(simulate(*SMALL, "--policy", five_days, "--json"))

    def figure(report: SimulationReport, name: str) -> float:
        return float(getattr(report.total, name) if hasattr(report.total, name) else getattr(report, name))

    assert set(compared.total) >= {"sms", "sms_cost", "call_tasks", "cures", "cure_rate", "peak_per_minute"}
    for name, difference in compared.total.items():
        assert difference == pytest.approx(figure(other, name) - figure(base, name), abs=1e-9), name
    assert [d.day for d in compared.by_day] == [d.day for d in base.by_day]
    for change, a, b in zip(compared.by_day, base.by_day, other.by_day, strict=True):
        assert change.sms == b.sms - a.sms
        assert change.sms_cost == b.sms_cost - a.sms_cost
        assert change.call_tasks == b.call_tasks - a.call_tasks
        assert change.specialist_handoffs == b.specialist_handoffs - a.specialist_handoffs
        assert change.cures == b.cures - a.cures
    assert any(change.sms for change in compared.by_day)


def test_the_text_of_a_comparison_shows_both_runs_and_their_difference(tmp_path: Path) -> None:
    weekly, five_days = policies(tmp_path, 7), policies(tmp_path, 5)
    compared = comparison_of(simulate(*SMALL, "--policy", weekly, "--vs", five_days, "--json"))
    text = simulate(*SMALL, "--policy", weekly, "--vs", five_days)

    assert text.exit_code == 0, text.output
    assert "simulating 300 accounts over 45 days on 1 worker(s)" in text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == (
        f"300 accounts (synthetic), 45 days from {START} (Asia/Shanghai), seed 1: {weekly} vs {five_days}"
    )
    sms = next(line.split() for line in lines if line.startswith("SMS sent"))
    assert sms[2:] == [
        f"{compared.base.total.sms:,}",
        f"{compared.other.total.sms:,}",
        f"+{compared.other.total.sms - compared.base.total.sms:,}",
    ]
    day_rows = [line for line in lines if line[:10] in {str(d.day) for d in compared.by_day}]
    assert len(day_rows) == 45
    first = compared.by_day[0]
    assert day_rows[0].split()[1] == (f"{first.sms:+,}" if first.sms else "0")


def test_the_text_of_one_run_has_its_totals_and_a_row_per_day() -> None:
    report = report_of(simulate(*SMALL, "--json"))
    text = simulate(*SMALL)

    assert text.exit_code == 0, text.output
    lines = text.stdout.splitlines()
    assert (
        lines[0]
        == f"300 accounts (synthetic), 45 days from {START} (Asia/Shanghai), seed 1: built-in policies"
    )
    assert next(line for line in lines if line.startswith("SMS sent")).split()[-1] == f"{report.total.sms:,}"
    cures = next(line for line in lines if line.startswith("cure rate")).split()[-1]
    assert cures == f"{report.total.cure_rate:.1%}"
    days = [line.split() for line in lines if line[:4] in ("2026", "2027")]
    assert [row[0] for row in days] == [str(day.day) for day in report.by_day]
    assert [row[1] for row in days] == [f"{day.sms:,}" for day in report.by_day]
    assert [row[-1] for row in days] == [f"{day.open_accounts:,}" for day in report.by_day]


# --- An experiment ----------------------------------------------------------------------------------


def test_an_experiments_arms_share_every_account_whatever_its_dates(tmp_path: Path) -> None:
    definition = tmp_path / "faster.yaml"
    definition.write_text(
        "name: faster-follow-ups\n"
        "segments: [standard, gentle]\n"
        "champion: current\n"
        "arms:\n"
        "  - {name: current, weight: 1}\n"
        "  - {name: faster, weight: 1, overlay: {follow_up_interval_days: 3}}\n"
        "start: 2020-01-01T00:00:00+08:00\n"
        "stop: 2020-02-01T00:00:00+08:00\n",
        encoding="utf-8",
    )
    report = report_of(simulate(*SMALL, "--experiment", definition, "--json"))

    arms = {arm.arm: arm for arm in report.arms}
    assert set(arms) == {"current", "faster"}
    assert sum(arm.accounts for arm in arms.values()) == report.accounts == 300
    assert all(arm.accounts > 100 for arm in arms.values())
    assert sum(arm.sms for arm in arms.values()) == report.total.sms
    assert sum(arm.cures for arm in arms.values()) == report.total.cures
    assert arms["faster"].sms / arms["faster"].accounts > arms["current"].sms / arms["current"].accounts

    text = simulate(*SMALL, "--experiment", definition)
    assert text.exit_code == 0, text.output
    assert "experiment faster-follow-ups, by arm: built-in policies" in text.stdout
    current = next(line.split() for line in text.stdout.splitlines() if line.startswith("current "))
    assert current[1:3] == [f"{arms['current'].accounts:,}", f"{arms['current'].sms:,}"]


# --- A portfolio file -------------------------------------------------------------------------------


def portfolio(folder: Path, *rows: str) -> Path:
    path = folder / "book.csv"
    path.write_text("\n".join((HEADER, *rows)) + "\n", encoding="utf-8")
    return path


GOOD_ROWS = (
    "P-1,Zhang Wei,+8613800138001,Asia/Shanghai,zh-CN,1500.00,CNY,2026-12-01,standard,1988-03-14",
    "P-2,Li Na,+8613900139002,Asia/Shanghai,zh-CN,860.50,CNY,2026-12-10,gentle,",
    "P-3,Emily Carter,+12125550105,America/New_York,en-US,725.00,USD,2026-12-05,us_standard,",
)


def test_a_portfolio_file_is_simulated_in_its_accounts_most_common_zone(tmp_path: Path) -> None:
    book = portfolio(tmp_path, *GOOD_ROWS)
    report = report_of(simulate("--portfolio", book, "--days", "30", "--start", START, "--json"))

    assert report.accounts == 3 and report.timezone == "Asia/Shanghai" and report.start == date(2026, 12, 7)
    assert report.total.sms > 0
    assert set(report.total.collected) <= {"CNY", "USD"}
    assert report.by_day[0].open_accounts <= 3

    in_new_york = simulate("--portfolio", book, "--days", "30", "--timezone", "America/New_York", "--json")
    assert report_of(in_new_york).timezone == "America/New_York"


def test_a_bad_portfolio_row_refuses_the_file_naming_its_line_and_field(tmp_path: Path) -> None:
    book = portfolio(
        tmp_path,
        GOOD_ROWS[0],
        "P-BAD,Li Na,12345,Asia/Shanghai,zh-CN,860.50,CNY,2026-12-10,gentle,",  # line 3
        "P-ZONE,Chen Jing,+8615000150003,Mars/Olympus,zh-CN,900,CNY,2026-12-10,,",  # line 4
    )
    line = refused(simulate("--portfolio", book, "--days", "30"))
    assert line.startswith(f"error: portfolio {book}: line 3: phone:"), line
    assert "line 4: timezone:" in line

    many = portfolio(
        tmp_path, *(f"P-{n},Li Na,123,Asia/Shanghai,zh-CN,1,CNY,2026-12-10,," for n in range(12))
    )
    line = refused(simulate("--portfolio", many, "--days", "30"))
    assert line.count("phone:") == 10 and line.endswith("and 2 more bad row(s)"), line

    headless = tmp_path / "no-phone.csv"
    headless.write_text("account_id,customer_name\nP-1,Zhang Wei\n", encoding="utf-8")
    assert "missing required column(s): phone" in refused(simulate("--portfolio", headless, "--days", "3"))


# --- Unusable inputs --------------------------------------------------------------------------------


def test_a_bad_policy_file_names_the_segment_and_the_field(tmp_path: Path) -> None:
    bad = write_json(tmp_path / "bad.json", {"gentle": {"follow_up_interval_days": 0}})
    line = refused(simulate(*SMALL, "--policy", bad))
    assert line.startswith(f"error: policy file {bad}: segment 'gentle': follow_up_interval_days:"), line

    line = refused(simulate(*SMALL, "--vs", bad))
    assert "segment 'gentle': follow_up_interval_days:" in line


@pytest.mark.parametrize(
    ("model", "named"),
    [
        ({"default": {"reply": 1.5}}, "default.reply: Input should be less than or equal to 1"),
        ({"default": {"reply": 0.6, "full_payment": 0.6}}, "default: the probabilities add up to 1.2000"),
        ({"default": {"replies": 0.1}}, "default.replies: Extra inputs are not permitted"),
        ({"rules": [{"dpd": "7-9", "stop": 0.1}]}, "rules.0.dpd: must be one of current"),
        ({"calls": {"no_answer": -0.1}}, "calls.no_answer: Input should be greater than or equal to 0"),
    ],
)
def test_a_bad_response_model_names_the_field(tmp_path: Path, model: Any, named: str) -> None:
    path = write_json(tmp_path / "responses.json", model)
    line = refused(simulate(*SMALL, "--responses", path))
    assert line.startswith(f"error: response model {path}: ") and named in line, line


@pytest.mark.parametrize(
    ("definition", "named"),
    [
        (
            {"arms": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1, "overlay": {"tone": "loud"}}]},
            "arms.1.overlay.tone:",
        ),
        ({"segments": ["vip"]}, "segments.0: unknown segment 'vip'"),
        ({"champion": "nobody"}, "champion"),
        ({"arms": [{"name": "a", "weight": 1}]}, "arms:"),
    ],
)
def test_a_bad_experiment_names_the_field(tmp_path: Path, definition: dict[str, Any], named: str) -> None:
    good = {
        "name": "trial",
        "segments": ["standard"],
        "champion": "a",
        "arms": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}],
    }
    path = write_json(tmp_path / "trial.json", {**good, **definition})
    line = refused(simulate(*SMALL, "--experiment", path))
    assert line.startswith(f"error: experiment {path}: ") and named in line, line


def test_an_experiment_file_that_is_not_yaml_is_refused_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n", encoding="utf-8")
    assert refused(simulate(*SMALL, "--experiment", path)).startswith(f"error: experiment {path}: ")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("--days", "5"), "give either --portfolio FILE.csv or --synthetic N"),
        (("--days", "5", "--synthetic", "3", "--portfolio", "book.csv"), "give either"),
        ((*SMALL, "--timezone", "Mars/Olympus"), "--timezone: unknown time zone 'Mars/Olympus'"),
        ((*SMALL, "--chart", "chart.png"), "--chart: chart.png must be an .svg file"),
        ((*SMALL, "--chart", "nowhere/chart.svg"), "--chart: no folder nowhere"),
        ((*SMALL, "--sms-price", "cheap"), "--sms-price: 'cheap' is not a number"),
        ((*SMALL, "--sms-price", "-0.01"), "--sms-price: must be zero or more"),
    ],
)
def test_unusable_options_are_refused_naming_the_option(args: tuple[str, ...], named: str) -> None:
    assert named in refused(simulate(*args))


def test_days_outside_1_to_400_are_refused() -> None:
    for days in ("0", "401"):
        result = simulate("--synthetic", "3", "--days", days)
        assert result.exit_code == 2 and "--days" in result.output and result.stdout == ""


# --- The chart --------------------------------------------------------------------------------------


def chart_of(path: Path) -> tuple[set[str], list[str]]:
    """The chart's texts and its lines' points; parsing fails unless the SVG is well-formed."""
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    texts = {text.text or "" for text in root.iter(f"{SVG}text")}
    return texts, [line.attrib["points"] for line in root.iter(f"{SVG}polyline")]


def test_the_chart_draws_each_runs_figures_per_day(tmp_path: Path) -> None:
    one = tmp_path / "one.svg"
    assert simulate(*SMALL, "--chart", one).exit_code == 0
    texts, lines = chart_of(one)
    assert {"SMS", "call tasks", "to specialists", "cures"} <= texts
    assert "SMS per day: built-in policies" in texts
    assert len(lines) == 4 and all(len(points.split()) == 45 for points in lines)

    two = tmp_path / "two.svg"
    weekly, five_days = policies(tmp_path, 7), policies(tmp_path, 5)
    assert simulate(*SMALL, "--policy", weekly, "--vs", five_days, "--chart", two, "--json").exit_code == 0
    texts, lines = chart_of(two)
    assert {"SMS", "SMS (vs)", "call tasks (vs)", "to specialists (vs)", "cures (vs)"} <= texts
    assert f"SMS per day: {weekly} vs {five_days}" in texts
    assert len(lines) == 8


# --- Observed responses -----------------------------------------------------------------------------

entry = row


def test_observed_responses_come_from_the_audit_log_and_too_few_sms_are_refused(own_settings: Path) -> None:
    engine = make_engine(f"sqlite:///{own_settings / 'kindly.db'}")
    try:
        line = refused(simulate(*SMALL, "--responses", "observed"))
        assert "the audit log has 0 SMS; at least 30 are needed" in line

        # Forty customers who each paid in full an hour after their first reminder.
        sent = datetime(2026, 3, 6, 2, 0, tzinfo=UTC)
        entries = []
        for n in range(40):
            account = f"OBS-{n}"
            entries += [
                entry(
                    account,
                    sent - timedelta(days=6),
                    "started",
                    "segment standard, 1000.00 CNY due 2026-03-01",
                ),
                entry(
                    account, sent, "sms_sent", "first_overdue touchpoint 1 (1 segment(s))", "first_overdue"
                ),
                entry(
                    account,
                    sent + timedelta(hours=1),
                    "repayment_received",
                    "1000.00 received (r); 0.00 left",
                ),
            ]
        AuditLog(engine).append(entries)
    finally:
        engine.dispose()

    observed = report_of(simulate(*SMALL, "--responses", "observed", "--json"))
    built_in = report_of(simulate(*SMALL, "--json"))
    assert observed.total.cure_rate > 0.9 > built_in.total.cure_rate


def test_observed_responses_from_a_database_without_an_audit_log_exit_1(
    monkeypatch: pytest.MonkeyPatch, own_settings: Path
) -> None:
    monkeypatch.setenv("COLLECTIONS_DATABASE_URL", f"sqlite:///{own_settings / 'empty.db'}")
    result = simulate(*SMALL, "--responses", "observed")
    assert result.exit_code == 1 and result.stdout == ""
    assert "cannot read the audit log" in result.stderr

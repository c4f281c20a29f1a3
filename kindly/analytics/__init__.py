"""Analytics over Kindly's own data: pure computations for operators' reports.

What cures accounts (``docs/analytics.md``): per-account outcomes folded from the audit log
(``outcomes``, reading its texts in ``details``), kept in the derived table ``account_outcomes``
(``outcome_table``), and the reports over them (``reports``, ``report_models``).
"""

from kindly.analytics.outcome_table import Refreshed, load_outcomes, rebuild_outcomes, refresh_outcomes
from kindly.analytics.outcomes import AccountOutcome, fold
from kindly.analytics.report_models import Report, ReportError, ReportName, ReportQuery, Split, to_csv
from kindly.analytics.reports import build_report, compute_report

__all__ = [
    "AccountOutcome",
    "Refreshed",
    "Report",
    "ReportError",
    "ReportName",
    "ReportQuery",
    "Split",
    "build_report",
    "compute_report",
    "fold",
    "load_outcomes",
    "rebuild_outcomes",
    "refresh_outcomes",
    "to_csv",
]

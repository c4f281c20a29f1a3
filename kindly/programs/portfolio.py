"""Portfolio files: read a CSV of accounts, check every row, and start one workflow per account.

``read_portfolio`` never stops at the first bad row: it returns the good rows as ``AccountInput``
and every bad one as a ``RowError`` naming its file line (the header is line 1) and the bad
field(s), so an operator fixes the whole file in one pass. Only a file that cannot be read as a
portfolio at all (missing or unknown header columns) raises ``PortfolioFormatError``.

``import_portfolio`` starts the good rows concurrently through ``kindly.programs.temporal.open_account``,
which starts nothing where a run of the account is open or kept, so importing the same file twice
starts nothing new. Each account is findable by its segment, due date, amount and stage from its
start on, worker or not.
"""

from __future__ import annotations

import asyncio
import csv
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from pydantic import ValidationError
from temporalio.client import Client, WorkflowExecutionStatus

from kindly.domain.contract import AccountInput
from kindly.domain.validation import describe_validation_error
from kindly.errors import KindlyError
from kindly.programs.temporal import execution_status, open_account

log = logging.getLogger(__name__)

REQUIRED_COLUMNS: tuple[str, ...] = (
    "account_id",
    "customer_name",
    "phone",
    "timezone",
    "locale",
    "amount_due",
    "currency",
    "due_date",
)
OPTIONAL_COLUMNS: tuple[str, ...] = ("segment", "birthday", "contact_after", "contact_before", "region")
"""Optional columns; an empty cell means "not given" (default segment, no birthday, no region)."""


class PortfolioFormatError(KindlyError):
    """The file is not a portfolio: unreadable, empty, or its header lacks or has unknown columns."""


@dataclass(frozen=True)
class RowError:
    line: int
    """1-based line of the file where the row ends (the header is line 1)."""
    account_id: str | None
    message: str
    """``field: problem; other_field: problem``."""


@dataclass(frozen=True)
class PortfolioFile:
    path: Path
    accounts: list[AccountInput]
    errors: list[RowError]

    @property
    def ok(self) -> bool:
        return not self.errors


def read_portfolio(path: str | Path) -> PortfolioFile:
    """Parse and validate a portfolio CSV (UTF-8, with or without BOM)."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return _read(path, csv.DictReader(handle))
    except (OSError, UnicodeDecodeError) as err:
        raise PortfolioFormatError(f"cannot read portfolio {str(path)!r}: {err}") from err
    except csv.Error as err:
        raise PortfolioFormatError(f"{path}: not a valid CSV file: {err}") from err


def _read(path: Path, reader: csv.DictReader[str]) -> PortfolioFile:
    header = [name.strip() for name in (reader.fieldnames or [])]
    if not header:
        raise PortfolioFormatError(f"{path}: the file is empty; expected a header line")
    missing = [name for name in REQUIRED_COLUMNS if name not in header]
    unknown = [name for name in header if name not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    problems = []
    if missing:
        problems.append(f"missing required column(s): {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown column(s): {', '.join(repr(name) for name in unknown)}")
    if problems:
        raise PortfolioFormatError(f"{path}: header line: {'; '.join(problems)}")
    reader.fieldnames = header

    accounts: list[AccountInput] = []
    errors: list[RowError] = []
    first_seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        if None in row:
            account_id = (row.get("account_id") or "").strip() or None
            errors.append(RowError(line, account_id, f"row has more cells than the header ({len(header)})"))
            continue
        cells = {name: (value or "").strip() for name, value in row.items() if name is not None}
        account_id = cells.get("account_id") or None
        if account_id is not None:
            if account_id in first_seen:
                errors.append(
                    RowError(line, account_id, f"account_id: duplicate of line {first_seen[account_id]}")
                )
                continue
            first_seen[account_id] = line
        result = _validate_row(cells)
        if isinstance(result, AccountInput):
            accounts.append(result)
        else:
            errors.append(RowError(line, account_id, result))
    return PortfolioFile(path=path, accounts=accounts, errors=errors)


def _validate_row(cells: dict[str, str]) -> AccountInput | str:
    """The row as an account, or a message naming every bad field."""
    empty = [name for name in REQUIRED_COLUMNS if not cells.get(name)]
    data = {name: value for name, value in cells.items() if value}
    messages = [f"{name}: missing value" for name in empty]
    try:
        account = AccountInput.model_validate(data)
    except ValidationError as err:
        # Missing cells are already named above; report the other fields' problems.
        described = describe_validation_error(err)
        messages.extend(part for part in described.split("; ") if part.split(":", 1)[0] not in empty)
        return "; ".join(messages)
    if messages:  # only a defaulted column (currency) was empty
        return "; ".join(messages)
    return account


# --- import --------------------------------------------------------------------------------------


class ImportOutcome(StrEnum):
    STARTED = "started"
    """A new workflow run was started (also when a failed/terminated run was restarted)."""
    ALREADY_RUNNING = "already_running"
    ALREADY_CLOSED = "already_closed"
    """The account's workflow had finished (repaid, settled, closed): it is not restarted."""
    FAILED = "failed"


@dataclass(frozen=True)
class AccountImport:
    account_id: str
    outcome: ImportOutcome
    run_id: str | None = None
    error: str | None = None


@dataclass
class ImportReport:
    results: list[AccountImport] = field(default_factory=list)

    def _count(self, outcome: ImportOutcome) -> int:
        return sum(1 for result in self.results if result.outcome == outcome)

    @property
    def started(self) -> int:
        return self._count(ImportOutcome.STARTED)

    @property
    def already_running(self) -> int:
        return self._count(ImportOutcome.ALREADY_RUNNING)

    @property
    def already_closed(self) -> int:
        return self._count(ImportOutcome.ALREADY_CLOSED)

    @property
    def failed(self) -> list[AccountImport]:
        return [result for result in self.results if result.outcome == ImportOutcome.FAILED]

    def run_ids(self) -> dict[str, str]:
        return {result.account_id: result.run_id for result in self.results if result.run_id}


async def import_portfolio(
    client: Client,
    accounts: Sequence[AccountInput],
    *,
    task_queue: str,
    concurrency: int = 16,
    on_progress: Callable[[AccountImport], None] | None = None,
) -> ImportReport:
    """Start every account's workflow, at most ``concurrency`` at a time; never raises per account.

    How "started" is told from "already there": the start fails when a run of the account is open
    or kept (``open_account``), naming that run, which is then described for its status; so a new
    account costs one RPC, and of two concurrent importers of one account only one counts it as
    started. Results are in the order of ``accounts``.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    semaphore = asyncio.Semaphore(concurrency)

    async def one(account: AccountInput) -> AccountImport:
        async with semaphore:
            result = await _import_one(client, account, task_queue=task_queue)
        if on_progress is not None:
            on_progress(result)
        return result

    results = await asyncio.gather(*(one(account) for account in accounts))
    return ImportReport(results=list(results))


async def _import_one(client: Client, account: AccountInput, *, task_queue: str) -> AccountImport:
    account_id = account.account_id
    try:
        opened = await open_account(client, account, task_queue=task_queue)
        handle = opened.handle
        if opened.created:
            return AccountImport(
                account_id, ImportOutcome.STARTED, run_id=handle.result_run_id or handle.run_id
            )
        status, run_id = await execution_status(client, handle.id, handle.run_id)
    except Exception as err:  # reported per account; one bad start must not stop the import
        return AccountImport(account_id, ImportOutcome.FAILED, error=str(err) or type(err).__name__)
    running = status == WorkflowExecutionStatus.RUNNING
    outcome = ImportOutcome.ALREADY_RUNNING if running else ImportOutcome.ALREADY_CLOSED
    return AccountImport(account_id, outcome, run_id=run_id)

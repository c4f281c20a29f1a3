"""The ``simulate`` section: the portfolio simulator (``kindly.simulator``) on a large synthetic book.

What runs
---------
``kindly.simulator.simulate`` over ``synthetic_book(--simulate-accounts)`` (100,000 accounts by default)
for ``--simulate-days`` days (90) with the built-in policies (``load_policies(None)``), the default
``ResponseModel`` and ``Settings()``, from a fixed start (``START``, in ``ZONE``) with a fixed seed, so
every run simulates the same accounts over the same calendar. No Temporal, no database.

Each simulation runs in a fresh interpreter (``python -m bench.simulate ...``), so that nothing the bench
did before weighs on its memory; its workers are forked from it, as ``simulate`` forks them. Three runs:

* **the book on all cores**: ``workers = os.cpu_count()``; the wall time of the ``simulate`` call
  (the forked pool included, the interpreter's start and imports not), account-days per second, and
  the peak memory;
* **the parallel speed-up**: ``SUBSET_ACCOUNTS`` of the same book (20,000, or the whole book when it is
  smaller) on 1 worker, then on all cores; speed-up = the 1-worker wall time / the all-cores one, both
  measured in this run on this machine, so it can be compared across machines where seconds cannot;
* **the same figures on any number of workers**: the two subset runs' reports
  (``kindly.simulator.report.build_report``, as JSON) must be identical.

Memory: the peak resident size of the process that calls ``simulate`` (its ``VmHWM`` in
``/proc/self/status``; ``getrusage(RUSAGE_SELF)`` would not do, as Linux keeps its ``ru_maxrss`` across
the ``exec`` that started it, the launching bench's peak included) and of the largest worker
(``getrusage(RUSAGE_CHILDREN)``, the largest child reaped). The total is bounded by
the parent's peak plus the largest worker's peak times the number of workers: it counts the pages a
worker shares with its parent after the fork once more per worker, and adds peaks that need not coincide,
so the processes never held more together. Each worker's CPU time and peak resident size
(``/proc/<pid>/stat`` and ``VmHWM``) are also sampled every ``SAMPLE_SECONDS`` while the run lasts; its
CPU share is its CPU time over the run's wall time (1.0: one core all the time). CPU time per
account-day (all the processes' CPU over accounts x days) depends less than the wall time on what else
the machine runs.

The checks: the whole book in under ``WALL_SECONDS`` and ``MEMORY_GIB`` in total; the speed-up at least
``SPEEDUP_SHARE`` x the number of workers; the subset's report identical on 1 worker and on all cores.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench.procs import REPO_ROOT, cpu_seconds, memory_of
from kindly.domain.policy.model import load_policies
from kindly.settings import Settings
from kindly.simulator import Horizon, ResponseModel, Scenario, simulate, synthetic_book
from kindly.simulator.report import Prices, build_report

WALL_SECONDS = 60.0
"""The whole book (100,000 accounts x 90 days by default) is simulated on all cores within this."""
MEMORY_GIB = 2.0
"""The simulation's processes together (the upper bound above) stay under this."""
SPEEDUP_SHARE = 0.7
"""The parallel speed-up is at least this share of the number of workers (1.4 x on 2 cores)."""
SUBSET_ACCOUNTS = 20_000
"""Accounts of the 1-worker and all-cores runs whose ratio is the speed-up."""
SEED = 7
ZONE = "Asia/Shanghai"
START = datetime(2026, 3, 2, tzinfo=ZoneInfo(ZONE))
"""A Monday; 90 days from it cross Qingming and Labour Day, so the calendar's deferrals are exercised."""
SAMPLE_SECONDS = 0.1
PRICES = Prices(sms_price=Decimal("0.05"), handle_minutes=6.0, gateway_per_minute=3000)
"""Only for the reports compared: the counts, not the prices, are what must match."""
MIB = 2**20


def measure(workdir: Path, accounts: int, days: int, log: Callable[[str], None]) -> dict[str, Any]:
    workers = os.cpu_count() or 1
    subset = min(SUBSET_ACCOUNTS, accounts)
    load_before = [round(value, 2) for value in os.getloadavg()]
    log(f"simulate: {accounts:,} accounts x {days} days on {workers} workers")
    book = _run(workdir, "book", accounts, days, workers)
    log(f"  {book['wall_seconds']} s, {book['memory']['total_upper_bound_mib']} MiB in total at most")
    log(f"simulate: speed-up on {subset:,} accounts, 1 worker then {workers}")
    one = _run(workdir, "subset-1", subset, days, 1)
    all_cores = _run(workdir, f"subset-{workers}", subset, days, workers)
    speedup = round(one["wall_seconds"] / all_cores["wall_seconds"], 2)
    log(f"  {one['wall_seconds']} s / {all_cores['wall_seconds']} s = {speedup} x")
    same = (workdir / "simulate-subset-1.report.json").read_bytes() == (
        workdir / f"simulate-subset-{workers}.report.json"
    ).read_bytes()
    return {
        "accounts": accounts,
        "days": days,
        "workers": workers,
        "seed": SEED,
        "start": START.isoformat(),
        "zone": ZONE,
        "load_average_before_and_after": [load_before, [round(value, 2) for value in os.getloadavg()]],
        "book": book,
        "speedup": {
            "accounts": subset,
            "one_worker": one,
            "all_cores": all_cores,
            "ratio": speedup,
            "share_of_workers": round(speedup / workers, 3),
        },
        "same_report_on_1_and_all_workers": same,
        "wall_seconds_budget": WALL_SECONDS,
        "memory_gib_budget": MEMORY_GIB,
        "speedup_share_budget": SPEEDUP_SHARE,
    }


def _run(workdir: Path, name: str, accounts: int, days: int, workers: int) -> dict[str, Any]:
    """One simulation in a fresh interpreter; its figures (the report is left beside them)."""
    output = workdir / f"simulate-{name}.json"
    began = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.simulate",
            f"--accounts={accounts}",
            f"--days={days}",
            f"--workers={workers}",
            f"--output={output}",
            f"--report={workdir / f'simulate-{name}.report.json'}",
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    (workdir / f"simulate-{name}.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    if done.returncode != 0:
        raise RuntimeError(f"simulate {name} exited with code {done.returncode}:\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(output.read_text(encoding="utf-8"))
    figures["process_seconds"] = round(time.perf_counter() - began, 2)
    return figures


def summarize(
    section: dict[str, Any], checks: list[dict[str, Any]], information: list[dict[str, Any]]
) -> None:
    book, speedup = section["book"], section["speedup"]
    size = f"{section['accounts']:,} accounts x {section['days']} days"
    memory = book["memory"]
    minimum = SPEEDUP_SHARE * section["workers"]
    checks.append(
        {
            "check": f"simulator: {size} on {section['workers']} workers in < {WALL_SECONDS:g} s",
            "measured": f"{book['wall_seconds']} s ({book['account_days_per_second']:,} account-days/s)",
            "pass": book["wall_seconds"] < WALL_SECONDS,
        }
    )
    checks.append(
        {
            "check": f"simulator: {size} in < {MEMORY_GIB:g} GiB "
            "(peak RSS, parent + workers x largest worker)",
            "measured": f"{memory['total_upper_bound_mib']} MiB at most (parent {memory['parent_peak_mib']} "
            f"MiB, largest worker {memory['largest_worker_peak_mib']} MiB)",
            "pass": memory["total_upper_bound_mib"] < MEMORY_GIB * 1024,
        }
    )
    checks.append(
        {
            "check": f"simulator: parallel speed-up >= {minimum:g} x on {section['workers']} workers "
            f"({speedup['accounts']:,} accounts, 1 worker / all cores)",
            "measured": f"{speedup['ratio']} x ({speedup['one_worker']['wall_seconds']} s / "
            f"{speedup['all_cores']['wall_seconds']} s; {speedup['share_of_workers']:.0%} of ideal)",
            "pass": speedup["ratio"] >= minimum,
        }
    )
    checks.append(
        {
            "check": "simulator: the same figures on 1 worker and on all cores",
            "measured": f"reports {'identical' if section['same_report_on_1_and_all_workers'] else 'DIFFER'} "
            f"(sha256 {speedup['one_worker']['report_sha256'][:12]} vs "
            f"{speedup['all_cores']['report_sha256'][:12]})",
            "pass": section["same_report_on_1_and_all_workers"],
        }
    )
    shares = ", ".join(f"{worker['cpu_share']:.2f}" for worker in book["per_worker"]) or "not sampled"
    information.append(
        {
            "about": "simulator: CPU of the all-cores run",
            "measured": f"workers' CPU share {shares} (1.0 = one core throughout); all processes "
            f"{book['cpu']['cores_busy']} of {section['workers']} cores busy on average; "
            f"{book['cpu']['microseconds_per_account_day']} us CPU per account-day",
        }
    )


def table_lines(section: dict[str, Any]) -> list[str]:
    book, speedup = section["book"], section["speedup"]
    memory, cpu = book["memory"], book["cpu"]
    before, after = section["load_average_before_and_after"]
    lines = [
        "",
        f"Simulator (kindly.simulator, no Temporal): {section['accounts']:,} synthetic accounts x "
        f"{section['days']} days, {section['workers']} workers; load average (1 min) {before[0]} before, "
        f"{after[0]} after:",
        f"  parallel speed-up ({speedup['accounts']:,} accounts): {speedup['ratio']} x = 1 worker "
        f"{speedup['one_worker']['wall_seconds']} s / {section['workers']} workers "
        f"{speedup['all_cores']['wall_seconds']} s ({speedup['share_of_workers']:.0%} of ideal); reports "
        f"{'identical' if section['same_report_on_1_and_all_workers'] else 'DIFFER'}",
        f"  whole book: {book['wall_seconds']} s (budget {WALL_SECONDS:g} s), "
        f"{book['account_days_per_second']:,} account-days/s; "
        f"{book['totals']['sms']:,} SMS, {book['totals']['call_tasks']:,} call tasks, "
        f"{book['totals']['cures']:,} cures",
        f"  peak RSS: parent {memory['parent_peak_mib']} MiB, largest worker "
        f"{memory['largest_worker_peak_mib']} MiB, total at most {memory['total_upper_bound_mib']} MiB "
        f"(budget {MEMORY_GIB:g} GiB)",
        f"  CPU: parent {cpu['parent_seconds']} s, workers {cpu['workers_seconds']} s; "
        f"{cpu['cores_busy']} cores busy on average; "
        f"{cpu['microseconds_per_account_day']} us per account-day",
    ]
    for worker in book["per_worker"]:
        lines.append(
            f"    worker {worker['pid']}: CPU {worker['cpu_seconds']} s ({worker['cpu_share']:.2f} of a "
            f"core), peak RSS {worker['peak_rss_mib']} MiB (sampled)"
        )
    return lines


# --- the simulation's own process -------------------------------------------------------------------


class _Sampler(threading.Thread):
    """This process's children's CPU time and peak resident size, sampled until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.seen: dict[int, tuple[float, int]] = {}
        """pid -> (CPU seconds, VmHWM KiB), as last read."""
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(SAMPLE_SECONDS):
            self.sample()

    def sample(self) -> None:
        for pid in _children():
            try:
                self.seen[pid] = (cpu_seconds(pid), memory_of(pid).hwm_kib)
            except (OSError, KeyError, ValueError, IndexError):  # gone, or a zombie without memory
                continue

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _children() -> list[int]:
    pids: list[int] = []
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        try:
            with open(f"/proc/{os.getpid()}/task/{task}/children", encoding="ascii") as children:
                pids.extend(int(pid) for pid in children.read().split())
        except OSError:
            continue
    return pids


def _cpu(usage: resource.struct_rusage) -> float:
    return usage.ru_utime + usage.ru_stime


def run_simulation(accounts: int, days: int, workers: int, report_path: Path) -> dict[str, Any]:
    policies = load_policies(None)
    book = synthetic_book(accounts, seed=SEED, start=START.date(), days=days, policies=policies, from_file=())
    scenario = Scenario(policies, ResponseModel())
    horizon = Horizon(START, days, SEED, ZONE)
    settings = Settings()
    sampler = _Sampler()
    self_before = _cpu(resource.getrusage(resource.RUSAGE_SELF))
    children_before = _cpu(resource.getrusage(resource.RUSAGE_CHILDREN))
    sampler.start()
    began = time.perf_counter()
    tally = simulate(book, scenario, horizon, settings, workers=workers)
    wall = time.perf_counter() - began
    sampler.stop()
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    parent_cpu, workers_cpu = _cpu(own) - self_before, _cpu(children) - children_before
    report = build_report(
        tally, label="bench", start=START.date(), days=days, seed=SEED, timezone=ZONE, prices=PRICES
    )
    text = report.model_dump_json(indent=1)
    report_path.write_text(text, encoding="utf-8")
    parent_mib = memory_of(os.getpid()).hwm_kib / 1024
    largest_mib = children.ru_maxrss / 1024  # 0 without workers: 1 worker runs in this process
    forked = min(workers, accounts) if workers > 1 else 0
    return {
        "accounts": accounts,
        "days": days,
        "workers": workers,
        "wall_seconds": round(wall, 2),
        "account_days_per_second": round(accounts * days / wall),
        "cpu": {
            "parent_seconds": round(parent_cpu, 2),
            "workers_seconds": round(workers_cpu, 2),
            "cores_busy": round((parent_cpu + workers_cpu) / wall, 2),
            "microseconds_per_account_day": round((parent_cpu + workers_cpu) / (accounts * days) * 1e6, 2),
        },
        "per_worker": [
            {
                "pid": pid,
                "cpu_seconds": round(cpu, 2),
                "cpu_share": round(cpu / wall, 3),
                "peak_rss_mib": round(hwm / 1024, 1),
            }
            for pid, (cpu, hwm) in sorted(sampler.seen.items())
        ],
        "memory": {
            "parent_peak_mib": round(parent_mib, 1),
            "largest_worker_peak_mib": round(largest_mib, 1),
            "total_upper_bound_mib": round(parent_mib + forked * largest_mib, 1),
        },
        "totals": {
            "accounts": report.accounts,
            "sms": report.total.sms,
            "call_tasks": report.total.call_tasks,
            "cures": report.total.cures,
        },
        "report_sha256": hashlib.sha256(text.encode()).hexdigest(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.simulate", description="one simulation, measured")
    parser.add_argument("--accounts", type=int, required=True)
    parser.add_argument("--days", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--output", type=Path, required=True, help="the figures (JSON)")
    parser.add_argument("--report", type=Path, required=True, help="the simulation's report (JSON)")
    args = parser.parse_args(argv)
    figures = run_simulation(args.accounts, args.days, args.workers, args.report)
    args.output.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())

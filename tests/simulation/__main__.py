"""``make soak``: run a seeded simulation, check every promise, and on a violation shrink the script.

    python -m tests.simulation --accounts 300 --days 120 [--seed N]
    python -m tests.simulation --replay failing-script.json
    python -m tests.simulation --dev-server --accounts 30 [--duration 120]

``--dev-server`` runs the script on a real Temporal dev server in real time instead, its days compressed
into ``--duration`` seconds, with worker processes killed mid-send and a server restart
(``tests.simulation.dev_runner``); such a run is not shrunk (it does not repeat exactly).

Exits 1 when a promise was broken, after printing the violations, the seed with the command that runs it
again, and the smallest script found that still breaks one (also written as JSON for ``--replay``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sys
import tempfile
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.simulation.checker import check
from tests.simulation.dev_runner import DevServerObservations, fault_figures, run_on_dev_server
from tests.simulation.model import Observations, Script, Violation
from tests.simulation.runner import run
from tests.simulation.script import generate
from tests.simulation.shrink import describe, shrink

SHOWN = 40
"""Violations printed in full; the rest are counted."""


def figures(
    script: Script, observed: Observations, violations: list[Violation], seconds: float
) -> dict[str, Any]:
    """What a run covered and found, for the console and ``docs/reliability.md``."""
    actions = Counter(d.action.name for d in observed.deliveries)
    return {
        "seed": script.seed,
        "accounts": len(script.accounts),
        "days": script.days,
        "faults": script.faults.to_json(),
        "sms_attempts": len(observed.sms),
        "sms_outcomes": dict(Counter(a.outcome for a in observed.sms)),
        "handoff_attempts": len(observed.handoffs),
        "handoffs_refused": sum(not h.accepted for h in observed.handoffs),
        "actions_delivered": dict(actions),
        "workflows": dict(Counter(end.workflow_status for end in observed.ends.values())),
        "violations": len(violations),
        "violations_by_invariant": dict(Counter(v.invariant for v in violations)),
        "real_seconds": round(seconds, 1),
    }


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


async def run_and_check(script: Script, *, quiet: bool = False) -> tuple[Observations, list[Violation]]:
    with tempfile.TemporaryDirectory(prefix="kindly-sim-") as folder:
        observed = await run(script, Path(folder), None if quiet else _progress)
    return observed, check(observed)


async def run_and_check_on_dev_server(
    script: Script, duration: timedelta
) -> tuple[DevServerObservations, list[Violation]]:
    with tempfile.TemporaryDirectory(prefix="kindly-simdev-") as folder:
        observed = await run_on_dev_server(script, Path(folder), duration=duration, log=_progress)
    return observed, check(observed)


async def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.simulation", description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=None, help="the run's seed (default: a random one)")
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--replay", type=Path, help="run a script written by a failing run instead")
    parser.add_argument("--no-shrink", action="store_true", help="report a failure without shrinking it")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--dev-server",
        action="store_true",
        help="run on a real dev server in real time, with worker kills and a server restart",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=120.0,
        help="--dev-server: real seconds the days are compressed into",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # retried activities' warnings are the faults we inject

    if args.replay is not None:
        script = Script.from_json(json.loads(args.replay.read_text(encoding="utf-8")))
    else:
        seed = args.seed if args.seed is not None else random.SystemRandom().randrange(10**9)
        script = generate(seed, accounts=args.accounts, days=args.days)
    size = f"{len(script.accounts)} accounts x {script.days} days"
    print(f"simulation seed {script.seed}: {size}, faults {script.faults.to_json()}")
    began = time.monotonic()
    observed: Observations
    if args.dev_server:
        observed, violations = await run_and_check_on_dev_server(script, timedelta(seconds=args.duration))
    else:
        observed, violations = await run_and_check(script)
    result = figures(script, observed, violations, time.monotonic() - began)
    if isinstance(observed, DevServerObservations):
        result.update(fault_figures(observed))
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if not violations:
        print(f"no violations ({len(observed.sms)} SMS attempts, {len(observed.deliveries)} actions)")
        return 0

    for violation in violations[:SHOWN]:
        print(f"VIOLATION {violation}")
    if len(violations) > SHOWN:
        print(f"... and {len(violations) - SHOWN} more")
    if args.dev_server:
        path = Path(tempfile.gettempdir()) / f"kindly-simdev-{script.seed}.json"
        path.write_text(json.dumps(script.to_json(), indent=2, ensure_ascii=False), encoding="utf-8")
        again = f".venv/bin/python -m tests.simulation --dev-server --replay {path}"
        print(f"\nrun it again (its faults will land at other moments): {again}")
        return 1
    print(f"\nrun it again: make soak SEED={script.seed} ACCOUNTS={len(script.accounts)} DAYS={script.days}")
    if args.no_shrink:
        return 1

    async def still_fails(candidate: Script) -> bool:
        return bool((await run_and_check(candidate, quiet=True))[1])

    smallest = await shrink(script, still_fails, suspects={v.account_id for v in violations})
    path = Path(tempfile.gettempdir()) / f"kindly-sim-{script.seed}-shrunk.json"
    path.write_text(json.dumps(smallest.to_json(), indent=2, ensure_ascii=False), encoding="utf-8")
    print("\nsmallest script that still fails:\n" + describe(smallest))
    print(f"\nreplay it: .venv/bin/python -m tests.simulation --replay {path}")
    return 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))

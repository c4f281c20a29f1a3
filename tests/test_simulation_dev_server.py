"""The simulation on a real Temporal dev server, in real time: a worker SIGKILLed while the gateway holds
a send it has taken, and the server stopped and started again on its SQLite file, mid-run.

Opt-in (``KINDLY_SOAK=1``): it takes about two minutes of real time, so ``make test`` leaves it out;
``make soak`` runs the same harness with more accounts (``python -m tests.simulation --dev-server``).
A failure names the seed; ``python -m tests.simulation --dev-server --seed ... --accounts ... --days ...``
runs the script again (its faults land at other moments: real time does not repeat).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from tests.simulation.checker import check
from tests.simulation.dev_runner import delivered_after, fault_figures, run_on_dev_server
from tests.simulation.script import generate

SEED = 20261207
ACCOUNTS = 12
DAYS = 30
DURATION = timedelta(seconds=60)


@pytest.mark.skipif(
    not os.environ.get("KINDLY_SOAK"), reason="real-time soak on a dev server (~2 min): set KINDLY_SOAK=1"
)
async def test_a_portfolio_keeps_every_promise_through_a_worker_kill_and_a_server_restart(
    tmp_path: Path,
) -> None:
    script = generate(SEED, accounts=ACCOUNTS, days=DAYS)
    observed = await run_on_dev_server(script, tmp_path, kills=1, restart_server=True, duration=DURATION)
    violations = check(observed)
    again = (
        f"python -m tests.simulation --dev-server --seed {SEED} --accounts {ACCOUNTS} --days {DAYS} "
        f"--duration {DURATION.total_seconds():.0f}"
    )
    faults = fault_figures(observed)
    assert not violations, f"{len(violations)} violation(s) ({faults}); run it again: {again}\n" + "\n".join(
        map(str, violations)
    )
    assert len(observed.ends) == ACCOUNTS and observed.settled, faults

    # The worker died holding a send the gateway had taken and not yet answered.
    assert [kill.mid_send for kill in observed.kills] == [True], observed.kills
    # The server went away and came back; customers still got messages afterwards.
    (restart,) = observed.restarts
    assert delivered_after(observed, restart.back_at), faults
    print(f"faults: {faults}; killed: {observed.kills}")  # shown with pytest -s

"""A small seeded simulation inside ``make test``: random histories, injected faults, every promise checked.

``make soak`` runs the same with hundreds of accounts over months and a random seed. A failure here names
the seed and the command that replays it.
"""

from __future__ import annotations

from pathlib import Path

from tests.simulation.checker import check
from tests.simulation.runner import run
from tests.simulation.script import generate

SEED = 20261207
ACCOUNTS = 24
DAYS = 45


async def test_a_seeded_portfolio_keeps_every_promise_through_faults(tmp_path: Path) -> None:
    script = generate(SEED, accounts=ACCOUNTS, days=DAYS)
    assert script.faults.outages and script.faults.sms_refused > 0  # the run meets faults
    observed = await run(script, tmp_path)
    violations = check(observed)
    replay = f"make soak SEED={SEED} ACCOUNTS={ACCOUNTS} DAYS={DAYS}"
    assert not violations, f"{len(violations)} violation(s); replay: {replay}\n" + "\n".join(
        map(str, violations)
    )
    # The run did what it is for: messages went out, faults struck, customers and operators acted.
    outcomes = {attempt.outcome for attempt in observed.sms}
    assert {"delivered", "refused"} <= outcomes, outcomes
    assert len(observed.ends) == ACCOUNTS and len(observed.deliveries) > ACCOUNTS

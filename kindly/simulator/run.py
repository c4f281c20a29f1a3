"""A portfolio's simulation, spread over the machine's cores.

Accounts are independent, so the book is dealt to ``workers`` processes (account ``n`` to worker
``n mod workers``), each of which runs its accounts one after another and returns only its tally. Every
account draws from its own random stream, seeded by the run's seed and its id, so a run gives the same
figures on any number of workers, and two policies run on the same seed meet the same customers.
Workers are forked: they inherit the book, the policies and the response model instead of receiving
them, and a synthetic book's accounts are made in the worker that runs them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from multiprocessing import get_context
from zoneinfo import ZoneInfo

from kindly.domain.contract import AccountInput
from kindly.domain.experiments import ExperimentDefinition, assign, policy_for_arm
from kindly.domain.messages.rendering import MessageRenderer, build_template_environment
from kindly.domain.policy.model import ContactPolicy, policy_for
from kindly.settings import Settings
from kindly.simulator.account import AccountRun
from kindly.simulator.portfolio import SyntheticBook
from kindly.simulator.recorder import Recorder, TraceEntry
from kindly.simulator.responses import ResponseModel
from kindly.simulator.sizing import SmsSizer
from kindly.simulator.tally import Tally
from kindly.simulator.world import ModelWorld, World

NO_EXPERIMENT = "all"
"""The arm an account outside any experiment is counted under."""

Book = SyntheticBook | Sequence[AccountInput]


@dataclass(frozen=True)
class Scenario:
    """What is simulated: the segments' policies, an experiment's arms, and how customers respond."""

    policies: dict[str, ContactPolicy]
    responses: ResponseModel
    experiment: ExperimentDefinition | None = None


@dataclass(frozen=True)
class Horizon:
    start: datetime
    """Aware; every account starts here, as if the book were imported at this instant."""
    days: int
    seed: int
    zone: str
    """The report's time zone: its dates are the figures' days."""

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)


@dataclass(frozen=True)
class _Job:
    book: Book
    scenario: Scenario
    horizon: Horizon
    settings: Settings


_job: _Job | None = None
"""The job a forked worker inherits."""


def simulate(book: Book, scenario: Scenario, horizon: Horizon, settings: Settings, *, workers: int) -> Tally:
    """Every account of ``book`` from the horizon's start to its end; the figures, added up."""
    global _job
    size = book.size if isinstance(book, SyntheticBook) else len(book)
    workers = max(1, min(workers, size))
    _job = _Job(book, scenario, horizon, settings)
    try:
        if workers == 1:
            return _run_shard(0, 1)
        with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
            shards = list(pool.map(_run_shard, range(workers), [workers] * workers))
    finally:
        _job = None
    total = Tally()
    for shard in shards:
        total.add(shard)
    return total


def trace_account(
    account: AccountInput, world: World, scenario: Scenario, horizon: Horizon, settings: Settings
) -> list[TraceEntry]:
    """One account's sends and hand-offs at their instants, in a given world (the fidelity test's)."""
    trace: list[TraceEntry] = []
    recorder = Recorder(Tally(), ZoneInfo(horizon.zone), NO_EXPERIMENT, account.currency, trace)
    policy = policy_for(account.segment, scenario.policies)
    AccountRun(account, policy, world=world, recorder=recorder, sizer=_sizer(settings)).run(
        horizon.start, horizon.end
    )
    return trace


def _run_shard(index: int, count: int) -> Tally:
    job = _job
    assert job is not None, "a shard runs inside simulate()"
    book, scenario, horizon = job.book, job.scenario, job.horizon
    size = book.size if isinstance(book, SyntheticBook) else len(book)
    sizer, zone, tally = _sizer(job.settings), ZoneInfo(horizon.zone), Tally()
    for number in range(index, size, count):
        account = book.account(number) if isinstance(book, SyntheticBook) else book[number]
        policy = policy_for(account.segment, scenario.policies)
        assignment, experiment = None, scenario.experiment
        if experiment is not None and account.segment in experiment.segments:
            assignment = assign(experiment, account.account_id)
            if assignment is not None:
                policy = policy_for_arm(experiment, assignment, policy)
        arm = NO_EXPERIMENT if assignment is None else assignment.arm
        world = ModelWorld(scenario.responses, random.Random(f"{horizon.seed}/{account.account_id}"))
        recorder = Recorder(tally, zone, arm, account.currency)
        run = AccountRun(account, policy, world=world, recorder=recorder, sizer=sizer, experiment=assignment)
        run.run(horizon.start, horizon.end)
    return tally


def _sizer(settings: Settings) -> SmsSizer:
    renderer = MessageRenderer(
        build_template_environment(settings.template_dir),
        brand=settings.brand_name,
        hotline=settings.hotline,
        repayment_channels=settings.repayment_channels,
    )
    return SmsSizer(renderer, settings.public_base_url)

"""Experiments as the operators started and stopped them: the definitions workers assign new accounts by.

A row holds the definition as it was started (JSON), whether it still assigns new accounts, and the arms
a guardrail closed, each with when and why. Accounts keep the arm they got for their whole life: a stop
or a closed arm only changes what new accounts get. One running experiment per segment at a time, so an
account's arm is never a choice between experiments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlmodel import Field, Session, SQLModel, col, select

from kindly.domain.experiments import ExperimentDefinition

RUNNING = "running"
STOPPED = "stopped"


class ExperimentRecord(SQLModel, table=True):
    __tablename__ = "experiments"

    name: str = Field(primary_key=True)
    definition: str
    """The definition as started, JSON."""
    status: str
    started_at: datetime
    stopped_at: datetime | None = None
    stop_reason: str | None = None
    closed_arms: str = "{}"
    """JSON ``{arm: {"at": ISO-8601, "reason": text}}``: arms a guardrail (or an operator) closed."""


@dataclass(frozen=True)
class Experiment:
    definition: ExperimentDefinition
    status: str
    started_at: datetime
    stopped_at: datetime | None
    stop_reason: str | None
    closed_arms: dict[str, dict[str, str]]

    @property
    def running(self) -> bool:
        return self.status == RUNNING


class ExperimentConflictError(ValueError):
    """Starting it would clash with what is there (a name taken, a segment already in an experiment)."""


class ExperimentStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def start(self, definition: ExperimentDefinition, at: datetime | None = None) -> Experiment:
        """Store a new running experiment; refuses a name already used and a segment already taken."""
        with Session(self._engine) as session:
            if session.get(ExperimentRecord, definition.name) is not None:
                raise ExperimentConflictError(f"name: an experiment {definition.name!r} exists already")
            for record in session.exec(select(ExperimentRecord).where(ExperimentRecord.status == RUNNING)):
                taken = set(definition.segments) & set(_experiment(record).definition.segments)
                if taken:
                    raise ExperimentConflictError(
                        f"segments: {', '.join(sorted(taken))} already in running experiment {record.name!r}"
                    )
            record = ExperimentRecord(
                name=definition.name,
                definition=definition.model_dump_json(),
                status=RUNNING,
                started_at=at or datetime.now(UTC),
            )
            session.add(record)
            session.commit()
            session.refresh(record)
            return _experiment(record)

    def stop(self, name: str, reason: str, at: datetime | None = None) -> Experiment:
        """No new account gets an arm of it; those assigned keep theirs."""
        with Session(self._engine) as session:
            record = self._record(session, name)
            if record.status == RUNNING:
                record.status, record.stopped_at, record.stop_reason = (
                    STOPPED,
                    at or datetime.now(UTC),
                    reason,
                )
                session.add(record)
                session.commit()
                session.refresh(record)
            return _experiment(record)

    def close_arm(self, name: str, arm: str, reason: str, at: datetime | None = None) -> Experiment:
        """The arm gets no new accounts (a guardrail breach); recorded with when and why, once."""
        with Session(self._engine) as session:
            record = self._record(session, name)
            closed: dict[str, dict[str, str]] = json.loads(record.closed_arms)
            if arm not in closed:
                closed[arm] = {"at": (at or datetime.now(UTC)).isoformat(), "reason": reason}
                record.closed_arms = json.dumps(closed, sort_keys=True)
                session.add(record)
                session.commit()
                session.refresh(record)
            return _experiment(record)

    def get(self, name: str) -> Experiment | None:
        with Session(self._engine) as session:
            record = session.get(ExperimentRecord, name)
            return None if record is None else _experiment(record)

    def all(self) -> list[Experiment]:
        with Session(self._engine) as session:
            records = session.exec(select(ExperimentRecord).order_by(col(ExperimentRecord.started_at)))
            return [_experiment(record) for record in records]

    def running_for(self, segment: str, now: datetime) -> Experiment | None:
        """The experiment that assigns a new account of ``segment`` at ``now``, if one does."""
        for experiment in self.all():
            definition = experiment.definition
            if experiment.running and segment in definition.segments and definition.running_at(now):
                return experiment
        return None

    @staticmethod
    def _record(session: Session, name: str) -> ExperimentRecord:
        record = session.get(ExperimentRecord, name)
        if record is None:
            raise KeyError(name)
        return record


def _experiment(record: ExperimentRecord) -> Experiment:
    return Experiment(
        definition=ExperimentDefinition.model_validate_json(record.definition),
        status=record.status,
        started_at=record.started_at,
        stopped_at=record.stopped_at,
        stop_reason=record.stop_reason,
        closed_arms=json.loads(record.closed_arms),
    )

"""``/experiments``: start, read and stop champion/challenger experiments, as ``kindly experiment`` does.

A definition that would break a rule is answered 422 naming the field; a name or segment already taken,
409."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from kindly.domain.experiments import DefinitionError
from kindly.domain.policy.model import load_policies
from kindly.programs.api.deps import Context
from kindly.programs.api.security import require_api_key
from kindly.programs.experiments import ExperimentReport, experiment_report, report, start_experiment
from kindly.store.experiments import ExperimentConflictError, ExperimentStore

router = APIRouter(prefix="/experiments", tags=["experiments"], dependencies=[Depends(require_api_key)])

_ANSWERS: dict[int | str, dict[str, Any]] = {
    status.HTTP_401_UNAUTHORIZED: {"description": "Missing or invalid X-API-Key"},
    status.HTTP_404_NOT_FOUND: {"description": "No experiment of that name"},
}


class StopRequest(BaseModel):
    reason: str = Field(min_length=1, max_length=500)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ExperimentReport,
    responses=_ANSWERS | {status.HTTP_409_CONFLICT: {"description": "Its name or a segment is taken"}},
)
async def start(ctx: Context, definition: dict[str, Any] = Body(...)) -> ExperimentReport:  # noqa: B008
    """Start an experiment from its definition (the JSON a definition file holds)."""
    policies = load_policies(ctx.settings.policy_file)
    try:
        return await run_in_threadpool(start_experiment, ctx.engine, policies, definition)
    except DefinitionError as err:
        field = str(err).split(":", 1)[0]
        error = {"loc": ["body", *field.split(".")], "msg": str(err), "type": "value_error"}
        raise HTTPException(422, [error]) from err
    except ExperimentConflictError as err:
        raise HTTPException(status.HTTP_409_CONFLICT, str(err)) from err


@router.get("", response_model=list[ExperimentReport], responses=_ANSWERS)
async def all_experiments(ctx: Context) -> list[ExperimentReport]:
    experiments = await run_in_threadpool(ExperimentStore(ctx.engine).all)
    return [report(ctx.engine, found) for found in experiments]


@router.get("/{name}", response_model=ExperimentReport, responses=_ANSWERS)
async def one(name: str, ctx: Context) -> ExperimentReport:
    found = await run_in_threadpool(experiment_report, ctx.engine, name)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no experiment {name!r}")
    return found


@router.post("/{name}/stop", response_model=ExperimentReport, responses=_ANSWERS)
async def stop(name: str, body: StopRequest, ctx: Context) -> ExperimentReport:
    """Stop assigning new accounts; accounts keep the arm they got."""
    try:
        stopped = await run_in_threadpool(ExperimentStore(ctx.engine).stop, name, body.reason)
    except KeyError as err:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no experiment {name!r}") from err
    return report(ctx.engine, stopped)

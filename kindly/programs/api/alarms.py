"""``GET /alarms``: the provider alarms, as ``kindly alarms`` lists them (``?all=true``: the cleared ones
too). An open alarm means the SMS provider refused the lender's account and nothing is sent through it
until an operator clears it (``kindly alarms clear``). Operators' API key, like every operations route."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from kindly.programs.api.deps import Context
from kindly.programs.api.security import require_api_key
from kindly.store import ProviderAlarm, ProviderAlarms

router = APIRouter(prefix="/alarms", tags=["operations"], dependencies=[Depends(require_api_key)])

_ANSWERS: dict[int | str, dict[str, Any]] = {
    status.HTTP_401_UNAUTHORIZED: {"description": "Missing or invalid X-API-Key"},
}


class AlarmView(BaseModel):
    """A provider alarm: the provider's code and message (no personal data), since when, how many
    refusals, and who cleared it when."""

    id: int
    provider: str
    code: str
    message: str
    first_at: datetime
    last_at: datetime
    count: int
    open: bool
    cleared_at: datetime | None
    cleared_by: str | None

    @classmethod
    def of(cls, alarm: ProviderAlarm) -> AlarmView:
        assert alarm.id is not None
        return cls(
            id=alarm.id,
            provider=alarm.provider,
            code=alarm.code,
            message=alarm.message,
            first_at=alarm.first_at,
            last_at=alarm.last_at,
            count=alarm.count,
            open=alarm.is_open,
            cleared_at=alarm.cleared_at,
            cleared_by=alarm.cleared_by,
        )


@router.get("", response_model=list[AlarmView], responses=_ANSWERS)
async def list_alarms(
    ctx: Context,
    include_cleared: Annotated[bool, Query(alias="all", description="Also the cleared alarms")] = False,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AlarmView]:
    """The open alarms, the newest first; ``all=true`` adds the cleared ones."""
    alarms = ProviderAlarms(ctx.engine)
    found = await run_in_threadpool(alarms.alarms, include_cleared=include_cleared, limit=limit)
    return [AlarmView.of(alarm) for alarm in found]

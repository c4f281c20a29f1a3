"""What handlers share, kept on ``app.state`` and handed out as FastAPI dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, cast

from fastapi import Depends, Request
from sqlalchemy import Engine
from temporalio.client import Client

from kindly.programs.api.settings import ApiSettings
from kindly.settings import Settings
from kindly.store import AuditStore, PhoneIndex


@dataclass(frozen=True)
class ApiContext:
    client: Client
    settings: Settings
    api_settings: ApiSettings
    phones: PhoneIndex
    audit: AuditStore
    engine: Engine


def get_context(request: Request) -> ApiContext:
    return cast(ApiContext, request.app.state.context)


Context = Annotated[ApiContext, Depends(get_context)]

"""What the console's handlers share: the API's context (Temporal client, database, audit log), the users
and sessions, the catalogs, the templates and the console's settings, kept on the console app's state and
handed out as the ``Console`` dependency."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, cast
from zoneinfo import ZoneInfo

from fastapi import Depends, Request
from jinja2 import Environment

from kindly.programs.console.i18n import Catalogs
from kindly.store.console_sessions import ConsoleSessions
from kindly.store.users import UserStore

if TYPE_CHECKING:  # the API mounts the console: importing it here at run time would be circular
    from kindly.programs.api.deps import ApiContext
    from kindly.programs.api.settings import ApiSettings


@dataclass(frozen=True)
class ConsoleConfig:
    """The console's settings, in the units its code uses."""

    session_lifetime: timedelta
    idle_timeout: timedelta
    cookie_secure: bool
    call_lease: timedelta
    zone: ZoneInfo
    """The floor's zone: the dashboard's days, the audit view's dates and the instants it shows."""

    @classmethod
    def of(cls, settings: ApiSettings) -> ConsoleConfig:
        return cls(
            session_lifetime=timedelta(hours=settings.console_session_hours),
            idle_timeout=timedelta(minutes=settings.console_idle_minutes),
            cookie_secure=settings.console_cookie_secure,
            call_lease=timedelta(minutes=settings.console_call_lease_minutes),
            zone=ZoneInfo(settings.console_timezone),
        )


@dataclass(frozen=True)
class ConsoleContext:
    api: ApiContext
    users: UserStore
    sessions: ConsoleSessions
    catalogs: Catalogs
    templates: Environment
    config: ConsoleConfig


def get_console(request: Request) -> ConsoleContext:
    return cast(ConsoleContext, request.app.state.console)


Console = Annotated[ConsoleContext, Depends(get_console)]

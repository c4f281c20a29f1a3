"""What every ``kindly`` command shares: the consoles, the exit codes, settings, payload validation and
one connection per command; a failure exits with its code and says why on standard error."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from temporalio.client import Client
from temporalio.service import RPCError

from kindly.domain.validation import describe_validation_error
from kindly.errors import (
    AccountClosedError,
    AccountNotFoundError,
    ActionRefusedError,
    ActionTimeoutError,
    ConfigurationError,
)
from kindly.programs.temporal import connect
from kindly.settings import Settings

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

AccountId = Annotated[str, typer.Argument(help="The account id (workflow id overdue-<account_id>).")]


def fail(message: str, code: int) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        fail(f"settings: {describe_validation_error(error)}", EXIT_USAGE)


def validated_payload(model: type[M], **fields: Any) -> M:
    """The signal payload, validated before connecting: a bad value exits 2 naming the field."""
    try:
        return model.model_validate({name: value for name, value in fields.items() if value is not None})
    except ValidationError as error:
        fail(describe_validation_error(error), EXIT_USAGE)


def run_with_client(settings: Settings, action: Callable[[Client], Awaitable[T]]) -> T:
    """Connect and run ``action``; unknown accounts, unreachable servers and actions no worker answered
    exit 1, actions the account refused (or an ended account) 3."""

    async def main() -> T:
        try:
            client = await connect(settings)
        except RuntimeError as error:
            fail(f"cannot connect to Temporal at {settings.temporal_address}: {error}", EXIT_INCOMPLETE)
        return await action(client)

    try:
        return asyncio.run(main())
    except (ActionRefusedError, AccountClosedError) as error:
        fail(f"refused: {error}", EXIT_REFUSED)
    except (AccountNotFoundError, ActionTimeoutError) as error:
        fail(str(error), EXIT_INCOMPLETE)
    except ConfigurationError as error:  # e.g. no encryption keys: nothing was sent
        fail(str(error), EXIT_USAGE)
    except RPCError as error:
        fail(f"Temporal refused the request: {error.status.name}: {error.message}", EXIT_INCOMPLETE)

"""``python -m kindly.programs.sandbox``: serve the SMS sandbox with uvicorn, configured from the environment.

``make run`` serves the sandbox in one process with everything else (``kindly/programs/stack.py``); where
it runs as a process of its own, as the compose topology's ``sandbox`` service does, this is its
entry point. It reads only ``SandboxSettings`` (``COLLECTIONS_SANDBOX_*``: host, port, the inbound
and receipts webhooks and their secret, the SQLite file of its messages), so it starts without keys,
Kindly's database or a Temporal server.
uvicorn handles SIGTERM and SIGINT: it stops accepting, lets requests in flight finish, and exits.
"""

from __future__ import annotations

import sqlite3
import sys

import uvicorn
from pydantic import ValidationError

from kindly.domain.validation import describe_validation_error
from kindly.programs.sandbox.app import SandboxSettings, create_sandbox_app
from kindly.programs.sandbox.store import Mailbox


def main() -> None:
    try:
        settings = SandboxSettings()
    except ValidationError as err:
        sys.exit(f"invalid configuration: {describe_validation_error(err)}")
    try:
        mailbox = Mailbox(settings.database)
    except (OSError, sqlite3.Error, ValueError) as err:
        sys.exit(f"cannot open the sandbox's messages at {settings.database}: {err}")
    uvicorn.run(create_sandbox_app(settings, mailbox), host=settings.host, port=settings.port)


if __name__ == "__main__":
    main()

"""``python -m kindly.programs.api``: serve the HTTP API with uvicorn, configured from the environment."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import timedelta

import uvicorn
from pydantic import ValidationError

from kindly.domain.validation import describe_validation_error
from kindly.programs.api.app import create_app
from kindly.programs.api.settings import ApiSettings
from kindly.programs.temporal import connect
from kindly.settings import Settings
from kindly.store import make_engine


async def serve(settings: Settings, api_settings: ApiSettings) -> None:
    client = await connect(settings, wait=timedelta(seconds=30))
    engine = make_engine(settings.database_url)
    app = create_app(client, settings, api_settings, engine)
    server = uvicorn.Server(
        uvicorn.Config(app, host=api_settings.api_host, port=api_settings.api_port, proxy_headers=True)
    )
    await server.serve()


def main() -> None:
    # Kindly's own records (replies for finished accounts, a webhook signed with a secret being rotated
    # out, a database migrated as it starts) go to stderr beside uvicorn's; none holds a number in clear.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        settings = Settings()
        api_settings = ApiSettings()
    except ValidationError as err:
        sys.exit(f"invalid configuration: {describe_validation_error(err)}")
    if api_settings.twilio_auth_token is None and settings.twilio_auth_token is not None:
        api_settings = api_settings.model_copy(update={"twilio_auth_token": settings.twilio_auth_token})
    asyncio.run(serve(settings, api_settings))


if __name__ == "__main__":
    main()

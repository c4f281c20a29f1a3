"""``make run``: the whole system on one machine, on its embedded defaults.

The Temporal dev server (SQLite under ``.data/``, Web UI), the worker with its search attributes, the
HTTP API, the SMS sandbox as the gateway (its messages kept in ``.data/sandbox.sqlite3``), and a demo
portfolio. Replies typed in the sandbox reach the workflows through the API's signed inbound webhook.
The Web UI decrypts payloads through the API's codec server, at a path holding a secret made anew at
each start (the dev UI cannot send the API key; ``kindly.programs.api.codec_server``). Ctrl-C stops it
all.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets

from pydantic import SecretStr
from temporalio.client import Client

from kindly.keyring import ensure_development_keys
from kindly.programs.api.app import create_app
from kindly.programs.api.settings import ApiSettings
from kindly.programs.demo_users import ensure_demo_users
from kindly.programs.dev_server import UI_CODEC_ENDPOINT_ENV
from kindly.programs.sandbox import Mailbox, SandboxSettings, create_sandbox_app
from kindly.programs.worker import ServedApp, exit_without_finalizing, serve
from kindly.settings import DATA_DIR, Settings
from kindly.store import make_engine

logger = logging.getLogger("kindly.programs.stack")

DEV_API_KEY = "dev-api-key"
DEV_WEBHOOK_SECRET = "dev-webhook-secret"


def stack_settings() -> tuple[Settings, ApiSettings, SandboxSettings]:
    """Environment settings, with the sandbox as gateway and dev secrets where none are set."""
    settings = Settings()
    ensure_development_keys(settings)
    api_settings = ApiSettings(
        api_key=SecretStr(os.environ.get("COLLECTIONS_API_KEY", DEV_API_KEY)),
        webhook_secret=SecretStr(os.environ.get("COLLECTIONS_WEBHOOK_SECRET", DEV_WEBHOOK_SECRET)),
    )
    ui_origins = [f"http://{host}:{settings.dev_server_ui_port}" for host in ("localhost", "127.0.0.1")]
    api_settings = api_settings.model_copy(
        update={
            "codec_ui_token": api_settings.codec_ui_token or SecretStr(secrets.token_urlsafe(32)),
            "codec_cors_origins": list(dict.fromkeys([*api_settings.codec_cors_origins, *ui_origins])),
            # The console and the customer's page are served over plain HTTP here: a Secure cookie would
            # never come back.
            "console_cookie_secure": "COLLECTIONS_CONSOLE_COOKIE_SECURE" in os.environ
            and api_settings.console_cookie_secure,
            "self_service_cookie_secure": "COLLECTIONS_SELF_SERVICE_COOKIE_SECURE" in os.environ
            and api_settings.self_service_cookie_secure,
        }
    )
    sandbox = SandboxSettings(
        inbound_url=f"http://127.0.0.1:{api_settings.api_port}/webhooks/sms",
        receipts_url=f"http://127.0.0.1:{api_settings.api_port}/webhooks/receipts",
        webhook_secret=api_settings.webhook_secret,
    )
    if "COLLECTIONS_SMS_PROVIDER" not in os.environ:
        settings = settings.model_copy(
            update={
                "sms_provider": "webhook",
                "sms_webhook_url": f"http://{sandbox.host}:{sandbox.port}/sms",
            }
        )
    return settings, api_settings, sandbox


def ui_codec_endpoint(api_settings: ApiSettings) -> str:
    """The codec endpoint the dev server's Web UI calls from the browser: the API's token path."""
    if api_settings.codec_ui_token is None:
        raise ValueError("the stack sets codec_ui_token")
    host = "127.0.0.1" if api_settings.api_host in ("0.0.0.0", "::") else api_settings.api_host
    token = api_settings.codec_ui_token.get_secret_value()
    return f"http://{host}:{api_settings.api_port}/codec/ui/{token}"


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    settings, api_settings, sandbox = stack_settings()
    os.environ[UI_CODEC_ENDPOINT_ENV] = ui_codec_endpoint(api_settings)

    def apps(client: Client) -> list[ServedApp]:
        api = create_app(client, settings, api_settings, engine)
        return [
            ("HTTP API", api, api_settings.api_host, api_settings.api_port),
            (
                "SMS sandbox",
                create_sandbox_app(sandbox, Mailbox(sandbox.database)),
                sandbox.host,
                sandbox.port,
            ),
        ]

    engine = make_engine(settings.database_url)  # migrated: the demo users need their table
    demo_logins = ensure_demo_users(engine, DATA_DIR / "console-logins.txt")
    print(
        "\nKindly is starting:\n"
        f"  Temporal Web UI   http://localhost:{settings.dev_server_ui_port}\n"
        f"  SMS sandbox inbox http://{sandbox.host}:{sandbox.port}/\n"
        f"  Staff console     http://{api_settings.api_host}:{api_settings.api_port}/console/"
        f"  (demo logins in {DATA_DIR / 'console-logins.txt'})\n"
        f"  HTTP API docs     http://{api_settings.api_host}:{api_settings.api_port}/docs"
        f"  (X-API-Key: {api_settings.api_key.get_secret_value()})\n"
        f"  Codec server      http://{api_settings.api_host}:{api_settings.api_port}/codec"
        "  (temporal CLI: --codec-endpoint <it> --codec-auth 'Bearer <API key>')\n",
        flush=True,
    )
    if demo_logins:
        print(f"Console users made for the demo (shown once):\n{demo_logins}", flush=True)
    asyncio.run(serve(settings, dev=True, demo=True, apps=apps))
    exit_without_finalizing()


if __name__ == "__main__":
    main()

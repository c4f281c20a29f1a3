"""``make run``: the whole system on one machine, on its embedded defaults.

The Temporal dev server (SQLite under ``.data/``, Web UI), the worker with its search attributes, the
HTTP API, the SMS sandbox as the gateway (its messages kept in ``.data/sandbox.sqlite3``), and a demo
portfolio. Replies typed in the sandbox reach the workflows through the API's signed inbound webhook.

``COLLECTIONS_SMS_PROVIDER=aliyun`` (or ``tencent``) sends through that provider's official SDK to the
sandbox's imitation of its API instead, with the sandbox's credentials and the demo's registered templates
(``registered_demo.json``) unless ``COLLECTIONS_REGISTERED_TEMPLATES_FILE`` names others; the sandbox then
pushes receipts and replies to the API's callbacks for that provider, under a secret kept in
``.data/sms-callback-secret``.
The Web UI decrypts payloads through the API's codec server, at a path holding a secret made anew at
each start (the dev UI cannot send the API key; ``kindly.programs.api.codec_server``). Ctrl-C stops it
all.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from pathlib import Path

from pydantic import SecretStr
from temporalio.client import Client

from kindly.domain.messages.registered_check import REGISTERED_DEMO_FILE
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
CALLBACK_SECRET_FILE = DATA_DIR / "sms-callback-secret"
"""The path secret of the providers' callbacks in ``make run``, made once per data folder and kept."""


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
    elif settings.sms_provider in ("aliyun", "tencent"):
        settings, sandbox = through_provider(settings, sandbox, api_port=api_settings.api_port)
    return settings, api_settings, sandbox


def through_provider(
    settings: Settings, sandbox: SandboxSettings, *, api_port: int, secret_file: Path = CALLBACK_SECRET_FILE
) -> tuple[Settings, SandboxSettings]:
    """The worker's and the sandbox's settings for sending through ``settings.sms_provider`` (Alibaba
    Cloud or Tencent Cloud) to the sandbox's imitation of its API, with the sandbox's credentials; the
    registered templates the settings name, else the demo's; and the callbacks' secret, the settings' or the
    one kept in ``secret_file``, in the base URL the sandbox pushes receipts and replies to."""
    provider = settings.sms_provider
    endpoint = f"{sandbox.host}:{sandbox.port}"
    templates_file = settings.registered_templates_file or REGISTERED_DEMO_FILE
    secret = settings.sms_callback_secret or kept_secret(secret_file)
    update: dict[str, object] = {"registered_templates_file": templates_file, "sms_callback_secret": secret}
    if provider == "aliyun":
        update |= {
            "aliyun_endpoint": endpoint,
            "aliyun_protocol": "http",
            "aliyun_access_key_id": sandbox.aliyun_access_key_id,
            "aliyun_access_key_secret": sandbox.aliyun_access_key_secret,
        }
    else:
        update |= {
            "tencent_endpoint": endpoint,
            "tencent_protocol": "http",
            "tencent_secret_id": sandbox.tencent_secret_id,
            "tencent_secret_key": sandbox.tencent_secret_key,
            "tencent_sms_app_id": sandbox.tencent_sms_app_id,
        }
    callbacks = f"http://127.0.0.1:{api_port}/callbacks/{provider}/{secret.get_secret_value()}"
    sandbox = sandbox.model_copy(
        update={
            "push_format": provider,
            "callback_base_url": callbacks,
            "registered_templates_file": sandbox.registered_templates_file or templates_file,
        }
    )
    return settings.model_copy(update=update), sandbox


def kept_secret(path: Path) -> SecretStr:
    """The secret in ``path``, made there (readable by its owner only) when there is none yet."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process of the stack made it first
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32))
    return SecretStr(path.read_text().strip())


def _imitating(sandbox: SandboxSettings) -> str:
    names = {"aliyun": "Alibaba Cloud SMS", "tencent": "Tencent Cloud SMS"}
    name = names.get(sandbox.push_format)
    return f"  (as {name}; registered templates {sandbox.registered_templates_file})" if name else ""


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
        f"  SMS sandbox inbox http://{sandbox.host}:{sandbox.port}/{_imitating(sandbox)}\n"
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

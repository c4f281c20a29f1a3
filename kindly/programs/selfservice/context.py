"""What the page's handlers share: the Temporal client, the links, the catalogs, the templates, the rate
limits and the page's settings, kept on the app's state and handed out as the ``SelfService`` dependency."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, cast

from fastapi import Depends, Request
from jinja2 import Environment
from temporalio.client import Client

from kindly.programs.console.i18n import Catalogs
from kindly.programs.selfservice.limits import PageLimits
from kindly.store.self_service_links import SelfServiceLinks

if TYPE_CHECKING:  # the API mounts the page: importing it here at run time would be circular
    from kindly.programs.api.settings import ApiSettings
    from kindly.settings import Settings

ANSWER_TIMEOUT_SECONDS = 20.0
"""How long a customer waits for the account to take a choice before the page says it is not confirmed
yet (an operator waits 30 s; a phone on a train should not)."""


@dataclass(frozen=True)
class Payment:
    """The lender's payment page: its URL template and the secret references are signed with."""

    url_template: str
    secret: str


@dataclass(frozen=True)
class PageConfig:
    """The page's settings, in the units its code uses."""

    hotline: str
    default_locale: str
    cookie_secure: bool
    payment: Payment | None
    """None: no "pay now" button (``payment_url_template`` is unset)."""
    answer_timeout: float = ANSWER_TIMEOUT_SECONDS

    @classmethod
    def of(cls, settings: Settings, api_settings: ApiSettings) -> PageConfig:
        template, secret = api_settings.payment_url_template, api_settings.payment_reference_secret
        payment = None
        if template is not None and secret is not None:
            payment = Payment(url_template=template, secret=secret.get_secret_value())
        return cls(
            hotline=settings.hotline,
            default_locale=api_settings.self_service_default_locale,
            cookie_secure=api_settings.self_service_cookie_secure,
            payment=payment,
        )


@dataclass(frozen=True)
class SelfServiceContext:
    client: Client
    links: SelfServiceLinks
    catalogs: Catalogs
    templates: Environment
    limits: PageLimits
    config: PageConfig


def get_self_service(request: Request) -> SelfServiceContext:
    return cast(SelfServiceContext, request.app.state.self_service)


SelfService = Annotated[SelfServiceContext, Depends(get_self_service)]

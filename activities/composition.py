"""What a message is made of before it goes: free text for gateways that take any text (the console,
the webhook, Twilio), or a registered template's code and parameters for the mainland providers (Alibaba
Cloud, Tencent Cloud), which send only what they approved. Either way the body is the text the customer
reads, which the outbox, the audit log and the billed-parts count use, and the variant it was made from
(``kindly.domain.messages.variants``), which the send records."""

from __future__ import annotations

from typing import NamedTuple, Protocol

from kindly.domain.contract import TemplateName
from kindly.domain.messages.context import MessageContext
from kindly.domain.messages.registered import (
    ProviderName,
    ProviderTemplates,
    parameter_values,
    registered_body,
)
from kindly.domain.messages.rendering import MessageRenderer
from kindly.domain.messages.variants import DEFAULT_VARIANT
from kindly.errors import TemplateError


class ComposedSms(NamedTuple):
    body: str
    template_code: str | None = None
    """The provider's registered template; None for free text."""
    params: dict[str, str] | None = None
    """The registered template's placeholders and their values, in the order of its ``params``."""
    variant: str = DEFAULT_VARIANT
    """The label of the variant the message was made from: ``default``, ``segments/gentle``, ..."""


class MessageComposer(Protocol):
    def compose(self, template: TemplateName, locale: str, context: MessageContext) -> ComposedSms:
        """The message; ``TemplateError`` names the template and locale when it cannot be made."""
        ...


class FreeTextComposer:
    """Kindly's own templates, rendered (``kindly.domain.messages.rendering``)."""

    def __init__(self, renderer: MessageRenderer) -> None:
        self._renderer = renderer

    def compose(self, template: TemplateName, locale: str, context: MessageContext) -> ComposedSms:
        rendered = self._renderer.render_variant(template, locale, context)
        return ComposedSms(rendered.body, variant=rendered.variant)


class RegisteredComposer:
    """A provider's registered templates (``kindly.domain.messages.registered``), filled in."""

    def __init__(
        self,
        provider: ProviderName,
        templates: ProviderTemplates,
        *,
        brand: str,
        hotline: str,
        channels: list[str],
    ) -> None:
        self.provider = provider
        self.templates = templates
        self._brand, self._hotline, self._channels = brand, hotline, channels

    def compose(self, template: TemplateName, locale: str, context: MessageContext) -> ComposedSms:
        found = self.templates.lookup(template, locale, context.variant_key)
        if found is None:
            raise TemplateError(
                f"template {template!s} for locale {locale} has no {self.provider} registered template"
            )
        variant, registered = found
        values = parameter_values(
            registered, context, locale, brand=self._brand, hotline=self._hotline, channels=self._channels
        )
        body = registered_body(self.provider, self.templates.sign_name, registered, values)
        return ComposedSms(body, registered.code, values, variant)

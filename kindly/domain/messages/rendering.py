"""Turning a template name, a locale and a ``MessageContext`` into the SMS body a customer reads.

Rendering lives in one place so that every message gets the same money and date formatting, the
same brand, hotline and repayment channels, the same consequences of being overdue (only those the
policy declares, only after the due date: ``consequences``), and the same failure mode: a broken
template raises ``TemplateError`` instead of sending a half-rendered text. Operators may override or add
templates, and variants of them (``variants``), in a folder of their own; ``MessageRenderer.check_all``
renders every template and variant at worker start-up so that a bad one stops the worker before
anything is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jinja2

from kindly.domain.contract import TemplateName
from kindly.domain.messages.consequences import consequences_text
from kindly.domain.messages.content_check import SampleValues
from kindly.domain.messages.context import MessageContext
from kindly.domain.messages.formatting import format_date, format_money
from kindly.domain.messages.links import sample_link
from kindly.domain.messages.template_check import check_templates
from kindly.domain.messages.variants import (
    DEFAULT_VARIANT,
    PolicyUses,
    found_variants,
    variant_chain,
    variant_path,
)
from kindly.errors import ConfigurationError, TemplateError

__all__ = [
    "MessageRenderer",
    "Rendered",
    "build_template_environment",
    "template_path",
]


class Rendered(NamedTuple):
    body: str
    variant: str = DEFAULT_VARIANT
    """The label of the variant it was rendered from (``kindly.domain.messages.variants``)."""


def _instalment_variables(context: MessageContext, locale: str) -> dict[str, Any]:
    """The plan's next instalment for ``instalment_due`` (None values for any other message)."""
    shown = context.instalment
    return {
        "instalment_number": None if shown is None else shown.number,
        "instalment_count": None if shown is None else shown.count,
        "instalment_amount": None if shown is None else format_money(shown.amount, context.currency, locale),
        "instalment_due": None if shown is None else format_date(shown.due, locale),
    }


def template_path(template: TemplateName, locale: str) -> str:
    """The loader path of one template's default wording, the same for packaged and operator templates."""
    return variant_path(DEFAULT_VARIANT, template, locale)


def build_template_environment(override_dir: Path | None = None) -> jinja2.Environment:
    """A Jinja environment that looks in the operator's folder first, then the packaged templates.

    Undefined variables are errors (a typo must not send "Dear customer, you owe ."), and output
    is plain text, so autoescaping is off. Raises ``ConfigurationError`` if ``override_dir`` is
    given but is not a directory, so a mistyped setting is caught at start-up.
    """
    loaders: list[jinja2.BaseLoader] = []
    if override_dir is not None:
        if not override_dir.is_dir():
            raise ConfigurationError(
                f"template override folder {str(override_dir)!r} does not exist or is not a folder"
            )
        loaders.append(jinja2.FileSystemLoader(override_dir, encoding="utf-8"))
    loaders.append(jinja2.PackageLoader("kindly.domain.messages", "templates"))
    environment = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )
    environment.filters["money"] = format_money
    environment.filters["date"] = format_date
    return environment


class MessageRenderer:
    """Renders SMS bodies with the brand, hotline and repayment channels every message shows."""

    def __init__(
        self,
        environment: jinja2.Environment,
        *,
        brand: str,
        hotline: str,
        repayment_channels: Sequence[str],
    ) -> None:
        self._environment = environment
        self._brand = brand
        self._hotline = hotline
        self._channels = list(repayment_channels)
        try:
            self._paths = frozenset(environment.list_templates())
        except TypeError:  # a loader that cannot list: the default wording only
            self._paths = frozenset()

    def variants(self) -> tuple[dict[str, set[tuple[str, TemplateName]]], list[str]]:
        """Every variant the packaged and operator folders hold, each with its (locale, template) pairs,
        and a sentence for each file in a variant folder that is not one (``variants.found_variants``)."""
        return found_variants(self._paths)

    def render(self, template: TemplateName, locale: str, context: MessageContext) -> str:
        """The message as one clean paragraph; ``TemplateError`` names template and locale.

        The context carries only masked, non-personal data, so no template can show a name,
        phone number or full loan reference however it is written.
        """
        return self.render_variant(template, locale, context).body

    def render_variant(self, template: TemplateName, locale: str, context: MessageContext) -> Rendered:
        """The message in the first variant of the context's chain that has the template (a named
        variant, the region's, the segment's, else the default), and that variant's label."""
        for label in variant_chain(context.variant_key):
            if label == DEFAULT_VARIANT or variant_path(label, template, locale) in self._paths:
                return Rendered(self.render_as(label, template, locale, context), label)
        raise AssertionError("a variant chain ends with the default")  # pragma: no cover

    def render_as(self, label: str, template: TemplateName, locale: str, context: MessageContext) -> str:
        """The message in the variant ``label``; ``TemplateError`` names the template, locale and variant."""
        variables: dict[str, Any] = {
            "brand": self._brand,
            "hotline": self._hotline,
            "channels": list(self._channels),
            "amount": format_money(context.amount_due, context.currency, locale),
            "outstanding": context.amount_due > 0,
            "due_date": format_date(context.due_date, locale),
            "reference": context.reference_masked,
            "days_past_due": context.days_past_due,
            "promise_date": (
                None if context.promise_date is None else format_date(context.promise_date, locale)
            ),
            "currency": context.currency,
            "locale": locale,
            "link": context.link,
            "consequences": consequences_text(context.consequences, locale, template, context.days_past_due),
            **_instalment_variables(context, locale),
        }
        path = variant_path(label, template, locale)
        where = f"template {template!s} for locale {locale}"
        if label != DEFAULT_VARIANT:
            where += f" (variant {label})"
        try:
            text = self._environment.get_template(path).render(variables)
        except jinja2.TemplateNotFound as err:
            raise TemplateError(f"{where} not found ({path})") from err
        except Exception as err:
            # Any failure, including one from inside a filter in an operator's template, must stop
            # the send: a half-rendered message is worse than none.
            raise TemplateError(f"{where} failed to render: {type(err).__name__}: {err}") from err
        body = " ".join(text.split())
        if not body:
            raise TemplateError(f"{where} rendered empty")
        return body

    def check_all(self, *, max_segments: int, public_base_url: str, uses: PolicyUses | None = None) -> None:
        """Render every template and variant in every locale with sample data and check its content
        (``template_check.check_templates``): each variant with the consequences of the policies in
        ``uses`` that can take it (None: none declared, and no variant checked against the segments).

        Every template but the service messages is rendered with a self-service link as long as the real
        ones under ``public_base_url``, which it must show and which its length counts. Called at worker
        start-up, before anything is sent; raises ``ConfigurationError`` listing every template, locale
        and problem.
        """
        sample = SampleValues(
            hotline=self._hotline,
            brand=self._brand,
            channels=tuple(self._channels),
            link=sample_link(public_base_url),
        )
        check_templates(self, sample=sample, max_segments=max_segments, uses=uses)

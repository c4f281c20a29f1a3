"""Turning a template name, a locale and a ``MessageContext`` into the SMS body a customer reads.

Rendering lives in one place so that every message gets the same money and date formatting, the
same brand, hotline and repayment channels, and the same failure mode: a broken template raises
``TemplateError`` instead of sending a half-rendered text. Operators may override or add templates
in a folder of their own; ``MessageRenderer.check_all`` renders every template at worker start-up so
that a bad override stops the worker before anything is sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2

from kindly.domain.contract import SUPPORTED_LOCALES, TemplateName
from kindly.domain.messages.content_check import SampleValues, carries_link, check_message
from kindly.domain.messages.context import MessageContext
from kindly.domain.messages.formatting import format_date, format_money
from kindly.domain.messages.links import sample_link
from kindly.errors import ConfigurationError, TemplateError

__all__ = [
    "MessageRenderer",
    "build_template_environment",
    "template_path",
]


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
    """The loader path of one template, the same for packaged and operator templates."""
    return f"{locale}/{template}.txt.j2"


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

    def render(self, template: TemplateName, locale: str, context: MessageContext) -> str:
        """The message as one clean paragraph; ``TemplateError`` names template and locale.

        The context carries only masked, non-personal data, so no template can show a name,
        phone number or full loan reference however it is written.
        """
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
            **_instalment_variables(context, locale),
        }
        path = template_path(template, locale)
        try:
            text = self._environment.get_template(path).render(variables)
        except jinja2.TemplateNotFound as err:
            raise TemplateError(f"template {template!s} for locale {locale} not found ({path})") from err
        except Exception as err:
            # Any failure, including one from inside a filter in an operator's template, must stop
            # the send: a half-rendered message is worse than none.
            raise TemplateError(
                f"template {template!s} for locale {locale} failed to render: {type(err).__name__}: {err}"
            ) from err
        body = " ".join(text.split())
        if not body:
            raise TemplateError(f"template {template!s} for locale {locale} rendered empty")
        return body

    def check_all(self, *, max_segments: int, public_base_url: str) -> None:
        """Render every template in every locale with sample data and check its content.

        Each template is rendered with and without a promise date so both branches of a
        conditional are exercised, and each result must pass ``content_check.check_message`` (required
        parts, no banned words, no personal data, at most ``max_segments`` SMS
        segments). Every template but the service messages is rendered with a self-service link as long
        as the real ones under ``public_base_url``, which it must show and which its length counts.
        Called at worker start-up, before anything is sent; raises ``ConfigurationError`` listing every
        template, locale and problem.
        """
        sample = SampleValues(
            hotline=self._hotline,
            brand=self._brand,
            channels=tuple(self._channels),
            link=sample_link(public_base_url),
        )
        failures: list[str] = []
        failing: set[tuple[str, TemplateName]] = set()
        for locale in SUPPORTED_LOCALES:
            for template in TemplateName:
                seen: set[str] = set()
                for with_promise in (False, True):
                    try:
                        context = sample.context(with_promise=with_promise, with_link=carries_link(template))
                        body = self.render(template, locale, context)
                    except TemplateError as err:
                        failures.append(str(err))
                        failing.add((locale, template))
                        break
                    for problem in check_message(
                        body, template, locale, sample=sample, max_segments=max_segments
                    ):
                        if problem in seen:
                            continue
                        seen.add(problem)
                        failing.add((locale, template))
                        when = " (with a promise date)" if with_promise else ""
                        failures.append(f"template {template!s} for locale {locale}{when}: {problem}")
        if failures:
            listing = "\n  - ".join(failures)
            raise ConfigurationError(
                f"{len(failing)} message template(s) cannot be rendered or fail the content check:"
                f"\n  - {listing}"
            )

"""The start-up check of a provider's registered templates (``kindly.domain.messages.registered``): what a
worker sending through Alibaba Cloud SMS or Tencent Cloud SMS verifies before anything is sent.

* **Complete.** Every template the policies can send (``kindly.domain.policy.sendable``) is registered
  in every locale the provider registers any template in. A lender that serves only ``zh-CN`` registers
  only ``zh-CN``; once it registers one ``en-US`` template it must register them all. (A message for an
  account in a locale the provider does not register fails to send, naming the template and locale.)
* **Compliant.** The text the customer reads, the signature in 【】 and the registered text with its
  parameters filled in from ``SampleValues`` (the deployment's hotline and channels, a self-service link
  as long as the real ones), passes Kindly's content check (``content_check.check_message``): the
  amount, due date, masked reference, hotline, opt-out wording and link a template must show, no banned
  word, no personal data, at most ``max_sms_segments``; and at most the providers' 500 characters.
  A link registered as a fixed prefix and a ``link_token`` parameter must be the deployment's own
  ``<public_base_url>/p/``.
* **Within the provider's limits.** Each parameter's sample value (the sample's amounts and days are
  deliberately large, so real values fit) is at most the provider's ``max_param_length``, and never
  empty, which providers refuse.
* **Variants too, with their policies' facts.** Each registered variant (``ProviderTemplates.variants``)
  passes the same checks, and every registered text is checked with the consequences of being overdue
  declared by each policy that can take it (``variants.facts_of``): a registered text states a declared
  fact in its approved phrase, fixed in the text, and no other. A variant of a segment without a policy,
  or a ``template_variant`` a policy names that the provider does not register, is refused.

Every failure is listed, each naming its template, locale and problem. Pure: the caller reads the file.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

from kindly.domain.contract import SUPPORTED_LOCALES, TemplateName
from kindly.domain.messages.content_check import SampleValues, carries_link, check_message
from kindly.domain.messages.links import LINK_PATH, sample_link
from kindly.domain.messages.registered import (
    Param,
    ProviderName,
    ProviderTemplates,
    RegisteredTemplate,
    RegisteredTemplates,
    parameter_values,
    registered_body,
)
from kindly.domain.messages.variants import (
    DEFAULT_VARIANT,
    PolicyUses,
    facts_of,
    parse_label,
    variant_problems,
)
from kindly.domain.policy.consequences import Consequences
from kindly.errors import ConfigurationError

__all__ = [
    "PROVIDER_MAX_LENGTH",
    "REGISTERED_DEMO_FILE",
    "checked_provider_templates",
    "deployment_sample",
    "missing_templates",
    "placeholder_text",
    "registered_locales",
    "template_problems",
]

REGISTERED_DEMO_FILE = Path(__file__).with_name("registered_demo.json")
"""The demo's registered templates, for both providers, as ``make run`` uses them: the texts follow Kindly's
own templates, the codes are made up, and the link is ``make run``'s (a lender registers its own)."""

PROVIDER_MAX_LENGTH = 500
"""The longest message either provider sends, signature and parameters included, in characters."""


def deployment_sample(
    *, hotline: str, brand: str, channels: Sequence[str], public_base_url: str
) -> SampleValues:
    """The sample account with the deployment's own texts and a self-service link as long as its real ones,
    as ``MessageRenderer.check_all`` checks Kindly's own templates."""
    return SampleValues(
        hotline=hotline, brand=brand, channels=tuple(channels), link=sample_link(public_base_url)
    )


def placeholder_text(provider: ProviderName, name: str) -> str:
    """A placeholder as the provider's text writes it: ``${amount}`` or ``{1}``."""
    return f"${{{name}}}" if provider == "aliyun" else f"{{{name}}}"


def registered_locales(templates: ProviderTemplates) -> list[str]:
    """The supported locales the provider registers any template in, in ``SUPPORTED_LOCALES`` order."""
    found = {locale for locales in templates.templates.values() for locale in locales}
    return [locale for locale in SUPPORTED_LOCALES if locale in found]


def missing_templates(
    provider: ProviderName, templates: ProviderTemplates, sendable: Collection[TemplateName]
) -> list[str]:
    """A sentence for each sendable template a registered locale lacks."""
    problems: list[str] = []
    for locale in registered_locales(templates):
        for template in TemplateName:
            if template in sendable and locale not in templates.templates.get(template, {}):
                problems.append(f"{provider} has no template for {template} in {locale}")
    return problems


def template_problems(
    provider: ProviderName,
    templates: ProviderTemplates,
    template: TemplateName,
    locale: str,
    registered: RegisteredTemplate,
    *,
    sample: SampleValues,
    public_base_url: str,
    max_segments: int,
    consequences: Consequences | None = None,
) -> list[str]:
    """Every problem of one registered template (``registered``, for ``template`` in ``locale``), each a
    sentence, with the ``consequences`` the policies that can send it declare. It is filled in with and
    without a promise date, as ``MessageRenderer.check_all`` renders; a problem of only one of them says
    which."""
    found: dict[bool, list[str]] = {}
    for with_promise in (False, True):
        context = sample.context(
            with_promise=with_promise, with_link=carries_link(template), consequences=consequences
        )
        values = parameter_values(
            registered, context, locale, brand=sample.brand, hotline=sample.hotline, channels=sample.channels
        )
        problems = [
            problem
            for name, value in values.items()
            for problem in _parameter_problems(provider, templates, registered, name, value)
        ]
        body = registered_body(provider, templates.sign_name, registered, values)
        problems += check_message(
            body, template, locale, sample=sample, max_segments=max_segments, consequences=consequences
        )
        if len(body) > PROVIDER_MAX_LENGTH:
            problems.append(
                f"too long: {len(body)} characters with the signature, more than the providers' "
                f"{PROVIDER_MAX_LENGTH}"
            )
        found[with_promise] = problems
    unique = _link_prefix_problems(provider, registered, public_base_url)
    for with_promise, problems in found.items():
        for problem in problems:
            if problem not in found[not with_promise]:
                problem = f"{problem} ({'with' if with_promise else 'without'} a promise date)"
            if problem not in unique:
                unique.append(problem)
    return unique


def checked_provider_templates(
    provider: ProviderName,
    registered: RegisteredTemplates,
    *,
    sendable: Collection[TemplateName],
    sample: SampleValues,
    public_base_url: str,
    max_segments: int,
    source: str = "",
    uses: PolicyUses | None = None,
) -> ProviderTemplates:
    """The provider's templates once every check passed; else ``ConfigurationError`` listing every
    failure, each naming its template, locale and problem (``source``: the file, for the message).
    ``uses``: the policies in use by segment, whose consequences each registered text is checked with and
    against whose segments the variants are checked (None: no consequences, no variant checked)."""
    where = f"registered templates {source}".rstrip()
    templates = registered.for_provider(provider)
    if templates is None:
        raise ConfigurationError(f"{where}: no {provider} section (its sign_name and templates)")
    if not registered_locales(templates):
        raise ConfigurationError(f"{where}: {provider} registers no template in any locale")
    failures = missing_templates(provider, templates, sendable)
    by_label = templates.by_label()
    if uses is not None:
        failures += variant_problems(by_label.keys(), uses, what=f"{provider} registered templates")
    for label, by_template in by_label.items():
        parsed = parse_label(label)
        for template, locales in by_template.items():
            for locale, found in locales.items():
                also_in = [other for other, has in by_label.items() if locale in has.get(template, {})]
                groups = facts_of(parsed, uses, template, also_in=also_in) if parsed else [(None, [])]
                variant = "" if label == DEFAULT_VARIANT else f" variant {label}"
                where_found = f"template {template} for locale {locale} ({provider}{variant} {found.code})"
                seen: set[str] = set()
                for facts, segments in groups:
                    whose = ""
                    if facts is not None and facts.declared:
                        whose = f" (segment(s) {', '.join(segments)}: {facts.describe()})"
                    for problem in template_problems(
                        provider,
                        templates,
                        template,
                        locale,
                        found,
                        sample=sample,
                        public_base_url=public_base_url,
                        max_segments=max_segments,
                        consequences=facts,
                    ):
                        if problem not in seen:
                            seen.add(problem)
                            failures.append(f"{where_found}{whose}: {problem}")
    if failures:
        listing = "\n  - ".join(failures)
        raise ConfigurationError(
            f"{where}: {len(failures)} problem(s) with {provider}'s templates:\n  - {listing}"
        )
    return templates


def _parameter_problems(
    provider: ProviderName,
    templates: ProviderTemplates,
    registered: RegisteredTemplate,
    name: str,
    value: str,
) -> list[str]:
    shown = f"placeholder {placeholder_text(provider, name)} ({registered.params[name]})"
    if not value:
        return [f"{shown} would be sent empty, which {provider} refuses"]
    if len(value) > templates.max_param_length:
        return [
            f"{shown} would be {len(value)} characters ({value!r}), more than {provider}'s "
            f"max_param_length of {templates.max_param_length}"
        ]
    return []


def _link_prefix_problems(
    provider: ProviderName, registered: RegisteredTemplate, public_base_url: str
) -> list[str]:
    """A ``link_token`` must follow the deployment's own ``<public_base_url>/p/``, fixed in the text."""
    expected = f"{public_base_url}{LINK_PATH}"
    problems: list[str] = []
    for name, param in registered.params.items():
        if param is not Param.LINK_TOKEN:
            continue
        placeholder = placeholder_text(provider, name)
        before = registered.text.split(placeholder, 1)[0]
        if not before.endswith(expected):
            problems.append(
                f"placeholder {placeholder} (link_token) must follow {expected!r} in the text, the "
                f"deployment's public_base_url (COLLECTIONS_PUBLIC_BASE_URL) and {LINK_PATH!r}"
            )
    return problems

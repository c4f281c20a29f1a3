"""The worker's start-up check of Kindly's own templates and their variants: every one renders, and every
message it makes passes the content check, before anything is sent.

* **Every template, every variant.** The default wording of every template in every locale, and each
  variant's own templates (``kindly.domain.messages.variants``), packaged or the operator's.
* **With the facts of whoever can get it.** A variant is checked with the consequences of being overdue
  declared by each policy that can take it (``variants.facts_of``): a segment's by the segment's, the
  default by every policy's. So a post-due reminder that leaves out a declared fact, or states one a
  segment does not declare, stops the worker naming the template, the locale and the segments.
* **Both branches.** Each is rendered with and without a promise date.
* **Variants that fit the policies.** A file in a variant folder that is no template, a variant of a
  segment without a policy, or a ``template_variant`` a policy names without templates is a problem too.

Every failure is listed, each naming its template, locale (and variant) and problem.
"""

from __future__ import annotations

from typing import Protocol

from kindly.domain.contract import SUPPORTED_LOCALES, TemplateName
from kindly.domain.messages.content_check import SampleValues, carries_link, check_message
from kindly.domain.messages.context import MessageContext
from kindly.domain.messages.variants import (
    DEFAULT_VARIANT,
    PolicyUses,
    facts_of,
    parse_label,
    variant_problems,
)
from kindly.domain.policy.consequences import Consequences
from kindly.errors import ConfigurationError, TemplateError

__all__ = ["VariantRenderer", "check_templates"]


class VariantRenderer(Protocol):
    """What the check needs of ``rendering.MessageRenderer``."""

    def variants(self) -> tuple[dict[str, set[tuple[str, TemplateName]]], list[str]]: ...

    def render_as(self, label: str, template: TemplateName, locale: str, context: MessageContext) -> str: ...


def check_templates(
    renderer: VariantRenderer, *, sample: SampleValues, max_segments: int, uses: PolicyUses | None
) -> None:
    """Raise ``ConfigurationError`` listing every problem of every template and variant, if any."""
    found, problems = renderer.variants()
    labels = {DEFAULT_VARIANT, *found}
    if uses is not None:
        problems += variant_problems(labels, uses)
    every_template = {(locale, template) for locale in SUPPORTED_LOCALES for template in TemplateName}
    failures: list[str] = []
    failing: set[tuple[str, str, TemplateName]] = set()
    for label in sorted(labels, key=lambda text: (text != DEFAULT_VARIANT, text)):
        parsed = parse_label(label)
        if parsed is None:  # pragma: no cover - found_variants only returns labels it parsed
            continue
        pairs = every_template if label == DEFAULT_VARIANT else found[label]
        for locale in SUPPORTED_LOCALES:
            for template in TemplateName:
                if (locale, template) not in pairs:
                    continue
                also_in = [other for other, has in found.items() if (locale, template) in has]
                groups = facts_of(parsed, uses, template, also_in=also_in)
                found_problems = _problems(renderer, label, template, locale, groups, sample, max_segments)
                if found_problems:
                    failing.add((label, locale, template))
                    failures.extend(found_problems)
    if failures or problems:
        heading = (
            f"{len(failing)} message template(s) cannot be rendered or fail the content check"
            if failures
            else "the message templates' variants do not fit the policies"
        )
        listing = "\n  - ".join([*failures, *problems])
        raise ConfigurationError(f"{heading}:\n  - {listing}")


def _problems(
    renderer: VariantRenderer,
    label: str,
    template: TemplateName,
    locale: str,
    groups: list[tuple[Consequences | None, list[str]]],
    sample: SampleValues,
    max_segments: int,
) -> list[str]:
    """Each problem of one template of one variant, once, with the facts (and segments) it shows with."""
    where = f"template {template!s} for locale {locale}"
    if label != DEFAULT_VARIANT:
        where += f" (variant {label})"
    seen: set[str] = set()
    problems: list[str] = []
    for facts, segments in groups:
        whose = ""
        if facts is not None and facts.declared:
            whose = f" (segment(s) {', '.join(segments)}: {facts.describe()})"
        for with_promise in (False, True):
            context = sample.context(
                with_promise=with_promise, with_link=carries_link(template), consequences=facts
            )
            try:
                body = renderer.render_as(label, template, locale, context)
            except TemplateError as err:
                if str(err) not in seen:
                    seen.add(str(err))
                    problems.append(str(err))
                break
            for problem in check_message(
                body, template, locale, sample=sample, max_segments=max_segments, consequences=facts
            ):
                if problem in seen:
                    continue
                seen.add(problem)
                when = " (with a promise date)" if with_promise else ""
                problems.append(f"{where}{when}{whose}: {problem}")
    return problems

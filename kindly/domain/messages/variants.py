"""Template variants: other wordings of a template for a named variant, a region or a segment, and which
one a message takes.

Kindly's own templates and an operator's (``COLLECTIONS_TEMPLATE_DIR``) use one layout::

    <locale>/variants/<name>/<template>.txt.j2              the variant the policy names (template_variant)
    <locale>/regions/<REGION>/<segment>/<template>.txt.j2   the segment's wording in one region
    <locale>/segments/<segment>/<template>.txt.j2           the segment's wording
    <locale>/<template>.txt.j2                              the locale's default

A message takes the first that exists for its template and locale, in that order (``variant_chain``), so
a variant need not have every template. Its label (``variants/formal``, ``regions/GD/standard``,
``segments/gentle``, ``default``) is what the send records. Registered templates name their variants by
the same labels (``kindly.domain.messages.registered``).

Which policies can take a variant decides what it is checked against (``facts_of``): a segment's
variants, that segment's policies (with its experiments' arms); a named variant, the policies naming it;
the default, every policy that falls back to it. A variant of a segment without a policy, or a variant a
policy names that has no templates, is a configuration error (``variant_problems``).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from kindly.domain.contract import SUPPORTED_LOCALES, TemplateName
from kindly.domain.messages.context import VariantKey
from kindly.domain.policy.consequences import Consequences
from kindly.domain.policy.model import TEMPLATE_VARIANT_PATTERN, ContactPolicy
from kindly.domain.policy.sendable import sendable_templates

__all__ = [
    "DEFAULT_VARIANT",
    "LABEL_FORMS",
    "Label",
    "PolicyUses",
    "facts_of",
    "found_variants",
    "parse_label",
    "variant_chain",
    "variant_path",
    "variant_problems",
]

DEFAULT_VARIANT = "default"
SUFFIX = ".txt.j2"
_NAME = re.compile(TEMPLATE_VARIANT_PATTERN)
_REGION = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,15}$")
"""A region folder as ``AccountInput.region`` spells regions: upper-cased letters, digits, '_' and '-'."""

PolicyUses = Mapping[str, Sequence[ContactPolicy]]
"""The policies in use, by segment: each segment's own and its running experiments' arms'."""


@dataclass(frozen=True)
class Label:
    """A variant, parsed from its label."""

    text: str
    kind: Literal["default", "variants", "regions", "segments"]
    name: str | None = None
    region: str | None = None
    segment: str | None = None


def variant_chain(key: VariantKey | None) -> list[str]:
    """The labels a message tries, most specific first, ending with the default."""
    labels: list[str] = []
    if key is not None:
        if key.template_variant:
            labels.append(f"variants/{key.template_variant}")
        if key.region:
            labels.append(f"regions/{key.region}/{key.segment}")
        labels.append(f"segments/{key.segment}")
    labels.append(DEFAULT_VARIANT)
    return labels


def variant_path(label: str, template: TemplateName, locale: str) -> str:
    """The template loader's path of ``template`` in ``locale`` for the variant ``label``."""
    if label == DEFAULT_VARIANT:
        return f"{locale}/{template}{SUFFIX}"
    return f"{locale}/{label}/{template}{SUFFIX}"


def parse_label(label: str) -> Label | None:
    """The variant a label names, or None when it is not one."""
    if label == DEFAULT_VARIANT:
        return Label(label, "default")
    parts = label.split("/")
    if parts[0] == "variants" and len(parts) == 2 and _NAME.fullmatch(parts[1]):
        return Label(label, "variants", name=parts[1])
    if parts[0] == "segments" and len(parts) == 2 and parts[1].strip():
        return Label(label, "segments", segment=parts[1])
    if parts[0] == "regions" and len(parts) == 3 and _REGION.fullmatch(parts[1]) and parts[2].strip():
        return Label(label, "regions", region=parts[1], segment=parts[2])
    return None


LABEL_FORMS = "variants/<name>, regions/<REGION>/<segment> or segments/<segment>"


def found_variants(paths: Iterable[str]) -> tuple[dict[str, set[tuple[str, TemplateName]]], list[str]]:
    """The variants among a template loader's paths, each label with the (locale, template) pairs it has,
    and a sentence for each file in a variant folder that is not one (a misspelt template, a region in
    lower case, a folder too deep)."""
    found: dict[str, set[tuple[str, TemplateName]]] = {}
    problems: list[str] = []
    templates = {str(name) for name in TemplateName}
    for path in sorted(paths):
        parts = path.split("/")
        if len(parts) < 2 or parts[0] not in SUPPORTED_LOCALES or not path.endswith(".j2"):
            continue
        name = parts[-1].removesuffix(SUFFIX)
        if len(parts) == 2:
            if parts[-1].endswith(SUFFIX) and name in templates:
                found.setdefault(DEFAULT_VARIANT, set()).add((parts[0], TemplateName(name)))
            continue
        if parts[1] not in ("variants", "regions", "segments"):
            continue
        label = parse_label("/".join(parts[1:-1]))
        if label is None or label.kind == "default":
            problems.append(f"template file {path}: its folder is not a variant ({LABEL_FORMS})")
        elif not parts[-1].endswith(SUFFIX) or name not in templates:
            problems.append(f"template file {path}: {parts[-1]!r} is not <template>{SUFFIX} of a template")
        else:
            found.setdefault(label.text, set()).add((parts[0], TemplateName(name)))
    return found, problems


def _users(label: Label, uses: PolicyUses) -> list[tuple[str, ContactPolicy]]:
    everyone = [(segment, policy) for segment, policies in uses.items() for policy in policies]
    if label.kind in ("segments", "regions"):
        segment = label.segment or ""
        return [(segment, policy) for policy in uses.get(segment, ())]
    if label.kind == "variants":
        naming = [(segment, policy) for segment, policy in everyone if policy.template_variant == label.name]
        # A variant no policy names yet (an experiment's, to come) must suit any of them.
        return naming or everyone
    return everyone


def facts_of(
    label: Label, uses: PolicyUses | None, template: TemplateName, *, also_in: Collection[str] = ()
) -> list[tuple[Consequences | None, list[str]]]:
    """The distinct consequence facts of the policies that can take ``label`` for ``template``, each with
    their segments: what the template is checked with. A policy that cannot send the template
    (``sendable_templates``) does not count, and neither does one whose own named variant (or, for the
    default, whose segment's variant) has it too: ``also_in`` are the labels that have the template in
    the same locale. Without ``uses``, or when no policy can take it: no facts."""
    if uses is None:
        return [(None, [])]
    elsewhere = set(also_in)
    grouped: dict[str, tuple[Consequences, list[str]]] = {}
    for segment, policy in _users(label, uses):
        if template not in sendable_templates(policy) or _always_before(label, segment, policy) & elsewhere:
            continue
        _, segments = grouped.setdefault(policy.consequences.model_dump_json(), (policy.consequences, []))
        if segment not in segments:
            segments.append(segment)
    return [(facts, segments) for facts, segments in grouped.values()] or [(None, [])]


def _always_before(label: Label, segment: str, policy: ContactPolicy) -> set[str]:
    """The labels that come before ``label`` in the chain of every account of ``segment`` on ``policy``,
    whatever its region."""
    if label.kind == "variants":
        return set()
    before = {f"variants/{policy.template_variant}"} if policy.template_variant else set()
    if label.kind == "default":
        before.add(f"segments/{segment}")
    return before


def variant_problems(labels: Collection[str], uses: PolicyUses, *, what: str = "templates") -> list[str]:
    """A sentence for each variant of a segment that has no policy, and for each ``template_variant`` a
    policy names that has no ``what`` at all."""
    problems: list[str] = []
    for text in sorted(labels):
        label = parse_label(text)
        if label is not None and label.segment is not None and label.segment not in uses:
            known = ", ".join(sorted(uses))
            problems.append(
                f"variant {text} names segment {label.segment!r}, which has no policy (known: {known})"
            )
    named: dict[str, list[str]] = {}
    for segment, policies in uses.items():
        for policy in policies:
            name = policy.template_variant
            if name is not None and segment not in named.get(name, []):
                named.setdefault(name, []).append(segment)
    for name, segments in sorted(named.items()):
        if f"variants/{name}" not in labels:
            problems.append(
                f"template_variant {name!r} (segment(s) {', '.join(segments)}) has no {what} "
                f"(variants/{name})"
            )
    return problems

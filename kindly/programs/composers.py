"""What composes every message a worker sends, built and checked before anything is sent: Kindly's own
templates for free-text gateways, or a mainland provider's registered templates.

The check runs against the policies in use by segment (``PolicyUses``: the worker's policy file and its
running experiments' arms), so that every template and variant is checked with the consequences of being
overdue that the policies able to take it declare, and every variant against the segments and named
variants it serves (``kindly.domain.messages.template_check``, ``registered_check``)."""

from __future__ import annotations

from collections.abc import Iterable

from activities.composition import FreeTextComposer, MessageComposer, RegisteredComposer
from kindly.domain.messages.registered import ProviderName, load_registered_templates
from kindly.domain.messages.registered_check import (
    REGISTERED_DEMO_FILE,
    checked_provider_templates,
    deployment_sample,
)
from kindly.domain.messages.rendering import MessageRenderer, build_template_environment
from kindly.domain.messages.variants import PolicyUses
from kindly.domain.policy.model import ContactPolicy, load_policies
from kindly.domain.policy.sendable import sendable_in
from kindly.errors import ConfigurationError
from kindly.settings import Settings

__all__ = ["checked_composer", "checked_renderer", "file_policy_uses"]


def file_policy_uses(settings: Settings) -> PolicyUses:
    """The settings' policy file's policies, one per segment: what is in use without experiments."""
    return {segment: [policy] for segment, policy in load_policies(settings.policy_file).items()}


def checked_composer(
    settings: Settings,
    *,
    policies: Iterable[ContactPolicy] | None = None,
    uses: PolicyUses | None = None,
) -> MessageComposer:
    """What composes every message, after the start-up check of what it sends.

    ``uses`` are the policies in use by segment (the worker's with its running experiments' arms; by
    default the settings' policy file's): every template variant is checked with the consequence facts
    of the policies that can take it, and against their segments and named variants. Free-text gateways
    get Kindly's own templates (``checked_renderer``). Alibaba Cloud and Tencent Cloud get the provider's
    registered templates from ``registered_templates_file``, checked against ``policies`` (by default
    those of ``uses``): every template they can send registered in each locale the provider registers,
    each registered text through the content check, each parameter within the provider's limit
    (``kindly.domain.messages.registered_check``). A failure raises ``ConfigurationError`` listing every
    template, locale and problem, before anything is sent."""
    if uses is None:
        uses = file_policy_uses(settings)
    provider = settings.sms_provider
    if provider == "aliyun" or provider == "tencent":
        return _registered_composer(settings, provider, policies, uses)
    return FreeTextComposer(checked_renderer(settings, uses=uses))


def _registered_composer(
    settings: Settings, provider: ProviderName, policies: Iterable[ContactPolicy] | None, uses: PolicyUses
) -> RegisteredComposer:
    path = settings.registered_templates_file
    if path is None:
        raise ConfigurationError(
            f"COLLECTIONS_SMS_PROVIDER={provider} sends the templates registered with the provider: set "
            f"COLLECTIONS_REGISTERED_TEMPLATES_FILE to their file (the demo's is {REGISTERED_DEMO_FILE}; "
            "docs/mainland-sms.md)"
        )
    if policies is None:
        policies = [policy for in_segment in uses.values() for policy in in_segment]
    sample = deployment_sample(
        hotline=settings.hotline,
        brand=settings.brand_name,
        channels=settings.repayment_channels,
        public_base_url=settings.public_base_url,
    )
    templates = checked_provider_templates(
        provider,
        load_registered_templates(path),
        sendable=sendable_in(policies),
        sample=sample,
        public_base_url=settings.public_base_url,
        max_segments=settings.max_sms_segments,
        source=str(path),
        uses=uses,
    )
    return RegisteredComposer(
        provider,
        templates,
        brand=settings.brand_name,
        hotline=settings.hotline,
        channels=list(settings.repayment_channels),
    )


def checked_renderer(settings: Settings, *, uses: PolicyUses | None = None) -> MessageRenderer:
    """The renderer of every message, after every template and variant passed the content check with the
    settings' brand, hotline, channels and self-service links, and with the consequence facts of the
    policies in ``uses`` that can take it (by default the settings' policy file's): a failing template
    (or a ``public_base_url`` too long for a template to carry) raises ``ConfigurationError`` naming it,
    before anything is sent."""
    if uses is None:
        uses = file_policy_uses(settings)
    renderer = MessageRenderer(
        build_template_environment(settings.template_dir),
        brand=settings.brand_name,
        hotline=settings.hotline,
        repayment_channels=settings.repayment_channels,
    )
    renderer.check_all(
        max_segments=settings.max_sms_segments, public_base_url=settings.public_base_url, uses=uses
    )
    return renderer

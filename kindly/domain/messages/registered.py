"""Templates as a mainland provider registered them: Alibaba Cloud SMS and Tencent Cloud SMS send a
template code and its parameters, never free text, and prepend the lender's approved signature (签名).

A registered templates file (JSON) maps each Kindly template, per provider and locale, to what the
provider approved: its code, its text with the provider's placeholders, and which of Kindly's values
fills each placeholder. Alibaba Cloud names its placeholders (``${amount}``); Tencent Cloud numbers them
(``{1}``, ``{2}``, ...). Either way ``params`` maps each placeholder to a ``Param``::

    {"aliyun": {"sign_name": "金融助手", "max_param_length": 35,
                "templates": {"pre_due": {"zh-CN": {
                    "code": "SMS_400100001",
                    "text": "您的借款（编号${ref}）应还${amount}，将于${due}到期。客服${hotline}。回复TD退订",
                    "params": {"ref": "reference", "amount": "amount", "due": "due_date",
                               "hotline": "hotline"}}}}}}

A provider may also register other wordings of a template, by variant label (``variants``: ``segments/
gentle``, ``regions/GD/standard``, ``variants/formal``, each with templates shaped as ``templates``): a
message takes the first its variant chain finds registered (``kindly.domain.messages.variants``), else
``templates``, as Kindly's own templates fall back.

The same values fill the placeholders for the provider and for the content check, which checks the text
the customer will read: the signature in 【】 and the registered text with its parameters filled in
(``registered_body``). Pure: no I/O but reading the file in ``load_registered_templates``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kindly.domain.contract import Locale, TemplateName
from kindly.domain.messages.context import MessageContext, VariantKey
from kindly.domain.messages.formatting import format_date, format_money
from kindly.domain.messages.links import LINK_PATH
from kindly.domain.messages.variants import DEFAULT_VARIANT, LABEL_FORMS, parse_label, variant_chain
from kindly.domain.validation import describe_validation_error
from kindly.errors import ConfigurationError

ProviderName = Literal["aliyun", "tencent"]
TEMPLATE_PROVIDERS: tuple[ProviderName, ...] = ("aliyun", "tencent")

_NAMED = re.compile(r"\$\{([A-Za-z][A-Za-z0-9_]*)\}")
"""Alibaba Cloud's placeholders: ``${name}``."""
_NUMBERED = re.compile(r"\{([1-9][0-9]*)\}")
"""Tencent Cloud's placeholders: ``{1}``, ``{2}``..."""
_STRAY = re.compile(r"\$?\{[^{}]*\}")
"""What looks like a placeholder once a provider's own are taken out: the other provider's, or a typo."""


class Param(StrEnum):
    """The values a registered template's placeholders may take: those Kindly's own templates show."""

    AMOUNT = "amount"
    DUE_DATE = "due_date"
    REFERENCE = "reference"
    """The masked loan reference."""
    DAYS_PAST_DUE = "days_past_due"
    PROMISE_DATE = "promise_date"
    HOTLINE = "hotline"
    BRAND = "brand"
    CHANNELS = "channels"
    """The repayment channels, joined by ``；`` (zh-CN) or ``; ``."""
    LINK = "link"
    """The whole self-service link."""
    LINK_TOKEN = "link_token"
    """Only the link's token: the text registers ``https://pay.lender.example/p/`` itself, as providers
    that cap a parameter's length (or refuse links in parameters) require."""
    INSTALMENT_NUMBER = "instalment_number"
    INSTALMENT_COUNT = "instalment_count"
    INSTALMENT_AMOUNT = "instalment_amount"
    INSTALMENT_DUE = "instalment_due"


class RegisteredTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(min_length=1, max_length=64)
    """Alibaba Cloud's ``TemplateCode`` (``SMS_...``) or Tencent Cloud's ``TemplateId``."""
    text: str = Field(min_length=1, max_length=500)
    """The text as registered, without the signature."""
    params: dict[str, Param] = Field(default_factory=dict)
    """Each placeholder of ``text`` and the value that fills it."""


class ProviderTemplates(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sign_name: str = Field(min_length=2, max_length=20)
    """The approved signature (签名) the provider prepends in 【】."""
    max_param_length: int = Field(default=35, ge=1, le=500)
    """The provider's longest parameter value, in characters."""
    templates: dict[TemplateName, dict[Locale, RegisteredTemplate]] = Field(default_factory=dict)
    variants: dict[str, dict[TemplateName, dict[Locale, RegisteredTemplate]]] = Field(default_factory=dict)
    """Other wordings, by variant label; each template need not be in every variant (``templates`` is the
    fallback)."""

    @field_validator("variants")
    @classmethod
    def _labels(
        cls, variants: dict[str, dict[TemplateName, dict[Locale, RegisteredTemplate]]]
    ) -> dict[str, dict[TemplateName, dict[Locale, RegisteredTemplate]]]:
        for label in variants:
            parsed = parse_label(label)
            if parsed is None or parsed.kind == "default":
                raise ValueError(f"{label!r} is not a variant label ({LABEL_FORMS})")
        return variants

    def by_label(self) -> dict[str, dict[TemplateName, dict[Locale, RegisteredTemplate]]]:
        """Every registered wording by variant label, the default (``templates``) first."""
        return {DEFAULT_VARIANT: self.templates, **self.variants}

    def lookup(
        self, template: TemplateName, locale: str, key: VariantKey | None
    ) -> tuple[str, RegisteredTemplate] | None:
        """The registered template a message takes, and its variant's label: the first of the variant
        chain that registers ``template`` in ``locale``; None when not even the default does."""
        by_label = self.by_label()
        for label in variant_chain(key):
            by_locale = by_label.get(label, {}).get(template, {})
            found = next((registered for name, registered in by_locale.items() if name == locale), None)
            if found is not None:
                return label, found
        return None


class RegisteredTemplates(BaseModel):
    """The whole file: each provider's signature and templates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    aliyun: ProviderTemplates | None = None
    tencent: ProviderTemplates | None = None

    @model_validator(mode="after")
    def _placeholders(self) -> RegisteredTemplates:
        for provider in TEMPLATE_PROVIDERS:
            templates = self.for_provider(provider)
            if templates is None:
                continue
            for label, by_template in templates.by_label().items():
                where = "templates" if label == DEFAULT_VARIANT else f"variants.{label}"
                for template, locales in by_template.items():
                    for locale, registered in locales.items():
                        problem = placeholder_problem(provider, registered)
                        if problem:
                            raise ValueError(f"{provider}.{where}.{template}.{locale}: {problem}")
        return self

    def for_provider(self, provider: ProviderName) -> ProviderTemplates | None:
        return self.aliyun if provider == "aliyun" else self.tencent


def placeholders(provider: ProviderName, text: str) -> list[str]:
    """The placeholders of ``text`` in the provider's syntax, in order of appearance."""
    pattern = _NAMED if provider == "aliyun" else _NUMBERED
    return [match.group(1) for match in pattern.finditer(text)]


def placeholder_problem(provider: ProviderName, registered: RegisteredTemplate) -> str | None:
    """What is wrong between a text's placeholders and its ``params``, or None."""
    found = placeholders(provider, registered.text)
    stray = _STRAY.findall((_NAMED if provider == "aliyun" else _NUMBERED).sub("", registered.text))
    if stray:
        syntax = "${name}" if provider == "aliyun" else "{1}, {2}, ..."
        return f"text has {', '.join(stray)}, which is not {provider}'s placeholder syntax ({syntax})"
    missing = [name for name in found if name not in registered.params]
    if missing:
        return f"text has placeholder(s) {', '.join(missing)} without a value in params"
    unused = [name for name in registered.params if name not in found]
    if unused:
        return f"params {', '.join(unused)} do not appear in the text"
    if provider == "tencent":
        numbers = sorted({int(name) for name in found})
        if numbers != list(range(1, len(numbers) + 1)):
            return "Tencent Cloud's placeholders must be numbered {1}, {2}, ... without gaps"
    return None


def load_registered_templates(path: Path) -> RegisteredTemplates:
    """The file, checked; ``ConfigurationError`` names the file and the field."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigurationError(f"registered templates {path}: {err}") from err
    try:
        return RegisteredTemplates.model_validate(raw)
    except ValidationError as err:
        why = describe_validation_error(err).removeprefix("payload: ")
        raise ConfigurationError(f"registered templates {path}: {why}") from None


def parameter_values(
    registered: RegisteredTemplate,
    context: MessageContext,
    locale: str,
    *,
    brand: str,
    hotline: str,
    channels: Sequence[str],
) -> dict[str, str]:
    """Each placeholder's value for this message, in the order of ``params``: what the provider is sent."""
    values = _values(context, locale, brand=brand, hotline=hotline, channels=channels)
    return {name: values[param] for name, param in registered.params.items()}


def registered_body(
    provider: ProviderName, sign_name: str, registered: RegisteredTemplate, values: Mapping[str, str]
) -> str:
    """The message the customer reads: the signature in 【】 and the text with its values filled in."""
    pattern = _NAMED if provider == "aliyun" else _NUMBERED
    text = pattern.sub(lambda match: values.get(match.group(1), match.group(0)), registered.text)
    return f"【{sign_name}】{text}"


def _values(
    context: MessageContext, locale: str, *, brand: str, hotline: str, channels: Sequence[str]
) -> dict[Param, str]:
    instalment = context.instalment
    link = context.link or ""
    return {
        Param.AMOUNT: format_money(context.amount_due, context.currency, locale),
        Param.DUE_DATE: format_date(context.due_date, locale),
        Param.REFERENCE: context.reference_masked,
        Param.DAYS_PAST_DUE: str(context.days_past_due),
        Param.PROMISE_DATE: "" if context.promise_date is None else format_date(context.promise_date, locale),
        Param.HOTLINE: hotline,
        Param.BRAND: brand,
        Param.CHANNELS: ("；" if locale == "zh-CN" else "; ").join(channels),
        Param.LINK: link,
        Param.LINK_TOKEN: link.rsplit(LINK_PATH, 1)[-1] if LINK_PATH in link else "",
        Param.INSTALMENT_NUMBER: "" if instalment is None else str(instalment.number),
        Param.INSTALMENT_COUNT: "" if instalment is None else str(instalment.count),
        Param.INSTALMENT_AMOUNT: ""
        if instalment is None
        else format_money(instalment.amount, context.currency, locale),
        Param.INSTALMENT_DUE: "" if instalment is None else format_date(instalment.due, locale),
    }

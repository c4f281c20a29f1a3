"""``kindly templates export``: what a lender submits to Alibaba Cloud SMS or Tencent Cloud SMS for approval,
from its registered templates file (``kindly.domain.messages.registered``): the signature, and for each
template and locale (and each registered variant) the text to register, its type, each placeholder with
its meaning and a sample value, the message as a customer reads it, and the application note (申请说明)
saying when it is sent.

The file is then checked as the worker checks it at start-up (``registered_check``), against the policies
of the settings' policy file: a file the worker would refuse is still printed, its problems listed on
standard error, and the command exits 1."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from kindly.domain.contract import SUPPORTED_LOCALES, Locale, TemplateName
from kindly.domain.messages.content_check import SampleValues, carries_link
from kindly.domain.messages.registered import (
    Param,
    ProviderName,
    ProviderTemplates,
    RegisteredTemplate,
    RegisteredTemplates,
    load_registered_templates,
    parameter_values,
    registered_body,
)
from kindly.domain.messages.registered_check import (
    REGISTERED_DEMO_FILE,
    checked_provider_templates,
    deployment_sample,
    placeholder_text,
)
from kindly.domain.messages.variants import DEFAULT_VARIANT
from kindly.domain.policy.model import load_policies
from kindly.domain.policy.sendable import sendable_in
from kindly.errors import ConfigurationError
from kindly.programs.cli_support import EXIT_INCOMPLETE, EXIT_USAGE, err, fail, load_settings, out
from kindly.settings import Settings

templates = typer.Typer(
    help="The templates a mainland SMS provider must approve (docs/mainland-sms.md).", no_args_is_help=True
)


class Provider(StrEnum):
    ALIYUN = "aliyun"
    TENCENT = "tencent"


TEMPLATE_TYPE: dict[ProviderName, str] = {
    "aliyun": "notification (通知短信, TemplateType 1), not promotion (推广短信)",
    "tencent": "regular (普通短信, SmsType 0: a notification), not marketing (营销短信)",
}
"""What every Kindly message is registered as: a notice about the customer's own loan, never marketing."""

MEANINGS: dict[Param, str] = {
    Param.AMOUNT: "amount due, with its currency (金额)",
    Param.DUE_DATE: "due date (时间)",
    Param.REFERENCE: "loan reference, masked to its last 4 characters (其他号码)",
    Param.DAYS_PAST_DUE: "days past due (其他号码, digits)",
    Param.PROMISE_DATE: "date the customer promised to pay by (时间)",
    Param.HOTLINE: "customer-service hotline (电话号码)",
    Param.BRAND: "lender's brand (其他)",
    Param.CHANNELS: "repayment channels (其他)",
    Param.LINK: "the customer's self-service link (链接)",
    Param.LINK_TOKEN: "token of the customer's self-service page, after the link's fixed part (其他号码)",
    Param.INSTALMENT_NUMBER: "which instalment of the plan (其他号码, digits)",
    Param.INSTALMENT_COUNT: "instalments in the plan (其他号码, digits)",
    Param.INSTALMENT_AMOUNT: "instalment's amount, with its currency (金额)",
    Param.INSTALMENT_DUE: "instalment's due date (时间)",
}

_BORROWERS = "仅发送给本公司的借款客户，告知其本人借款的还款信息，不含营销内容。"
NOTES: dict[TemplateName, str] = {
    TemplateName.PRE_DUE: "借款到期日前（默认提前7天）发送的还款提醒。",
    TemplateName.DUE_TODAY: "借款到期当日发送的还款提醒。",
    TemplateName.FIRST_OVERDUE: "借款逾期后（默认逾期1天）首次发送的还款提醒。",
    TemplateName.FOLLOW_UP: "借款逾期后定期（默认每7天一次）发送的还款提醒。",
    TemplateName.BROKEN_PROMISE: "客户承诺还款的日期已过仍未收到还款时发送的提醒。",
    TemplateName.GENTLE_REMINDER: "对信用记录良好的客户，在逾期后发送的语气温和的还款提醒。",
    TemplateName.INSTALMENT_OFFER: "逾期数周后（默认21天）发送一次，告知客户可协商分期还款。",
    TemplateName.INSTALMENT_DUE: "客户选择分期还款后，每期到期前一日发送的还款提醒。",
    TemplateName.PLAN_BROKEN: "分期还款的某期逾期未还、分期终止时发送的通知。",
    TemplateName.HELP: "客户回复HELP或“帮助”时发送的回复，告知客服电话与退订方式。",
    TemplateName.OPT_OUT_CONFIRMATION: "客户回复TD或“退订”后发送一次的退订确认，此后不再发送短信。",
}
"""The application note (申请说明) of each template: when it is sent, in the reviewers' language."""


@templates.command("export")
def export(
    provider: Annotated[
        Provider, typer.Option(help="aliyun (Alibaba Cloud SMS) or tencent (Tencent Cloud SMS).")
    ],
    file: Annotated[
        Path | None,
        typer.Option(help="The registered templates file; default: the settings' or the demo's."),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print what to submit for approval: the signature, and each template's text, type, placeholders
    with a sample value each, example message and application note. A bad file exits 2 naming the
    field; a file the worker would refuse is printed, its problems listed, and exits 1."""
    name: ProviderName = "aliyun" if provider is Provider.ALIYUN else "tencent"
    settings = load_settings()
    path = file or settings.registered_templates_file or REGISTERED_DEMO_FILE
    try:
        registered = load_registered_templates(path)
    except ConfigurationError as error:
        fail(str(error), EXIT_USAGE)
    found = registered.for_provider(name)
    if found is None:
        fail(f"registered templates {path}: no {name} section (its sign_name and templates)", EXIT_USAGE)
    application = exported(name, found, _sample(settings))
    if json_output:
        out.print_json(json.dumps(application, ensure_ascii=False))
    else:
        _show(application)
    problems = _worker_refusal(name, registered, settings, path)
    if problems:
        err.print(f"warning: the worker would refuse this file: {problems}", highlight=False, markup=False)
        raise typer.Exit(EXIT_INCOMPLETE)


def exported(provider: ProviderName, found: ProviderTemplates, sample: SampleValues) -> dict[str, Any]:
    """The application as data: the signature, the type every template takes, and each template."""
    entries: list[dict[str, Any]] = []
    for label, by_template in found.by_label().items():
        for template in TemplateName:
            for locale in SUPPORTED_LOCALES:
                registered = _registered(by_template, template, locale)
                if registered is not None:
                    entry = _entry(provider, found, template, locale, registered, sample)
                    entries.append({**entry, "variant": label})
    return {
        "provider": provider,
        "sign_name": found.sign_name,
        "template_type": TEMPLATE_TYPE[provider],
        "max_param_length": found.max_param_length,
        "templates": entries,
    }


def _registered(
    found: dict[TemplateName, dict[Locale, RegisteredTemplate]], template: TemplateName, locale: str
) -> RegisteredTemplate | None:
    for registered_locale, registered in found.get(template, {}).items():
        if registered_locale == locale:
            return registered
    return None


def _entry(
    provider: ProviderName,
    found: ProviderTemplates,
    template: TemplateName,
    locale: str,
    registered: RegisteredTemplate,
    sample: SampleValues,
) -> dict[str, Any]:
    context = sample.context(with_promise=True, with_link=carries_link(template))
    values = parameter_values(
        registered, context, locale, brand=sample.brand, hotline=sample.hotline, channels=sample.channels
    )
    return {
        "template": str(template),
        "locale": locale,
        "code": registered.code,
        "text": registered.text,
        "placeholders": [
            {
                "placeholder": placeholder_text(provider, name),
                "value": str(param),
                "meaning": MEANINGS[param],
                "sample": values[name],
            }
            for name, param in registered.params.items()
        ],
        "example": registered_body(provider, found.sign_name, registered, values),
        "application_note": NOTES[template] + _BORROWERS,
    }


def _show(application: dict[str, Any]) -> None:
    def line(text: str) -> None:
        out.print(text, highlight=False, markup=False)

    line(f"signature (签名): {application['sign_name']}")
    line(f"template type (模板类型): {application['template_type']}")
    line(f"longest parameter value: {application['max_param_length']} characters")
    for entry in application["templates"]:
        line("")
        variant = "" if entry["variant"] == DEFAULT_VARIANT else f", variant {entry['variant']}"
        line(f"== {entry['template']} ({entry['locale']}){variant}, registered as {entry['code']}")
        line(f"text (模板内容): {entry['text']}")
        for placeholder in entry["placeholders"]:
            line(
                f"  {placeholder['placeholder']}: {placeholder['meaning']}; Kindly's {placeholder['value']}, "
                f"e.g. {placeholder['sample']}"
            )
        line(f"example (示例): {entry['example']}")
        line(f"application note (申请说明): {entry['application_note']}")


def _sample(settings: Settings) -> SampleValues:
    """The worker's sample account: the deployment's hotline, channels and link, large amounts and days."""
    return deployment_sample(
        hotline=settings.hotline,
        brand=settings.brand_name,
        channels=settings.repayment_channels,
        public_base_url=settings.public_base_url,
    )


def _worker_refusal(
    provider: ProviderName, registered: RegisteredTemplates, settings: Settings, path: Path
) -> str | None:
    """Why the worker would refuse the file at start-up, or None."""
    try:
        policies = load_policies(settings.policy_file)
        checked_provider_templates(
            provider,
            registered,
            sendable=sendable_in(policies.values()),
            sample=_sample(settings),
            public_base_url=settings.public_base_url,
            max_segments=settings.max_sms_segments,
            source=str(path),
            uses={segment: [policy] for segment, policy in policies.items()},
        )
    except ConfigurationError as error:
        return str(error)
    return None

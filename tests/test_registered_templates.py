"""Registered templates for the mainland providers: the shipped demo file, the worker's start-up check of a
lender's file (complete for what the policies can send, compliant, within the provider's limits), the
model's placeholder rules, which templates a policy can send, and ``kindly templates export``."""

from __future__ import annotations

import copy
import json
import os
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
from temporalio.client import Client
from typer.testing import CliRunner

from activities.composition import RegisteredComposer
from kindly.domain.contract import TemplateName
from kindly.domain.experiments import Arm, ExperimentDefinition, PolicyOverlay
from kindly.domain.messages.content_check import carries_link
from kindly.domain.messages.context import MessageContext
from kindly.domain.messages.registered import ProviderName, RegisteredTemplates, load_registered_templates
from kindly.domain.messages.registered_check import (
    REGISTERED_DEMO_FILE,
    checked_provider_templates,
    deployment_sample,
    registered_locales,
)
from kindly.domain.policy.model import BUILT_IN_POLICIES, ContactPolicy
from kindly.domain.policy.sendable import ALWAYS_SENDABLE, arm_policies, sendable_in, sendable_templates
from kindly.domain.policy.tones import choose_template
from kindly.errors import ConfigurationError
from kindly.programs.cli import app
from kindly.programs.composers import checked_composer
from kindly.programs.worker import build_worker
from kindly.settings import Settings
from tests.conftest import ENCRYPTION_SETTINGS

PROVIDERS: tuple[ProviderName, ...] = ("aliyun", "tencent")


def demo() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(REGISTERED_DEMO_FILE.read_text(encoding="utf-8"))
    return data


def written(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "registered.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def provider_settings(provider: ProviderName, path: Path | None, **overrides: Any) -> Settings:
    return Settings(
        _env_file=None,
        sms_provider=provider,
        registered_templates_file=path,
        **{**ENCRYPTION_SETTINGS, **overrides},
    )


def refusal(provider: ProviderName, path: Path, **overrides: Any) -> str:
    """The worker's start-up refusal of the file, as one message."""
    with pytest.raises(ConfigurationError) as raised:
        checked_composer(provider_settings(provider, path, **overrides))
    return str(raised.value)


# --- the demo file ---------------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_demo_file_registers_every_template_in_both_locales_and_passes_every_check(
    provider: ProviderName,
) -> None:
    registered = load_registered_templates(REGISTERED_DEMO_FILE)
    templates = registered.for_provider(provider)
    assert templates is not None
    assert set(templates.templates) == set(TemplateName)
    assert registered_locales(templates) == ["zh-CN", "en-US"]
    assert all(set(locales) == {"zh-CN", "en-US"} for locales in templates.templates.values())
    settings = provider_settings(provider, REGISTERED_DEMO_FILE)
    checked_provider_templates(
        provider,
        registered,
        sendable=set(TemplateName),
        sample=deployment_sample(
            hotline=settings.hotline,
            brand=settings.brand_name,
            channels=settings.repayment_channels,
            public_base_url=settings.public_base_url,
        ),
        public_base_url=settings.public_base_url,
        max_segments=settings.max_sms_segments,
    )
    composer = checked_composer(settings)
    assert isinstance(composer, RegisteredComposer) and composer.provider == provider


@pytest.mark.parametrize("provider", PROVIDERS)
def test_the_demo_composes_a_reminder_as_the_customer_reads_it(provider: ProviderName) -> None:
    composer = checked_composer(provider_settings(provider, REGISTERED_DEMO_FILE))
    context = MessageContext(
        amount_due=Decimal("1500.00"),
        currency="CNY",
        due_date=date(2026, 12, 15),
        reference_masked="****0042",
        days_past_due=9,
        link="http://127.0.0.1:8000/p/Xb3kQ9rT2mVw7LpN4sYc8A",
    )
    composed = composer.compose(TemplateName.FOLLOW_UP, "zh-CN", context)
    assert composed.template_code is not None and composed.params is not None
    assert composed.body.startswith("【Kindly金融】尊敬的客户，您的借款（编号****0042）应还1,500.00元")
    assert "逾期9天" in composed.body and composed.body.endswith("/p/Xb3kQ9rT2mVw7LpN4sYc8A")
    assert "Xb3kQ9rT2mVw7LpN4sYc8A" in composed.params.values()
    assert "400-800-1234" in composed.params.values()


# --- complete for what the policies can send ---------------------------------------------------------


def test_a_template_without_a_mapping_stops_the_worker_naming_the_template_and_the_locale(
    tmp_path: Path,
) -> None:
    data = demo()
    del data["aliyun"]["templates"]["follow_up"]["zh-CN"]
    path = written(tmp_path, data)
    assert "aliyun has no template for follow_up in zh-CN" in refusal("aliyun", path)


async def test_build_worker_refuses_to_start_without_the_mapping(tmp_path: Path) -> None:
    data = demo()
    del data["tencent"]["templates"]["help"]
    settings = provider_settings(
        "tencent", written(tmp_path, data), database_url=f"sqlite:///{tmp_path / 'kindly.db'}"
    )
    with pytest.raises(ConfigurationError, match="tencent has no template for help in zh-CN"):
        async with build_worker(cast(Client, None), settings):
            pytest.fail("the worker must not start")


def test_a_lender_serving_one_locale_registers_only_that_locale(tmp_path: Path) -> None:
    data = demo()
    for locales in data["aliyun"]["templates"].values():
        del locales["en-US"]
    checked_composer(provider_settings("aliyun", written(tmp_path, data)))
    # Once it registers one template in a locale, every template the policies can send is needed there.
    data["aliyun"]["templates"]["pre_due"]["en-US"] = demo()["aliyun"]["templates"]["pre_due"]["en-US"]
    message = refusal("aliyun", written(tmp_path, data))
    assert "aliyun has no template for due_today in en-US" in message
    assert "aliyun has no template for help in en-US" in message
    assert "in zh-CN" not in message


def test_only_what_the_policies_can_send_must_be_registered(tmp_path: Path) -> None:
    data = demo()
    for template in ("gentle_reminder", "instalment_offer"):
        del data["aliyun"]["templates"][template]
    path = written(tmp_path, data)
    # The built-in segments include a gentle one, and the standard one offers instalments.
    message = refusal("aliyun", path)
    assert "aliyun has no template for gentle_reminder in zh-CN" in message
    assert "aliyun has no template for instalment_offer in en-US" in message
    policies = [ContactPolicy(instalment_offer_after_days=None)]
    checked_composer(provider_settings("aliyun", path), policies=policies)


def test_a_mainland_provider_needs_its_file_and_its_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="COLLECTIONS_REGISTERED_TEMPLATES_FILE"):
        checked_composer(provider_settings("aliyun", None))
    data = demo()
    del data["tencent"]
    assert "no tencent section" in refusal("tencent", written(tmp_path, data))


# --- compliant and within the provider's limits --------------------------------------------------------


def test_a_registered_text_without_the_hotline_fails_naming_it(tmp_path: Path) -> None:
    data = demo()
    pre_due = data["aliyun"]["templates"]["pre_due"]["zh-CN"]
    pre_due["text"] = pre_due["text"].replace("如有疑问请致电${hotline}。", "")
    del pre_due["params"]["hotline"]
    message = refusal("aliyun", written(tmp_path, data))
    where = "template pre_due for locale zh-CN (aliyun SMS_400100001)"
    assert f"{where}: missing the hotline (expected '400-800-1234')" in message
    assert "1 problem(s)" in message


def test_a_registered_text_with_a_banned_word_fails_naming_it(tmp_path: Path) -> None:
    data = demo()
    follow_up = data["tencent"]["templates"]["follow_up"]["en-US"]
    follow_up["text"] = follow_up["text"].replace("we will help.", "or we sue.")
    message = refusal("tencent", written(tmp_path, data))
    where = "template follow_up for locale en-US (tencent 2400024)"
    assert f"{where}: contains banned word 'sue' (threat)" in message


def test_every_failure_is_listed(tmp_path: Path) -> None:
    data = demo()
    for locale in ("zh-CN", "en-US"):
        entry = data["aliyun"]["templates"]["help"][locale]
        entry["text"] = entry["text"].replace("回复TD退订短信提醒。", "").replace("STOP", "stop")
    message = refusal("aliyun", written(tmp_path, data))
    assert "2 problem(s)" in message
    assert "template help for locale zh-CN" in message and "template help for locale en-US" in message
    assert message.count("missing opt-out wording") == 2


def test_a_parameter_over_the_providers_limit_fails_naming_the_placeholder(tmp_path: Path) -> None:
    data = demo()
    data["tencent"]["max_param_length"] = 12
    message = refusal("tencent", written(tmp_path, data))
    where = "template pre_due for locale en-US (tencent 2400021)"
    assert (
        f"{where}: placeholder {{1}} (amount) would be 14 characters ('CNY 123,456.78'), "
        "more than tencent's max_param_length of 12"
    ) in message
    assert "placeholder {5} (link_token) would be 22 characters" in message
    # The repayment channels joined are too long for one parameter: the demo registers them as text.
    data = demo()
    entry = data["aliyun"]["templates"]["pre_due"]["zh-CN"]
    channels = "App内“我的-借款-还款”，或银行转账至6222-0000-0000-0001"
    entry["text"] = entry["text"].replace(channels, "${channels}")
    entry["params"]["channels"] = "channels"
    message = refusal("aliyun", written(tmp_path, data))
    assert "placeholder ${channels} (channels) would be 60 characters" in message


def test_a_parameter_that_would_be_empty_is_refused(tmp_path: Path) -> None:
    data = demo()
    entry = data["aliyun"]["templates"]["broken_promise"]["zh-CN"]
    entry["text"] = entry["text"].replace("您承诺支付", "您承诺于${promise}支付")
    entry["params"]["promise"] = "promise_date"
    message = refusal("aliyun", written(tmp_path, data))
    assert "placeholder ${promise} (promise_date) would be sent empty, which aliyun refuses" in message
    assert "(without a promise date)" in message


def test_the_registered_link_must_be_the_deployments_own(tmp_path: Path) -> None:
    message = refusal("aliyun", REGISTERED_DEMO_FILE, public_base_url="https://pay.lender.example")
    assert "placeholder ${token} (link_token) must follow 'https://pay.lender.example/p/'" in message
    assert "missing the self-service link (expected 'https://pay.lender.example/p/AAAA" in message


# --- the model's placeholder rules ---------------------------------------------------------------------


def test_placeholders_and_params_must_match_naming_the_field(tmp_path: Path) -> None:
    data = demo()
    del data["aliyun"]["templates"]["pre_due"]["zh-CN"]["params"]["amount"]
    with pytest.raises(ConfigurationError) as raised:
        load_registered_templates(written(tmp_path, data))
    assert "aliyun.templates.pre_due.zh-CN: text has placeholder(s) amount without a value in params" in str(
        raised.value
    )
    data = demo()
    data["aliyun"]["templates"]["help"]["en-US"]["params"]["days"] = "days_past_due"
    with pytest.raises(ConfigurationError, match=r"aliyun.templates.help.en-US: params days do not appear"):
        load_registered_templates(written(tmp_path, data))
    data = demo()
    data["tencent"]["templates"]["help"]["zh-CN"]["params"]["1"] = "balance"
    with pytest.raises(ConfigurationError, match=r"tencent.templates.help.zh-CN.params.1"):
        load_registered_templates(written(tmp_path, data))


def test_tencent_placeholders_are_numbered_from_one_without_gaps(tmp_path: Path) -> None:
    data = demo()
    entry = data["tencent"]["templates"]["help"]["zh-CN"]  # {1} reference, {2} amount, {3} hotline
    entry["text"] = entry["text"].replace("{3}", "{4}")
    entry["params"] = {"1": "reference", "2": "amount", "4": "hotline"}
    with pytest.raises(ConfigurationError, match=r"numbered \{1\}, \{2\}, \.\.\. without gaps"):
        load_registered_templates(written(tmp_path, data))
    entry["text"] = entry["text"].replace("{4}", "${hotline}")
    entry["params"] = {"1": "reference", "2": "amount"}
    with pytest.raises(ConfigurationError, match=r"text has \$\{hotline\}, which is not tencent's"):
        load_registered_templates(written(tmp_path, data))
    # Numbered by position: {2} may come before {1}, and one number may appear twice.
    entry["text"] = "尊敬的客户，借款{2}待还{1}，客服{3}，编号{2}。回复TD退订"
    entry["params"] = {"1": "amount", "2": "reference", "3": "hotline"}
    assert isinstance(load_registered_templates(written(tmp_path, data)), RegisteredTemplates)


# --- which templates a policy can send ---------------------------------------------------------------


def test_what_a_policy_can_send() -> None:
    standard = sendable_templates(BUILT_IN_POLICIES["standard"])
    assert standard == set(TemplateName) - {TemplateName.GENTLE_REMINDER}
    gentle = sendable_templates(BUILT_IN_POLICIES["gentle"])
    assert TemplateName.GENTLE_REMINDER in gentle
    assert not gentle & {TemplateName.FIRST_OVERDUE, TemplateName.FOLLOW_UP}
    bare = sendable_templates(ContactPolicy(pre_due_days=[], instalment_offer_after_days=None))
    assert bare == ALWAYS_SENDABLE | {TemplateName.FIRST_OVERDUE, TemplateName.FOLLOW_UP}
    assert TemplateName.DUE_TODAY not in sendable_templates(ContactPolicy(pre_due_days=[3]))
    assert TemplateName.PRE_DUE not in sendable_templates(ContactPolicy(pre_due_days=[0]))
    assert sendable_in(BUILT_IN_POLICIES.values()) == set(TemplateName)


@pytest.mark.parametrize(
    "policy",
    [
        BUILT_IN_POLICIES["standard"],
        BUILT_IN_POLICIES["gentle"],
        ContactPolicy(tone="gentle", instalment_offer_after_days=None, pre_due_days=[0]),
        ContactPolicy(instalment_offer_after_days=1, pre_due_days=[5]),
    ],
)
def test_every_template_the_tone_chooses_is_sendable(policy: ContactPolicy) -> None:
    """Whatever the schedule plans (``schedule``, ``plan_steps``) and the tone makes of it."""
    planned = {TemplateName.FIRST_OVERDUE, TemplateName.FOLLOW_UP, TemplateName.BROKEN_PROMISE}
    planned |= {TemplateName.PLAN_BROKEN, TemplateName.INSTALMENT_DUE}
    planned |= {TemplateName.PRE_DUE if days else TemplateName.DUE_TODAY for days in policy.pre_due_days}
    sendable = sendable_templates(policy)
    for template in planned:
        for days_past_due in range(0, 60):
            for offered in (False, True):
                chosen = choose_template(
                    template, policy, days_past_due=days_past_due, instalment_offered=offered
                )
                assert chosen in sendable, (template, days_past_due, offered)


def test_an_experiments_arms_send_on_their_own_policies() -> None:
    definition = ExperimentDefinition(
        name="gentler",
        segments=["standard"],
        arms=[
            Arm(name="control", weight=1),
            Arm(name="gentle", weight=1, overlay=PolicyOverlay(tone="gentle")),
            Arm(name="shadow", weight=1, shadow=True, overlay=PolicyOverlay(pre_due_days=[0])),
        ],
        champion="control",
    )
    policies = {"standard": ContactPolicy(instalment_offer_after_days=None)}
    arms = arm_policies([definition], policies)
    assert [policy.tone for policy in arms] == ["standard", "gentle"]
    assert TemplateName.GENTLE_REMINDER in sendable_in([*policies.values(), *arms])


# --- kindly templates export ---------------------------------------------------------------------------


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no developer's .env
    for name in [name for name in os.environ if name.startswith("COLLECTIONS_")]:
        monkeypatch.delenv(name)


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("provider", PROVIDERS)
def test_templates_export_prints_every_template_with_its_placeholders(provider: ProviderName) -> None:
    result = CliRunner().invoke(app, ["templates", "export", "--provider", provider])
    assert result.exit_code == 0, result.output
    registered = demo()[provider]
    assert "signature (签名): Kindly金融" in result.output
    assert "模板类型" in result.output
    for template, locales in registered["templates"].items():
        for locale, entry in locales.items():
            assert f"== {template} ({locale}), registered as {entry['code']}" in result.output
            assert f"text (模板内容): {entry['text']}" in result.output
            for name in entry["params"]:
                placeholder = f"${{{name}}}" if provider == "aliyun" else f"{{{name}}}"
                assert f"  {placeholder}: " in result.output
    assert result.output.count("application note (申请说明): ") == 2 * len(TemplateName)


@pytest.mark.usefixtures("clean_env")
def test_templates_export_as_json_gives_each_placeholder_a_meaning_and_a_sample() -> None:
    result = CliRunner().invoke(app, ["templates", "export", "--provider", "aliyun", "--json"])
    assert result.exit_code == 0, result.output
    exported = json.loads(result.output)
    assert exported["sign_name"] == "Kindly金融" and "通知短信" in exported["template_type"]
    entries = exported["templates"]
    assert len(entries) == 2 * len(TemplateName)
    pre_due = next(e for e in entries if e["template"] == "pre_due" and e["locale"] == "zh-CN")
    amount = next(p for p in pre_due["placeholders"] if p["placeholder"] == "${amount}")
    assert amount["sample"] == "123,456.78元" and "amount due" in amount["meaning"]
    assert pre_due["example"].startswith("【Kindly金融】尊敬的客户")
    assert "到期日前" in pre_due["application_note"]
    for entry in entries:
        has_token = any(p["value"] == "link_token" for p in entry["placeholders"])
        assert has_token == carries_link(TemplateName(entry["template"]))


@pytest.mark.usefixtures("clean_env")
def test_templates_export_of_a_bad_file_exits_2_naming_the_field(tmp_path: Path) -> None:
    data = copy.deepcopy(demo())
    data["aliyun"]["max_param_length"] = 0
    path = written(tmp_path, data)
    result = CliRunner().invoke(app, ["templates", "export", "--provider", "aliyun", "--file", str(path)])
    assert result.exit_code == 2
    assert "aliyun.max_param_length" in result.output


@pytest.mark.usefixtures("clean_env")
def test_templates_export_warns_of_a_file_the_worker_would_refuse(tmp_path: Path) -> None:
    data = demo()
    del data["tencent"]["templates"]["follow_up"]["en-US"]
    path = written(tmp_path, data)
    result = CliRunner().invoke(app, ["templates", "export", "--provider", "tencent", "--file", str(path)])
    assert result.exit_code == 1
    assert "== follow_up (zh-CN)" in result.output
    assert "tencent has no template for follow_up in en-US" in result.output

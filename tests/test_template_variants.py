"""Template variants: a message takes its template's named variant, else its region's and segment's, else
its segment's, else the locale's default; the worker refuses a variant that fails the content check or
does not fit the policies; a real send records the variant it took in the timeline and the audit log, for
a region and for an experiment's arm."""

from __future__ import annotations

import datetime as dt
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.composition import RegisteredComposer
from kindly.domain.contract import AccountInput, TemplateName
from kindly.domain.experiments import DefinitionError, assign, checked_definition
from kindly.domain.messages.context import MessageContext, VariantKey
from kindly.domain.messages.links import sample_link
from kindly.domain.messages.registered import RegisteredTemplates, load_registered_templates
from kindly.domain.messages.registered_check import REGISTERED_DEMO_FILE
from kindly.domain.messages.rendering import MessageRenderer, build_template_environment
from kindly.domain.messages.variants import variant_chain
from kindly.domain.policy.model import load_policies
from kindly.domain.policy.sendable import policies_in_use
from kindly.errors import ConfigurationError
from kindly.programs.composers import checked_composer, checked_renderer
from kindly.programs.portfolio import read_portfolio
from kindly.settings import Settings
from kindly.store import AuditStore, make_engine
from kindly.store.experiments import ExperimentStore
from tests.conftest import ENCRYPTION_SETTINGS, eventually, sms_requests
from tests.http_recorder import RecordingHttpServer
from tests.lifecycle_helpers import days, local_today, make_account, start, status, timeline

PACKAGED = Path(__file__).parent.parent / "kindly/domain/messages/templates"
GREETING = "尊敬的客户，"
MARKS = {
    "segments/gentle": "温馨",
    "regions/GD/gentle": "粤",
    "variants/formal": "正式",
    "regions/GD/plain": "粤",
}


def variant(root: Path, label: str, template: TemplateName, mark: str, locale: str = "zh-CN") -> None:
    """The packaged zh-CN template with ``mark`` after the greeting, as the variant ``label``."""
    text = (PACKAGED / locale / f"{template}.txt.j2").read_text(encoding="utf-8")
    assert GREETING in text
    folder = root / locale / label
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{template}.txt.j2").write_text(text.replace(GREETING, f"{GREETING}{mark}：", 1), "utf-8")


def context(key: VariantKey | None) -> MessageContext:
    return MessageContext(
        amount_due=Decimal("1500.00"),
        currency="CNY",
        due_date=dt.date(2026, 12, 15),
        reference_masked="****4321",
        days_past_due=9,
        link=sample_link("http://127.0.0.1:8000"),
        variant_key=key,
    )


def renderer(root: Path) -> MessageRenderer:
    return MessageRenderer(
        build_template_environment(root), brand="Kindly", hotline="400-800-1234", repayment_channels=["app"]
    )


def policy_file(tmp_path: Path, content: dict[str, Any]) -> Path:
    path = tmp_path / "policies.json"
    path.write_text(json.dumps(content), encoding="utf-8")
    return path


def refusal(settings: Settings) -> str:
    with pytest.raises(ConfigurationError) as refused:
        checked_renderer(settings)
    return str(refused.value)


# --- the chain ------------------------------------------------------------------------------------------


def test_a_message_takes_the_most_specific_variant_that_has_its_template(tmp_path: Path) -> None:
    for label in ("segments/gentle", "regions/GD/gentle", "variants/formal"):
        variant(tmp_path, label, TemplateName.FOLLOW_UP, MARKS[label])
    found = renderer(tmp_path)

    def taken(key: VariantKey | None, template: TemplateName = TemplateName.FOLLOW_UP) -> tuple[str, str]:
        rendered = found.render_variant(template, "zh-CN", context(key))
        mark = next((m for m in MARKS.values() if f"{GREETING}{m}：" in rendered.body), "")
        return rendered.variant, mark

    named = VariantKey(segment="gentle", region="GD", template_variant="formal")
    assert taken(named) == ("variants/formal", "正式")
    assert taken(VariantKey(segment="gentle", region="GD")) == ("regions/GD/gentle", "粤")
    assert taken(VariantKey(segment="gentle", region="SH")) == ("segments/gentle", "温馨")
    assert taken(VariantKey(segment="gentle")) == ("segments/gentle", "温馨")
    assert taken(VariantKey(segment="standard", region="GD")) == ("default", "")
    assert taken(None) == ("default", "")
    # A variant need not have every template: the rest fall back along the chain.
    assert taken(named, TemplateName.PRE_DUE) == ("default", "")
    english = found.render_variant(TemplateName.FOLLOW_UP, "en-US", context(named))
    assert english.variant == "default"
    assert variant_chain(named) == ["variants/formal", "regions/GD/gentle", "segments/gentle", "default"]


def test_a_registered_variant_is_taken_by_the_same_chain() -> None:
    demo: dict[str, Any] = json.loads(REGISTERED_DEMO_FILE.read_text(encoding="utf-8"))
    follow_up = dict(demo["aliyun"]["templates"]["follow_up"]["zh-CN"], code="SMS_499")
    demo["aliyun"]["variants"] = {"regions/GD/standard": {"follow_up": {"zh-CN": follow_up}}}
    templates = RegisteredTemplates.model_validate(demo).aliyun
    assert templates is not None
    composer = RegisteredComposer(
        "aliyun", templates, brand="Kindly", hotline="400-800-1234", channels=["app"]
    )
    in_gd = composer.compose(
        TemplateName.FOLLOW_UP, "zh-CN", context(VariantKey(segment="standard", region="GD"))
    )
    assert (in_gd.variant, in_gd.template_code) == ("regions/GD/standard", "SMS_499")
    elsewhere = composer.compose(TemplateName.FOLLOW_UP, "zh-CN", context(VariantKey(segment="standard")))
    assert (elsewhere.variant, elsewhere.template_code) == ("default", "SMS_400100004")


def test_a_registered_variant_label_must_be_one(tmp_path: Path) -> None:
    demo: dict[str, Any] = json.loads(REGISTERED_DEMO_FILE.read_text(encoding="utf-8"))
    demo["aliyun"]["variants"] = {"segment/standard": {}}
    path = tmp_path / "registered.json"
    path.write_text(json.dumps(demo, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(
        ConfigurationError, match=r"aliyun\.variants: .*'segment/standard' is not a variant label"
    ):
        load_registered_templates(path)


# --- the start-up check --------------------------------------------------------------------------------


def test_good_variants_pass_the_start_up_check(tmp_path: Path) -> None:
    for label in ("segments/gentle", "regions/GD/gentle", "variants/formal"):
        variant(tmp_path / "templates", label, TemplateName.FOLLOW_UP, MARKS[label])
    policies = policy_file(tmp_path, {"gentle": {"template_variant": "formal"}})
    checked_renderer(Settings(_env_file=None, policy_file=policies, template_dir=tmp_path / "templates"))


def test_a_variant_that_fails_the_content_check_stops_the_worker(tmp_path: Path) -> None:
    variant(tmp_path, "segments/gentle", TemplateName.FOLLOW_UP, "否则起诉")
    message = refusal(Settings(_env_file=None, template_dir=tmp_path))
    assert message.startswith("1 message template(s)")
    assert (
        "template follow_up for locale zh-CN (variant segments/gentle): contains banned word '起诉' (threat)"
    ) in message


def test_a_variant_of_a_segment_with_consequences_must_state_them(tmp_path: Path) -> None:
    root = tmp_path / "templates"
    variant(root, "segments/vip", TemplateName.FIRST_OVERDUE, "贵宾")
    text = (root / "zh-CN/segments/vip/first_overdue.txt.j2").read_text(encoding="utf-8")
    (root / "zh-CN/segments/vip/first_overdue.txt.j2").write_text(
        text.replace("{{ consequences }}", ""), "utf-8"
    )
    policies = policy_file(tmp_path, {"vip": {"consequences": {"reports_to_credit_bureau": True}}})
    message = refusal(Settings(_env_file=None, policy_file=policies, template_dir=root))
    assert (
        "template first_overdue for locale zh-CN (variant segments/vip) (segment(s) vip: reports to the "
        "credit bureau): missing the consequence the policy declares"
    ) in message
    # The default first_overdue is not held to vip's facts: vip never takes it.
    assert "template first_overdue for locale zh-CN (segment" not in message


def test_variants_that_do_not_fit_the_policies_stop_the_worker(tmp_path: Path) -> None:
    root = tmp_path / "templates"
    variant(root, "segments/vip", TemplateName.FOLLOW_UP, "贵宾")
    variant(root, "regions/gd/gentle", TemplateName.FOLLOW_UP, "粤")
    (root / "zh-CN/segments/gentle").mkdir(parents=True)
    (root / "zh-CN/segments/gentle/folow_up.txt.j2").write_text("{{ brand }}", "utf-8")
    policies = policy_file(tmp_path, {"standard": {"template_variant": "formal"}})
    message = refusal(Settings(_env_file=None, policy_file=policies, template_dir=root))
    assert message.startswith("the message templates' variants do not fit the policies:")
    assert (
        "variant segments/vip names segment 'vip', which has no policy (known: gentle, high_risk" in message
    )
    assert "template_variant 'formal' (segment(s) standard) has no templates (variants/formal)" in message
    assert "template file zh-CN/regions/gd/gentle/follow_up.txt.j2: its folder is not a variant" in message
    assert "template file zh-CN/segments/gentle/folow_up.txt.j2: 'folow_up.txt.j2' is not" in message


def test_an_arm_naming_a_variant_without_templates_stops_the_worker(tmp_path: Path) -> None:
    policies = load_policies(None)
    raw = {
        "name": "formal-words",
        "segments": ["standard"],
        "champion": "current",
        "arms": [
            {"name": "current", "weight": 1},
            {"name": "formal", "weight": 1, "overlay": {"template_variant": "formal"}},
        ],
    }
    definition = checked_definition(raw, policies)
    assert definition.arm("formal").overlay.applied_to(policies["standard"]).template_variant == "formal"
    settings = Settings(_env_file=None, **ENCRYPTION_SETTINGS)
    with pytest.raises(
        ConfigurationError, match=r"template_variant 'formal' \(segment\(s\) standard\) has no"
    ):
        checked_composer(settings, uses=policies_in_use([definition], policies))
    variant(tmp_path, "variants/formal", TemplateName.FOLLOW_UP, "正式")
    with_variant = settings.model_copy(update={"template_dir": tmp_path})
    checked_composer(with_variant, uses=policies_in_use([definition], policies))
    with pytest.raises(DefinitionError, match=r"arms\.1\.overlay\.template_variant: String should match"):
        checked_definition(
            {
                **raw,
                "arms": [
                    raw["arms"][0],
                    {"name": "x", "weight": 1, "overlay": {"template_variant": "Formal Words"}},
                ],
            },
            policies,
        )


# --- the region on the way in ----------------------------------------------------------------------------


def test_the_import_file_takes_a_region(tmp_path: Path) -> None:
    path = tmp_path / "portfolio.csv"
    path.write_text(
        "account_id,customer_name,phone,timezone,locale,amount_due,currency,due_date,region\n"
        "LN-1,Zhang Wei,+8613800138001,Asia/Shanghai,zh-CN,1500.00,CNY,2026-12-05,gd\n"
        "LN-2,Li Na,+8613900139002,Asia/Shanghai,zh-CN,860.50,CNY,2026-12-12,\n"
        "LN-3,Wang Fang,+8613900139003,Asia/Shanghai,zh-CN,860.50,CNY,2026-12-12,G D\n",
        encoding="utf-8",
    )
    found = read_portfolio(path)
    assert [account.region for account in found.accounts] == ["GD", None]
    [error] = found.errors
    assert error.line == 4 and error.message.startswith("region: ")


# --- a real send, on the time-skipping server ------------------------------------------------------------


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """The suite's settings with an operator's folder of variants for the ``plain`` segment."""
    root = tmp_path / "variants"
    variant(root, "regions/GD/plain", TemplateName.FIRST_OVERDUE, MARKS["regions/GD/plain"])
    variant(root, "variants/formal", TemplateName.FIRST_OVERDUE, MARKS["variants/formal"])
    return settings.model_copy(update={"template_dir": root})


async def _audited(store: AuditStore, account_id: str) -> list[str]:
    return [entry.detail for entry in store.audit_for(account_id) if entry.kind == "sms_sent"]


async def test_a_send_records_the_regions_variant(
    env: WorkflowEnvironment, client: Client, settings: Settings, gateway: RecordingHttpServer
) -> None:
    today = await local_today(env)
    account = make_account(today - timedelta(days=1), segment="plain", region="gd")
    assert account.region == "GD"
    handle = await start(client, settings.task_queue, account)
    await env.sleep(days(1))
    await eventually(lambda: status(handle), lambda current: current.sms_sent == 1)
    [sms] = sms_requests(gateway)
    assert sms["template"] == "first_overdue" and f"{GREETING}粤：" in sms["body"]
    [sent] = [entry.detail for entry in await timeline(handle) if entry.kind == "sms_sent"]
    assert sent.startswith("first_overdue touchpoint 1 (") and sent.endswith("; variant regions/GD/plain)")
    # The send's own audit row, which the sending activity writes with the outbox row.
    store = AuditStore(make_engine(settings.database_url))
    details = await eventually(lambda: _audited(store, account.account_id), bool)
    assert any(
        d.startswith("first_overdue, ") and d.endswith(", variant regions/GD/plain: sent") for d in details
    )


async def test_a_send_without_a_variant_names_none(
    env: WorkflowEnvironment, client: Client, settings: Settings, gateway: RecordingHttpServer
) -> None:
    today = await local_today(env)
    handle = await start(
        client, settings.task_queue, make_account(today - timedelta(days=1), segment="plain")
    )
    await env.sleep(days(1))
    await eventually(lambda: status(handle), lambda current: current.sms_sent == 1)
    [sms] = sms_requests(gateway)
    assert f"{GREETING}粤：" not in sms["body"]
    [sent] = [entry.detail for entry in await timeline(handle) if entry.kind == "sms_sent"]
    assert "variant" not in sent


async def test_an_experiment_arm_sends_its_named_variant(
    env: WorkflowEnvironment, client: Client, settings: Settings, gateway: RecordingHttpServer
) -> None:
    raw = {
        "name": "formal-words",
        "segments": ["plain"],
        "champion": "current",
        "arms": [
            {"name": "current", "weight": 1},
            {"name": "formal", "weight": 1, "overlay": {"template_variant": "formal"}},
        ],
    }
    checked = checked_definition(raw, load_policies(settings.policy_file))
    database = make_engine(settings.database_url)
    ExperimentStore(database).start(checked, at=datetime.now(UTC) - timedelta(days=1))
    today = await local_today(env)
    candidates = [make_account(today - timedelta(days=1), segment="plain", region="GD") for _ in range(40)]
    by_arm: dict[str, AccountInput] = {}
    for account in candidates:
        arm = assign(checked, account.account_id)
        assert arm is not None
        by_arm.setdefault(arm.arm, account)
    handles = {arm: await start(client, settings.task_queue, by_arm[arm]) for arm in ("current", "formal")}
    await env.sleep(days(1))
    for handle in handles.values():
        await eventually(partial(status, handle), lambda current: current.sms_sent == 1)
    bodies = {sms["account_id"]: sms["body"] for sms in sms_requests(gateway)}
    assert f"{GREETING}正式：" in bodies[by_arm["formal"].account_id], "the arm's named variant comes first"
    assert f"{GREETING}粤：" in bodies[by_arm["current"].account_id], "the champion keeps the region's"
    [sent] = [entry.detail for entry in await timeline(handles["formal"]) if entry.kind == "sms_sent"]
    assert sent.endswith("; variant variants/formal)")
    database.dispose()

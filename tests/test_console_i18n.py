"""The console speaks zh-CN and en-US: both catalogs hold the same keys with the same placeholders, every
key a template or handler names exists, every value shown through a key built from it (a stage, a
kind, a role, an action) has its words, and a page comes in the language the switcher chose, else the
browser's, else English, with ``<html lang>`` saying which."""

from __future__ import annotations

import json
import re
import string
from pathlib import Path

import pytest

from kindly.analytics.report_models import (
    CurePoint,
    Efficiency,
    PromiseFigures,
    ReportName,
    ResponseRates,
    RollRate,
    Split,
)
from kindly.analytics.statistics import Decision
from kindly.domain.contract import Stage, TimelineKind
from kindly.domain.policy.schedule import StepKind
from kindly.domain.roles import Role
from kindly.programs.console import i18n
from kindly.programs.console.actions import ACTIONS
from kindly.programs.console.audit_query import QUICK
from kindly.programs.console.audit_view import KINDS
from kindly.programs.console.dashboard import CHARTS
from kindly.programs.console.pages import NAV
from kindly.store.experiments import RUNNING, STOPPED
from tests.test_console_auth import Site, csrf_of, location, login, site  # noqa: F401  (a fixture)

CONSOLE = Path(i18n.__file__).parent
CATALOGS = {
    locale: json.loads((CONSOLE / "locales" / f"{locale}.json").read_text("utf-8")) for locale in i18n.LOCALES
}
LITERAL_KEY = re.compile(r"""\bt\(\s*["']([^"']+)["']\s*[,)]""")
BUILT_KEY = re.compile(r"""\bt\(\s*f?["']([a-z_.-]+?)\.(?:["']\s*~|\{)""")


def _placeholders(message: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(message) if field}


def test_both_catalogs_have_the_same_keys_and_placeholders() -> None:
    english, chinese = CATALOGS["en-US"], CATALOGS["zh-CN"]
    assert english.keys() == chinese.keys(), english.keys() ^ chinese.keys()
    for key, message in english.items():
        assert _placeholders(message) == _placeholders(chinese[key]), key
        assert message.strip() and chinese[key].strip(), key


def test_the_chinese_catalog_is_chinese() -> None:
    untranslated = {
        key
        for key, message in CATALOGS["zh-CN"].items()
        if message == CATALOGS["en-US"][key] and not key.startswith("app.name")
    }
    assert not untranslated, sorted(untranslated)


def _sources() -> list[Path]:
    return [*sorted((CONSOLE / "templates").glob("*.html")), *sorted(CONSOLE.glob("*.py"))]


def test_every_key_a_template_or_handler_names_exists() -> None:
    used = {key for path in _sources() for key in LITERAL_KEY.findall(path.read_text("utf-8"))}
    assert len(used) > 100, "the scan finds the templates' keys"
    missing = used - CATALOGS["en-US"].keys()
    assert not missing, sorted(missing)


def _built_keys() -> set[str]:
    """Every key the templates and handlers build from a value, for every value it can take."""
    keys = {f"stage.{stage.value}" for stage in Stage}
    keys |= {f"kind.{kind}" for kind in KINDS} | {f"kind.{kind.value}" for kind in TimelineKind}
    keys |= {f"role.{role.value}" for role in Role} | {f"nav.{name}" for name in NAV}
    keys |= {f"next.{kind.value}" for kind in StepKind}
    for name, action in ACTIONS.items():
        keys |= {f"action.{name}", f"action.{name}.help", f"action.{name}.button"}
        keys |= {f"confirm.{name}", f"confirm.effect.{name}", f"flash.done_{name}"}
        keys |= {f"field.{field}" for field in action.fields}
    for report in ReportName:
        keys |= {f"report.{report.value}", f"report.{report.value}.help"}
    keys |= {f"report.split.{split.value}" for split in Split}
    for row in (CurePoint, RollRate, PromiseFigures, ResponseRates, Efficiency):
        keys |= {f"report.column.{column}" for column in row.model_fields}
    keys |= {f"experiment.{RUNNING}", f"experiment.{STOPPED}"}
    keys |= {f"experiment.decision.{decision.value}" for decision in Decision}
    keys |= {f"audit.quick.{name}" for name in QUICK} | {f"dashboard.chart.{name}" for name, _ in CHARTS}
    keys |= {f"error.{code}" for code in (400, 404, 405, 503, "other")}
    keys |= {"accounts.invalid.query", "accounts.invalid.field"}
    return keys


def test_every_key_built_from_a_value_exists_for_every_value() -> None:
    missing = _built_keys() - CATALOGS["en-US"].keys()
    assert not missing, sorted(missing)


def test_the_built_keys_cover_every_prefix_the_sources_build_from() -> None:
    """A template that starts building keys from a new prefix must be listed in ``_built_keys`` above."""
    prefixes = {prefix for path in _sources() for prefix in BUILT_KEY.findall(path.read_text("utf-8"))}
    covered = {key.rsplit(".", 1)[0] for key in _built_keys()} | {"action", "confirm", "report"}
    assert prefixes <= covered, sorted(prefixes - covered)


@pytest.mark.parametrize(
    ("header", "locale"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
        ("zh-Hans", "zh-CN"),
        ("en-GB,zh;q=0.5", "en-US"),
        ("fr-FR, zh-TW;q=0.7, en;q=0.6", "zh-CN"),
        ("en;q=0.4, zh;q=0.8", "zh-CN"),
        ("fr, de", None),
        ("zh;q=0", None),
        ("", None),
    ],
)
def test_the_browser_language_is_negotiated(header: str, locale: str | None) -> None:
    assert i18n.negotiate(header) == locale


def test_a_missing_word_shows_english_or_the_key_never_an_error() -> None:
    catalogs = i18n.Catalogs({"en-US": {"a": "A {n}", "b": "B"}, "zh-CN": {"a": "甲 {n}"}})
    t = catalogs.translator("zh-CN")
    assert t("a", n=1) == "甲 1" and t("b") == "B" and t("c") == "c" and t("a") == "甲 {n}"


async def test_pages_come_in_the_chosen_then_the_browsers_language(site: Site) -> None:  # noqa: F811
    async with site.browser() as http:
        english = await http.get("/login")
        assert '<html lang="en-US">' in english.text and "Sign in" in english.text
        chinese = await http.get("/login", headers={"accept-language": "zh-CN,zh;q=0.9"})
        assert (
            '<html lang="zh-CN">' in chinese.text and "登录" in chinese.text and "Sign in" not in chinese.text
        )

        switched = await http.post(
            "/locale", data={"locale": "zh-CN", "next": "/console/login", "csrftoken": csrf_of(english.text)}
        )
        assert location(switched) == "/console/login"
        chosen = await http.get("/login", headers={"accept-language": "en-US"})
        assert '<html lang="zh-CN">' in chosen.text, "the switcher's choice beats the browser's"

        assert location(await login(http, "cai")) == "/console/audit"
        audit = await http.get("/audit")
        assert '<html lang="zh-CN">' in audit.text and "审计日志" in audit.text and "合规" in audit.text
        wrong = await login(http, "cai", "not the password")
        assert "用户名或密码错误。" in wrong.text

        back = await http.post(
            "/locale", data={"locale": "en-US", "next": "/console/audit", "csrftoken": csrf_of(audit.text)}
        )
        assert location(back) == "/console/audit"
        assert '<html lang="en-US">' in (await http.get("/audit")).text


async def test_the_switcher_goes_back_only_to_console_pages(site: Site) -> None:  # noqa: F811
    async with site.browser() as http:
        token = csrf_of((await http.get("/login")).text)
        answer = await http.post(
            "/locale", data={"locale": "xx", "next": "https://example.com", "csrftoken": token}
        )
        assert location(answer) == "/console/"
        assert '<html lang="en-US">' in (await http.get("/login")).text, "an unknown locale is ignored"

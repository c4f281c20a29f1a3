"""The customer's self-service page (``/p/<token>``) through a real server on 127.0.0.1, over the real dev
server (which takes workflow updates) with a worker: the page shows what is due and nothing personal, every
choice reaches the account as the ``self_service`` update and does what it says, "pay now" leads to the
lender's page with a reference the lender can verify, and a dead end (unknown, tampered, expired link, an
ended account) is one neutral page. Then the guards: CSRF, rate limits, hostile input, security headers, the
access log, and both languages."""

from __future__ import annotations

import json
import logging
import re
import string
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from itsdangerous import BadSignature
from pydantic import ValidationError
from sqlalchemy import Engine, event
from temporalio.client import Client, WorkflowHandle, WorkflowQueryFailedError
from temporalio.testing import WorkflowEnvironment

from kindly.domain.contract import AccountInput, AccountStatus, QueryName, Stage, TimelineKind
from kindly.domain.plans import SelfServiceOffer
from kindly.keyring import load_keyring
from kindly.programs import selfservice
from kindly.programs.api import create_app
from kindly.programs.api.security import kindly_headers
from kindly.programs.console.i18n import LOCALES
from kindly.programs.selfservice.guards import RedactLinkTokens
from kindly.programs.selfservice.limits import SlidingWindow
from kindly.programs.selfservice.payment import read_payment_reference
from kindly.programs.selfservice.routes import DONE
from kindly.programs.temporal import start_account
from kindly.settings import Settings
from kindly.store import SelfServiceLinks, make_engine
from tests.asgi_server import serving
from tests.conftest import eventually
from tests.lifecycle_helpers import STARTED, local_today, make_account, status, timeline
from tests.test_api import WEBHOOK_SECRET, api_settings
from tests.test_console_auth import csrf_of

PAY_SECRET = "payment-reference-secret-for-the-tests-only"
PAY_PAGE = "https://pay.lender.example/repay?ref={reference}"
NAME, DIGITS = "Wang Xiaoming", "13800138000"
TOUCHPOINT = 2


@dataclass
class Opened:
    """A running account with a live link."""

    account: AccountInput
    handle: WorkflowHandle[Any, Any]
    token: str
    offer: SelfServiceOffer


@dataclass
class Site:
    base: str
    engine: Engine
    client: Client
    settings: Settings

    def browser(self, language: str = "en-US") -> httpx.AsyncClient:
        """A phone's browser on the page: keeps cookies, follows no redirect (the tests read them)."""
        return httpx.AsyncClient(base_url=f"{self.base}/p", timeout=60, headers={"Accept-Language": language})

    def links(self) -> SelfServiceLinks:
        return SelfServiceLinks(self.engine, load_keyring(self.settings))

    async def account(self, today: date, **overrides: Any) -> Opened:
        """A running account five days overdue (in English unless ``locale`` says otherwise: the page
        speaks the account's language) and its link."""
        account = make_account(today - timedelta(days=5), **{"locale": "en-US", **overrides})
        handle = await start_account(self.client, account, task_queue=self.settings.task_queue)
        STARTED.append(handle)
        offer = await eventually(lambda: offer_of(handle), lambda offer: offer is not None)
        assert offer is not None
        key = f"test/{account.account_id}/tp-{TOUCHPOINT}"
        token = self.links().issue(key, account.account_id, TOUCHPOINT, datetime.now(UTC), timedelta(days=30))
        return Opened(account, handle, token, offer)


async def offer_of(handle: WorkflowHandle[Any, Any]) -> SelfServiceOffer | None:
    try:
        offer: SelfServiceOffer = await handle.query(QueryName.SELF_SERVICE, result_type=SelfServiceOffer)
    except WorkflowQueryFailedError:  # still preparing
        return None
    return offer


@asynccontextmanager
async def page_site(client: Client, settings: Settings, **overrides: Any) -> AsyncIterator[Site]:
    engine = make_engine(settings.database_url)
    values = {
        "self_service_cookie_secure": False,
        "self_service_secret": "self-service-secret-of-more-than-32-characters",
        "max_body_bytes": 64 * 1024,
        **overrides,
    }
    app = create_app(client, settings, api_settings(**values), engine)
    try:
        async with serving(app) as base:
            yield Site(base, engine, client, settings)
    finally:
        engine.dispose()


@pytest.fixture
async def site(dev_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Site]:
    async with page_site(
        dev_env.client, settings, payment_url_template=PAY_PAGE, payment_reference_secret=PAY_SECRET
    ) as served:
        yield served


@pytest.fixture
async def today(dev_env: WorkflowEnvironment) -> date:
    return await local_today(dev_env)


async def post(http: httpx.AsyncClient, token: str, action: str, **fields: str) -> httpx.Response:
    """Posts a form as the account's page holds it (with its CSRF token)."""
    page = await http.get(f"/{token}")
    assert page.status_code == 200, page.text
    return await http.post(f"/{token}/{action}", data={"csrftoken": csrf_of(page.text), **fields})


def location(response: httpx.Response) -> str:
    assert response.status_code == 303, (response.status_code, response.text[:500])
    return response.headers["location"]


def chosen(entries: list[Any]) -> list[str]:
    return [entry.detail for entry in entries if entry.kind == TimelineKind.SELF_SERVICE]


def no_personal_data(html: str, account: AccountInput) -> None:
    assert NAME not in html and DIGITS not in html and account.phone not in html
    assert account.account_id not in html, "the page shows the whole reference"


# --- the page and the choices ----------------------------------------------------------------------


async def test_the_page_shows_what_is_due_in_either_language_and_nothing_personal(
    site: Site, today: date
) -> None:
    opened = await site.account(today, amount_due=Decimal("1500.00"), locale="en-US")
    ref = "****" + opened.account.account_id[-4:]
    # The account's language (its reminders') comes before the browser's.
    async with site.browser("zh-CN,zh;q=0.9") as http:
        page = await http.get(f"/{opened.token}")
        assert page.status_code == 200
        assert '<html lang="en-US">' in page.text
        assert ref in page.text and "CNY 1,500.00" in page.text
        due = opened.account.due_date
        assert f"{due:%b} {due.day}, {due.year}" in page.text
        for action in ("pay", "promise", "plan", "hardship", "dispute", "stop-sms"):
            assert f'action="/p/{opened.token}/{action}"' in page.text
        assert "account_id" not in page.text, "no form carries the account"
        no_personal_data(page.text, opened.account)
        headers = page.headers
        assert headers["referrer-policy"] == "no-referrer" and headers["cache-control"] == "no-store"
        assert headers["x-frame-options"] == "DENY"
        csp = headers["content-security-policy"]
        assert "script-src" not in csp and "default-src 'none'" in csp and "'unsafe-inline'" not in csp
        assert "form-action 'self' https://pay.lender.example" in csp
        cookie = headers["set-cookie"]
        assert "Path=/p" in cookie and "SameSite=Strict" in cookie
        assert "<script" not in page.text
    opened = await site.account(today, amount_due=Decimal("1500.00"), locale="zh-CN")
    async with site.browser("en-US,en;q=0.9") as http:
        page = await http.get(f"/{opened.token}")
        assert '<html lang="zh-CN">' in page.text and "1,500.00元" in page.text and "立即还款" in page.text
        assert f"{due.year}年{due.month}月{due.day}日" in page.text
        switched = await http.get(f"/{opened.token}", params={"lang": "en-US"})
        assert '<html lang="en-US">' in switched.text
        assert f'action="/p/{opened.token}/promise?lang=en-US"' in switched.text, "the choice is kept"
    async with (
        page_site(site.client, site.settings, self_service_cookie_secure=True) as secure,
        secure.browser() as http,
    ):
        cookie = (await http.get(f"/{opened.token}")).headers["set-cookie"]
        assert "Secure" in cookie and "SameSite=Strict" in cookie


async def test_a_promise_reaches_the_account_and_its_confirmation_says_what_comes_next(
    site: Site, today: date
) -> None:
    opened = await site.account(today)
    promised = today + timedelta(days=7)
    async with site.browser() as http:
        done = location(await post(http, opened.token, "promise", date=promised.isoformat()))
        assert done == f"/p/{opened.token}/done/promise"
        page = await http.get(done.removeprefix("/p"))
        assert page.status_code == 200 and "Thank you, your date is saved" in page.text
        assert f"{promised:%b} {promised.day}, {promised.year}" in page.text
    account = await status(opened.handle)
    assert account.promise_date == promised
    assert chosen(await timeline(opened.handle)) == [
        f"promised to pay by {promised} (from the link of touchpoint {TOUCHPOINT})"
    ]


async def test_a_plan_shows_its_schedule_then_is_chosen_once(site: Site, today: date) -> None:
    opened = await site.account(today, amount_due=Decimal("1000.00"))
    first = today + timedelta(days=3)
    count = str(opened.offer.plan_options[0].instalments)
    async with site.browser() as http:
        preview = await post(http, opened.token, "plan", instalments=count, date=first.isoformat())
        assert preview.status_code == 200 and "Check your plan" in preview.text
        assert "CNY 333.33" in preview.text and "CNY 333.34" in preview.text, "the last takes the rounding"
        assert (await status(opened.handle)).plan is None, "showing the schedule sends nothing"
        confirm = {"csrftoken": csrf_of(preview.text), "instalments": count, "date": first.isoformat()}
        confirm["confirm"] = "yes"
        done = location(await http.post(f"/{opened.token}/plan", data=confirm))
        page = await http.get(done.removeprefix("/p"))
        assert "Your plan is set" in page.text and "CNY 333.34" in page.text
        plan = (await status(opened.handle)).plan
        assert plan is not None and len(plan.instalments) == 3 and plan.instalments[0].due == first

        replayed = await http.post(f"/{opened.token}/plan", data=confirm)
        assert replayed.status_code == 409 and "You have already chosen a plan" in replayed.text
    assert (await status(opened.handle)).plan == plan
    assert len(chosen(await timeline(opened.handle))) == 1, "no second plan"


async def test_hardship_dispute_and_stop_sms_each_do_what_they_say(site: Site, today: date) -> None:
    for action, kind, words in (
        ("hardship", "hardship", "A person from our team will contact you."),
        ("dispute", "dispute", "A person from our team will look into it."),
        ("stop-sms", "opt_out", "SMS reminders are stopped"),
    ):
        opened = await site.account(today)
        async with site.browser() as http:
            done = location(await post(http, opened.token, action))
            assert done == f"/p/{opened.token}/done/{kind}"
            assert words in (await http.get(done.removeprefix("/p"))).text
            again = await http.get(f"/{opened.token}")
        account = await status(opened.handle)
        entries = await timeline(opened.handle)
        assert len(chosen(entries)) == 1, entries
        if kind == "opt_out":
            assert account.opted_out and "You will get no more SMS reminders" in again.text
        else:
            assert account.escalation == Stage.SPECIALIST
            assert any(entry.kind == TimelineKind.HANDED_TO_PERSON for entry in entries)


async def test_pay_now_leads_to_the_lenders_page_with_a_reference_it_can_verify(
    site: Site, today: date
) -> None:
    opened = await site.account(today, amount_due=Decimal("800.00"))
    async with site.browser() as http:
        target = urlsplit(location(await post(http, opened.token, "pay")))
        assert (target.scheme, target.netloc, target.path) == ("https", "pay.lender.example", "/repay")
        reference = parse_qs(target.query)["ref"][0]
        verified = read_payment_reference(PAY_SECRET, reference, max_age_seconds=600)
        assert (verified.account_id, verified.touchpoint) == (opened.account.account_id, TOUCHPOINT)
        with pytest.raises(BadSignature):
            read_payment_reference("another-secret-of-at-least-32-characters", reference, 600)
        assert chosen(await timeline(opened.handle)) == [
            f"went on to the payment page (from the link of touchpoint {TOUCHPOINT})"
        ]

        # The lender's payment webhook credits the payment; the account ends, and its link shows nothing.
        body = json.dumps(
            {"account_id": verified.account_id, "amount": "800.00", "reference": "PAY-SELF-1"}
        ).encode()
        headers = {"Content-Type": "application/json", **kindly_headers(WEBHOOK_SECRET, body)}
        credited = await http.post(f"{site.base}/webhooks/payments", content=body, headers=headers)
        assert credited.status_code == 200, credited.text
        ended = await eventually(lambda: http.get(f"/{opened.token}"), lambda page: page.status_code != 200)
        unknown = await http.get(f"/{'A' * 22}")
    assert ended.status_code == 410 and unknown.status_code == 404
    assert ended.text == unknown.text and "****" not in ended.text


# --- the guards ------------------------------------------------------------------------------------


async def test_a_form_without_its_own_csrf_token_is_refused_and_nothing_is_sent(
    site: Site, today: date
) -> None:
    opened = await site.account(today)
    promised = (today + timedelta(days=3)).isoformat()
    async with site.browser() as first, site.browser() as second:
        old = csrf_of((await first.get(f"/{opened.token}")).text)
        await second.get(f"/{opened.token}")  # the second browser has a cookie of its own
        replayed = await second.post(f"/{opened.token}/promise", data={"csrftoken": old, "date": promised})
        assert replayed.status_code == 403 and "This form has expired" in replayed.text
        bare = await httpx.AsyncClient(base_url=f"{site.base}/p").post(
            f"/{opened.token}/promise", data={"csrftoken": old, "date": promised}
        )
        assert bare.status_code == 403, "a POST without any cookie is refused too"
    assert (await status(opened.handle)).promise_date is None
    assert chosen(await timeline(opened.handle)) == []


async def test_hostile_input_is_refused_naming_its_field_and_never_sent(site: Site, today: date) -> None:
    opened, other = await site.account(today), await site.account(today)
    async with site.browser() as http:
        long = await post(http, opened.token, "promise", date="2" * 5000)
        assert long.status_code == 422 and "This is too long." in long.text
        assert re.search(r'id="promise-date"[^>]*aria-invalid="true"', long.text)
        assert "2" * 40 not in long.text, "an over-long value is not echoed whole"

        script = await post(http, opened.token, "promise", date="<script>alert(1)</script>")
        assert script.status_code == 422 and "This is too long." in script.text
        assert "<script>alert" not in script.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in script.text
        short = await post(http, opened.token, "promise", date='"><b>x')
        assert short.status_code == 422 and "Please enter a date like" in short.text
        assert '"><b>' not in short.text and "&#34;&gt;&lt;b&gt;x" in short.text

        beyond = (opened.offer.promise_latest + timedelta(days=1)).isoformat()
        refused = await post(http, opened.token, "promise", date=beyond)
        assert refused.status_code == 422, "the account refuses a date past its limit, naming the field"
        assert re.search(r'id="promise-date"[^>]*aria-invalid="true"', refused.text)

        plan = await post(http, opened.token, "plan", instalments="99", date=today.isoformat(), confirm="yes")
        assert plan.status_code == 422 and 'class="field choices invalid" id="plan-instalments"' in plan.text
        assert plan.text.count('aria-invalid="true"') == len(opened.offer.plan_options)
    assert (await status(opened.handle)).promise_date is None and (await status(opened.handle)).plan is None
    assert chosen(await timeline(opened.handle)) == []

    async with site.browser() as http:  # the token is the only key: an account id in the form is ignored
        promised = today + timedelta(days=2)
        done = await post(
            http, opened.token, "promise", date=promised.isoformat(), account_id=other.account.account_id
        )
        assert location(done).startswith(f"/p/{opened.token}/")
    assert (await status(opened.handle)).promise_date == promised
    untouched: AccountStatus = await status(other.handle)
    assert untouched.promise_date is None and chosen(await timeline(other.handle)) == []


class Statements:
    """Counts the statements the engine runs while it is recorded."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        self._engine = engine

    def _seen(self, *args: Any) -> None:
        self.count += 1

    def __enter__(self) -> Statements:
        event.listen(self._engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *exc_info: object) -> None:
        event.remove(self._engine, "before_cursor_execute", self._seen)


@pytest.fixture
async def bare_site(env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Site]:
    """The page over the time-skipping server, for what needs no account (no worker runs)."""
    async with page_site(env.client, settings) as served:
        yield served


async def test_unknown_tampered_and_expired_links_get_one_neutral_page_after_the_same_work(
    bare_site: Site,
) -> None:
    links = bare_site.links()
    now = datetime.now(UTC)
    live = links.issue("test/LN-LIVE/tp-1", "LN-LIVE-0001", 1, now, timedelta(days=30))
    expired = links.issue("test/LN-OLD/tp-1", "LN-OLD-0001", 1, now - timedelta(days=2), timedelta(days=1))
    tampered = live[:-1] + ("B" if live[-1] != "B" else "C")
    answers: dict[str, tuple[int, str, int]] = {}
    async with bare_site.browser() as http:
        for name, token in (
            ("unknown", "A" * 22),
            ("tampered", tampered),
            ("expired", expired),
            ("malformed", "not-a-token"),
            ("script", "%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
        ):
            with Statements(bare_site.engine) as statements:
                page = await http.get(f"/{token}")
            answers[name] = (page.status_code, page.text, statements.count)
            assert page.headers["referrer-policy"] == "no-referrer" and "set-cookie" not in page.headers
    assert answers["expired"][0] == 410
    assert {name: status for name, (status, _, _) in answers.items() if name != "expired"} == {
        "unknown": 404,
        "tampered": 404,
        "malformed": 404,
        "script": 404,
    }
    assert len({text for _, text, _ in answers.values()}) == 1, "one body, whatever the reason"
    assert "Nothing is due on this link" in answers["unknown"][1]
    assert answers["unknown"][2] == answers["tampered"][2] == answers["expired"][2] == 1, (
        "an unknown and an expired token take the same single lookup"
    )
    assert answers["malformed"][2] == 0, "a value without a token's shape never reaches the database"


async def test_too_many_requests_are_answered_429_per_address_and_per_link(
    env: WorkflowEnvironment, settings: Settings
) -> None:
    async with (
        page_site(env.client, settings, self_service_requests_per_minute=4) as served,
        served.browser() as http,
    ):
        answers = [(await http.get(f"/{'A' * 22}")).status_code for _ in range(5)]
        assert answers == [404, 404, 404, 404, 429]
        refused = await http.get(f"/{'B' * 22}")
        assert refused.status_code == 429 and refused.headers["retry-after"] == "60"
        assert "Please wait a moment" in refused.text
        assert (await http.get("/static/page.css")).status_code == 200, "the stylesheet is not counted"

    async with (
        page_site(env.client, settings, self_service_posts_per_hour=2) as served,
        served.browser() as http,
    ):
        await http.get(f"/{'A' * 22}")
        assert http.cookies.get("kindly_page_csrf") is None, "a page without a form sets no cookie"
        posts = []
        for token in ("C" * 22, "C" * 22, "C" * 22, "D" * 22):
            answer = await http.post(f"/{token}/hardship", data={"csrftoken": "x"})
            posts.append(answer.status_code)
        assert posts == [403, 403, 429, 403], (
            "the third choice on one link is one too many; another link is not"
        )


# --- words, logs, limits and settings, without a server ------------------------------------------------

PACKAGE = Path(selfservice.__file__).parent
CATALOGS = {
    locale: json.loads((PACKAGE / "locales" / f"{locale}.json").read_text("utf-8")) for locale in LOCALES
}
LITERAL_KEY = re.compile(r"""\bt\(\s*["']([a-z_.]+[a-z_])["']\s*[,)]""")


def _placeholders(message: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(message) if name}


def test_both_catalogs_have_the_same_keys_and_placeholders_and_the_chinese_is_chinese() -> None:
    english, chinese = CATALOGS["en-US"], CATALOGS["zh-CN"]
    assert english.keys() == chinese.keys(), english.keys() ^ chinese.keys()
    for key, message in english.items():
        assert _placeholders(message) == _placeholders(chinese[key]), key
        assert message.strip() and chinese[key].strip() and message != chinese[key], key


def test_every_key_the_pages_name_exists() -> None:
    """Keys named literally in templates and code, and those built from a value: every notice and
    confirmation, every field an error names."""
    templates = " ".join(path.read_text("utf-8") for path in PACKAGE.glob("templates/*.html"))
    code = " ".join(path.read_text("utf-8") for path in PACKAGE.glob("*.py"))
    used = set(LITERAL_KEY.findall(templates)) | set(re.findall(r'"(error\.[a-z_]+)"', code))
    assert len(used) > 40, "the scan finds the templates' keys"
    notices = set(re.findall(r'notice\(\s*request,\s*"([a-z_]+)"', code)) | {"too_many", "expired"}
    built = {f"notice.{what}.{part}" for what in notices for part in ("title", "body")}
    built |= {f"done.{kind.value}.{part}" for kind in DONE for part in ("title", "body", "next")}
    built |= {f"error.{form}_date" for form in ("promise", "plan")}
    fields = {"promise", "promise.date", "plan", "plan.date", "plan.instalments", "help"}
    built |= {f"field.{name}" for name in fields}
    missing = (used | built) - CATALOGS["en-US"].keys()
    assert not missing, sorted(missing)
    assert notices == {"too_many", "expired", "busy", "pending", "conflict", "plan_chosen"}


def test_the_access_log_never_holds_a_token() -> None:
    redact = RedactLinkTokens("/p")
    token = "Zq3vN0-yT_8kLm2PqRsT4w"
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "POST", f"/p/{token}/promise?lang=en-US", "1.1", 303),
        None,
    )
    assert redact.filter(record)
    line = record.getMessage()
    assert token not in line and '"POST /p/…/promise?lang=en-US HTTP/1.1" 303' in line
    other = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, "%s", ("/console/queue",), None)
    redact.filter(other)
    assert other.getMessage() == "/console/queue"


def test_a_sliding_window_lets_a_client_in_again_as_its_hits_age() -> None:
    window = SlidingWindow(2, timedelta(minutes=1), max_keys=2)
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert [window.allow("a", start + timedelta(seconds=n)) for n in range(3)] == [True, True, False]
    assert window.allow("a", start + timedelta(seconds=60.5)), "the first hit left the window"
    assert not window.allow("a", start + timedelta(seconds=60.7)), "the second has not"
    window.allow("b", start)
    window.allow("c", start)  # more keys than it keeps: the longest idle ("a") is forgotten
    assert window.allow("a", start + timedelta(seconds=62))


def test_the_payment_settings_come_together_and_name_the_reference() -> None:
    secret = "x" * 32
    with pytest.raises(ValidationError, match="together"):
        api_settings(payment_url_template=PAY_PAGE)
    with pytest.raises(ValidationError, match="together"):
        api_settings(payment_reference_secret=secret)
    with pytest.raises(ValidationError, match=r"\{reference\} once"):
        api_settings(payment_url_template="https://pay.lender.example/repay", payment_reference_secret=secret)
    with pytest.raises(ValidationError, match="http"):
        api_settings(payment_url_template="javascript:{reference}", payment_reference_secret=secret)
    assert api_settings(payment_url_template=PAY_PAGE, payment_reference_secret=secret).payment_url_template

"""The ``console`` section: the latency staff feel on the console's pages with many open accounts.

Set-up (timed, but not the figure)
----------------------------------
A fresh dev server, Kindly's worker (``python worker.py``, Kindly's default sticky cache) and
``--console-accounts`` accounts (10,000) imported through ``kindly.programs.portfolio.import_portfolio``
while the worker runs, as ``kindly import`` does:

* ``--console-phone`` of them (2,000) are 3 to 60 days overdue and their numbers opted out of SMS
  before (an ``opt_out`` row, as a STOP reply leaves one). Each run, preparing itself, finds the opt-out,
  so its first overdue step is a call: the hand-off activity writes the call task into the built-in
  work queue (``kindly.store.work_queue``) and the run publishes the stage ``phone``. The queue's open
  tasks, their accounts' stages in visibility and the accounts' queries are therefore all real; no
  reminder is sent (the gateway sees none);
* the others are due in 10 to 40 days: each plans its first reminder, publishes it and sleeps.

Amounts and due dates vary (seeded), so that the queue's order and the searches' pages are not
degenerate. The set-up is done when visibility shows every account in its stage with its next
touchpoint, the database holds one open task per phone account, and the worker and the server are idle.

What is timed
-------------
The API as operators run it (``python -m kindly.programs.api``: uvicorn, the console mounted at
``/console``) in its own process, over the worker's database and the dev server. One signed-in
supervisor's browser (httpx: one keep-alive connection on 127.0.0.1, the session and CSRF cookies, the
login form with its token) asks ``--console-requests`` times (200) for each page, one request at a time,
after ``WARM_UP`` requests of each that are not counted:

* ``queue``: ``GET /console/queue``, the phone queue's first page (50 tasks);
* ``search``: ``GET /console/accounts`` with, in turn, no filter, ``stage=phone``, ``min_dpd=30`` and
  an account-id prefix that matches ten accounts (each reported too);
* ``account``: ``GET /console/accounts/{id}`` of an account drawn at random (seeded) from all of them,
  so most are not in the worker's sticky cache, as on a floor working a large portfolio.

A latency is the wall-clock time from sending the request to reading the last byte of the answer. Per
page: p50, p95 (nearest rank) and max in milliseconds, the answers' statuses, and the CPU the API, the
worker and the dev server used per request (``/proc/<pid>/stat`` over the page's requests). Beside the
pages, the queue's data path (``kindly.programs.call_queue.offered_tasks``, which the queue page calls)
is timed in the bench's own process, without HTTP or a template.

A page none of whose warm-up requests answers 200 (a route not there yet answers 404) is recorded as not
measured, with its statuses; one whose counted requests are not all 200 is measured but not judged.
The budget, ``BUDGET_P95_MS``, is recorded beside each page's figures; no page fails the run.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import re
import secrets
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine
from temporalio.client import Client

from bench.common import (
    KindlySetup,
    Server,
    afternoon_zone,
    dev_server,
    local_today,
    make_account,
    wait_for_pollers,
)
from bench.gateway import GatewayProcess
from bench.procs import ManagedProcess, cpu_seconds, free_port
from bench.scenarios import UNLIMITED_SMS_RATE, _until_quiet
from kindly.domain.contract import AccountInput, Stage
from kindly.domain.roles import Role
from kindly.keyring import load_keyring
from kindly.programs.call_queue import offered_tasks
from kindly.programs.portfolio import import_portfolio
from kindly.store import PhoneBook, WorkQueue, make_engine
from kindly.store.users import UserStore

BUDGET_P95_MS = 300.0
"""What a console page may take at the 95th percentile (information beside the figure, no pass/fail)."""
WARM_UP = 5
"""Requests of each page before the counted ones: the first ones load templates and warm caches."""
PREFIX = "CON"
USER = "bench.supervisor"
SEARCHES: dict[str, dict[str, str]] = {
    "no filter": {},
    "stage=phone": {"stage": Stage.PHONE.value},
    "min_dpd=30": {"min_dpd": "30"},
    "account-id prefix": {},  # filled per request: ten accounts' common prefix
}
PAGES = ("queue", "search", "account")
PATHS = {"queue": "/console/queue", "search": "/console/accounts", "account": "/console/accounts/{id}"}


@dataclass(frozen=True)
class ConsoleOptions:
    accounts: int
    phone: int
    requests: int
    workers: int
    import_concurrency: int
    kindly_cache: int
    workdir: Path
    policy_file: Path


def portfolio(tag: str, accounts: int, phone: int, now: datetime) -> list[AccountInput]:
    """The accounts (seeded): the first ``phone`` overdue (for the phone queue), the others due later."""
    rng = random.Random(20_261_207)
    zone = afternoon_zone(now)
    today = local_today(zone, now)
    result: list[AccountInput] = []
    for number in range(accounts):
        overdue = number < phone
        due = today + timedelta(days=-rng.randint(3, 60) if overdue else rng.randint(10, 40))
        account = make_account(f"{PREFIX}{tag}-{number:05d}", number, zone, due)
        amount = Decimal(rng.randrange(20_000, 2_000_000)) / 100
        result.append(account.model_copy(update={"amount_due": amount}))
    return result


@dataclass(frozen=True)
class Floor:
    """The set-up the pages are measured on: a dev server holding the settled portfolio, its workers,
    the database they write (call tasks, audit rows, users) and a client of the server."""

    tag: str
    server: Server
    setup: KindlySetup
    client: Client
    engine: Engine
    queue: WorkQueue
    accounts: list[AccountInput]
    workers: list[ManagedProcess]
    password: str
    """The supervisor ``USER``'s."""
    set_up: dict[str, Any]


@asynccontextmanager
async def floor(
    opts: ConsoleOptions, gateway: GatewayProcess, log: Callable[[str], None]
) -> AsyncIterator[Floor]:
    """A fresh dev server with ``opts.accounts`` accounts imported and settled (the module's docstring)."""
    tag = uuid.uuid4().hex[:4]
    async with dev_server(opts.workdir) as server:
        setup = KindlySetup(
            server.address,
            f"bench-console-{tag}",
            opts.workdir,
            gateway.sms_url,
            opts.policy_file,
            max_cached_workflows=opts.kindly_cache,
            sms_rate_limit_per_second=UNLIMITED_SMS_RATE,
        )
        client = await setup.client()
        settings = setup.settings()
        engine = make_engine(settings.database_url)
        keyring = load_keyring(settings)
        accounts = portfolio(tag, opts.accounts, opts.phone, datetime.now(UTC))
        password = secrets.token_urlsafe(18)
        await asyncio.to_thread(UserStore(engine).add, USER, Role.SUPERVISOR, password)
        book = PhoneBook(engine, keyring)
        for account in accounts[: opts.phone]:  # their customers had replied STOP before
            await asyncio.to_thread(book.record_opt_out, account.phone, account.account_id)
        queue = WorkQueue(engine, keyring)
        workers = [setup.worker(f"kindly-console-{tag}-{number}") for number in range(opts.workers)]
        for worker in workers:
            worker.start()
        try:
            for worker in workers:
                await wait_for_pollers(client, setup.task_queue, worker)
            log(f"console: importing {opts.accounts:,} accounts ({opts.phone:,} of them for the phone queue)")
            began = time.perf_counter()
            report = await import_portfolio(
                client, accounts, task_queue=setup.task_queue, concurrency=opts.import_concurrency
            )
            imported = time.perf_counter() - began
            if report.failed:
                raise RuntimeError(f"{len(report.failed)} accounts failed to start: {report.failed[:3]}")
            await settled(client, setup.task_queue, queue, opts, workers, log)
            for pid in [worker.pid for worker in workers] + ([server.pid] if server.pid else []):
                await _until_quiet(pid)
            ready = time.perf_counter() - began
            open_tasks = await asyncio.to_thread(queue.count_open, datetime.now(UTC))
            log(
                f"console: {opts.accounts:,} accounts settled in {ready:.0f} s; "
                f"{open_tasks:,} open call tasks"
            )
            yield Floor(
                tag,
                server,
                setup,
                client,
                engine,
                queue,
                accounts,
                workers,
                password,
                {
                    "import_seconds": round(imported, 1),
                    "import_starts_per_second": round(opts.accounts / imported, 1),
                    "import_concurrency": opts.import_concurrency,
                    "seconds_until_settled": round(ready, 1),
                    "accounts_settled_per_second": round(opts.accounts / ready, 1),
                    "workers": opts.workers,
                    "worker_max_cached_workflows": opts.kindly_cache,
                    "open_call_tasks": open_tasks,
                },
            )
        finally:
            for worker in workers:
                worker.stop()
            engine.dispose()


async def measure(
    opts: ConsoleOptions, gateway: GatewayProcess, log: Callable[[str], None]
) -> dict[str, Any]:
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    async with floor(opts, gateway, log) as ready:
        api, base = api_process(ready.setup, ready.tag)
        api.start()
        try:
            await wait_for_api(api, base)
            watched = {"api": api.pid} | {
                f"worker_{number}" if len(ready.workers) > 1 else "worker": worker.pid
                for number, worker in enumerate(ready.workers)
            }
            if ready.server.pid is not None:
                watched["temporal_server"] = ready.server.pid
            load_before = os.getloadavg()
            pages = await measure_pages(base, ready.password, ready.accounts, opts.requests, watched, log)
            load_after = os.getloadavg()
            queue_data = await time_calls(
                lambda: offered_tasks(ready.queue, ready.client, datetime.now(UTC)), opts.requests
            )
            sms = await gateway.count(f"{PREFIX}{ready.tag}-")
        finally:
            api.stop()
    return {
        "started_at": started_at,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "accounts": opts.accounts,
        "phone_accounts": opts.phone,
        "open_call_tasks": ready.set_up["open_call_tasks"],
        "sms_sent": sms,
        "set_up": ready.set_up,
        "client": "one signed-in supervisor, one request at a time over one keep-alive HTTP/1.1 connection "
        "to the API process (uvicorn) on 127.0.0.1",
        "budget_p95_ms": BUDGET_P95_MS,
        # The machine's load around the pages' requests: others' work on a shared machine shows here.
        "load_average_before_and_after": [
            [round(value, 2) for value in load_before],
            [round(value, 2) for value in load_after],
        ],
        "pages": pages,
        "queue_data_in_process": {
            "what": "kindly.programs.call_queue.offered_tasks (the queue page's data: its SQL, the stages "
            "from visibility, the call history), in the bench's process, no HTTP, no template",
            **queue_data,
        },
    }


def api_process(setup: KindlySetup, tag: str) -> tuple[ManagedProcess, str]:
    """``python -m kindly.programs.api`` as operators run it, over the worker's database and server; and
    its base URL."""
    port = free_port()
    env = setup.env() | {
        "COLLECTIONS_API_KEY": secrets.token_urlsafe(24),
        "COLLECTIONS_API_HOST": "127.0.0.1",
        "COLLECTIONS_API_PORT": str(port),
        "COLLECTIONS_CONSOLE_SESSION_SECRET": secrets.token_urlsafe(48),
        "COLLECTIONS_CONSOLE_COOKIE_SECURE": "false",
    }
    process = ManagedProcess(
        f"api-console-{tag}", [sys.executable, "-m", "kindly.programs.api"], log_dir=setup.workdir, env=env
    )
    return process, f"http://127.0.0.1:{port}"


async def wait_for_api(process: ManagedProcess, base: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=base, timeout=5) as http:
        while True:
            process.check_alive()
            try:
                if (await http.get("/console/login")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the API did not answer within {timeout:.0f}s")
            await asyncio.sleep(0.2)


async def settled(
    client: Client,
    task_queue: str,
    queue: WorkQueue,
    opts: ConsoleOptions,
    workers: Sequence[ManagedProcess],
    log: Callable[[str], None],
) -> None:
    """Until every account shows its stage and next touchpoint in visibility and each phone account has
    its open call task."""
    sleeping = opts.accounts - opts.phone
    planned = f"TaskQueue = '{task_queue}' AND NextTouchpointAt IS NOT NULL"
    wanted = {
        f"{planned} AND CollectionStage = 'pre_due'": sleeping,
        f"{planned} AND CollectionStage = 'phone'": opts.phone,
    }
    deadline = time.monotonic() + max(900.0, opts.accounts / 5)
    last_log = time.monotonic()
    while True:
        for worker in workers:
            worker.check_alive()
        counts = [(await client.count_workflows(query)).count for query in wanted]
        tasks = await asyncio.to_thread(queue.count_open, datetime.now(UTC))
        if counts == list(wanted.values()) and tasks == opts.phone:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"not settled: pre_due {counts[0]}/{sleeping}, phone {counts[1]}/{opts.phone}")
        if time.monotonic() - last_log > 30:
            log(f"  pre_due {counts[0]:,}/{sleeping:,}, phone {counts[1]:,}/{opts.phone:,}, tasks {tasks:,}")
            last_log = time.monotonic()
        await asyncio.sleep(1.0)


# --- the pages -------------------------------------------------------------------------------------


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrftoken" value="([^"]+)"', html)
    if found is None:
        raise RuntimeError("the login page has no CSRF token")
    return found.group(1)


async def sign_in(http: httpx.AsyncClient, password: str) -> None:
    page = await http.get("/console/login")
    page.raise_for_status()
    answer = await http.post(
        "/console/login", data={"name": USER, "password": password, "csrftoken": csrf_of(page.text)}
    )
    if answer.status_code != 303:
        raise RuntimeError(f"login refused: {answer.status_code} {answer.text[:300]}")


@dataclass(frozen=True)
class Request:
    path: str
    params: dict[str, str]
    label: str


def requests_of(page: str, accounts: Sequence[AccountInput], count: int, rng: random.Random) -> list[Request]:
    if page == "queue":
        return [Request(PATHS["queue"], {}, "queue")] * count
    if page == "search":
        labels = list(SEARCHES)
        out = []
        for number in range(count):
            label = labels[number % len(labels)]
            params = dict(SEARCHES[label])
            if label == "account-id prefix":
                params["account_id"] = rng.choice(accounts).account_id[:-1]  # ten accounts share it
            out.append(Request(PATHS["search"], params, label))
        return out
    ids = [rng.choice(accounts).account_id for _ in range(count)]
    return [Request(PATHS["account"].format(id=account_id), {}, "account") for account_id in ids]


async def measure_pages(
    base: str,
    password: str,
    accounts: Sequence[AccountInput],
    count: int,
    watched: dict[str, int],
    log: Callable[[str], None],
) -> dict[str, Any]:
    rng = random.Random(7)
    pages: dict[str, Any] = {}
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        await sign_in(http, password)
        for page in PAGES:
            warm = [(await _timed(http, request)) for request in requests_of(page, accounts, WARM_UP, rng)]
            if all(status != 200 for status, _ in warm):
                # The queue page is new: without its route (404), or broken (500), there is nothing to time.
                why = f"the page answers {', '.join(sorted({str(status) for status, _ in warm}))}"
                log(f"console: {PATHS[page]}: {why}: not measured")
                pages[page] = {"path": PATHS[page], "measured": False, "why": why}
                continue
            log(f"console: {count} x {PATHS[page]}")
            cpu_before = {name: cpu_seconds(pid) for name, pid in watched.items()}
            timed = [
                (request, *(await _timed(http, request)))
                for request in requests_of(page, accounts, count, rng)
            ]
            cpu = {
                name: round(1000 * (cpu_seconds(pid) - cpu_before[name]) / count, 1)
                for name, pid in watched.items()
            }
            latencies = [ms for _, _, ms in timed]
            failed = sum(status != 200 for _, status, _ in timed)
            result: dict[str, Any] = {
                "path": PATHS[page],
                "measured": True,
                "requests": count,
                "statuses": dict(Counter(str(status) for _, status, _ in timed)),
                **stats(latencies),
                "first_warm_up_ms": round(warm[0][1], 1),
                "budget_p95_ms": BUDGET_P95_MS,
                # Not judged (None) when any answer was not a page: an error's latency says nothing.
                "within_budget": None if failed else percentile(latencies, 0.95) < BUDGET_P95_MS,
                "cpu_ms_per_request": cpu,
            }
            if page == "search":
                result["by_search"] = {
                    label: stats([ms for request, _, ms in timed if request.label == label])
                    for label in SEARCHES
                }
            pages[page] = result
            log(f"  p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, max {result['max_ms']} ms")
    return pages


async def _timed(http: httpx.AsyncClient, request: Request) -> tuple[int, float]:
    began = time.perf_counter()
    answer = await http.get(request.path, params=request.params)
    return answer.status_code, (time.perf_counter() - began) * 1000


async def time_calls(call: Callable[[], Awaitable[object]], count: int) -> dict[str, Any]:
    for _ in range(WARM_UP):
        await call()
    latencies = []
    for _ in range(count):
        began = time.perf_counter()
        await call()
        latencies.append((time.perf_counter() - began) * 1000)
    return {"calls": count, **stats(latencies)}


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def stats(latencies: Sequence[float]) -> dict[str, float]:
    if not latencies:
        return {}
    return {
        "p50_ms": round(percentile(latencies, 0.50), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "max_ms": round(max(latencies), 1),
        "mean_ms": round(sum(latencies) / len(latencies), 1),
    }


# --- the report ------------------------------------------------------------------------------------


def summarize(section: dict[str, Any], information: list[dict[str, Any]]) -> None:
    for page, figures in section["pages"].items():
        if not figures["measured"]:
            information.append(
                {
                    "about": f"console latency, {figures['path']}",
                    "measured": f"not measured: {figures['why']}",
                }
            )
            continue
        verdict = _verdict(figures)
        information.append(
            {
                "about": f"console latency, {figures['path']} ({page}; budget p95 < {BUDGET_P95_MS:g} ms, "
                "no pass/fail)",
                "measured": f"p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms, "
                f"max {figures['max_ms']} ms over {figures['requests']} requests: {verdict} "
                f"({section['accounts']:,} open accounts, {section['open_call_tasks']:,} open call tasks)",
            }
        )


def _verdict(figures: dict[str, Any]) -> str:
    if figures["within_budget"] is None:
        failed = figures["requests"] - figures["statuses"].get("200", 0)
        return f"not judged: {failed} answers were not 200 ({figures['statuses']})"
    return "within budget" if figures["within_budget"] else "OVER budget"


def table_lines(section: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"Console latency ({section['accounts']:,} open accounts, {section['open_call_tasks']:,} open call "
        f"tasks; {section['client']}); budget p95 < {section['budget_p95_ms']:g} ms:",
    ]
    before, after = section["load_average_before_and_after"]
    lines.append(f"  load average (1 min): {before[0]} before the requests, {after[0]} after")
    for page, figures in section["pages"].items():
        if not figures["measured"]:
            lines.append(f"  {page:<8} {figures['path']:<26} not measured: {figures['why']}")
            continue
        cpu = ", ".join(f"{name} {ms}" for name, ms in figures["cpu_ms_per_request"].items())
        verdict = _verdict(figures)
        lines.append(
            f"  {page:<8} {figures['path']:<26} p50 {figures['p50_ms']:>7} ms  "
            f"p95 {figures['p95_ms']:>7} ms  max {figures['max_ms']:>7} ms  {verdict}; "
            f"CPU ms/request: {cpu}"
        )
        for label, by in figures.get("by_search", {}).items():
            lines.append(f"    {label:<20} p50 {by['p50_ms']:>7} ms  p95 {by['p95_ms']:>7} ms")
    data = section["queue_data_in_process"]
    lines.append(
        f"  queue data, in process (offered_tasks): p50 {data['p50_ms']} ms, p95 {data['p95_ms']} ms"
    )
    return lines


def draw(ax: Any, section: dict[str, Any]) -> None:
    measured = [(page, figures) for page, figures in section["pages"].items() if figures["measured"]]
    names = [figures["path"].replace("/console", "") for _, figures in measured]
    width = 0.27
    for offset, (key, label) in enumerate((("p50_ms", "p50"), ("p95_ms", "p95"), ("max_ms", "max"))):
        ax.bar(
            [x + (offset - 1) * width for x in range(len(measured))],
            [figures[key] for _, figures in measured],
            width=width,
            label=label,
        )
    ax.set_xticks(list(range(len(measured))), names)
    ax.axhline(section["budget_p95_ms"], color="red", linestyle="--", label="budget: p95")
    ax.set_ylabel("ms")
    ax.legend()
    ax.set_title(f"Console latency, {section['accounts']:,} open accounts")

"""Shrink a failing script to a small one that still fails, and describe a script for a person.

``still_fails`` runs the whole simulation, so every candidate is expensive: ``shrink`` calls it at most
``max_calls`` times (``MAX_CALLS``, 60, by default), never twice for the same candidate, and returns the
smallest failing script found when the budget runs out. The original script is assumed to fail and is
not run again. The steps, in order:

1. keep only the suspect accounts (those the checker blamed), if that still fails (1 call);
2. each account alone, suspects first (at most ``SINGLE_TRIES`` calls), then, if none fails alone,
   delta debugging (ddmin) over the accounts;
3. for each remaining account, no actions at all, then ddmin over its actions;
4. the faults: each rate to 0, then each outage dropped (the steps before keep ``FAULT_STEPS`` calls,
   or a quarter of the budget if less, in reserve for this one).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import timedelta
from typing import Any, TypeVar

from tests.simulation.model import AccountScript, Action, Faults, Script

MAX_CALLS = 60
SINGLE_TRIES = 8
"""Accounts tried alone at most (suspects first): past that, ddmin over the accounts is cheaper."""
RATES = ("sms_refused", "sms_timeout", "sms_lost_answer", "handoff_refused")
MAX_OUTAGE_STEPS = 2
FAULT_STEPS = len(RATES) + MAX_OUTAGE_STEPS
"""Calls kept for the last step: one per rate, one per outage (the first two)."""

T = TypeVar("T")
StillFails = Callable[[Script], Awaitable[bool]]


class _Oracle:
    """``still_fails`` with a budget and a memory: a candidate seen before costs nothing, and once the
    budget (less what is kept for later steps) is spent, every new candidate counts as passing."""

    def __init__(self, still_fails: StillFails, max_calls: int) -> None:
        self.still_fails = still_fails
        self.max_calls = max_calls
        self.calls = 0
        self.seen: dict[str, bool] = {}

    def spent(self, reserve: int = 0) -> bool:
        return self.calls >= self.max_calls - reserve

    async def fails(self, script: Script, reserve: int = 0) -> bool:
        key = json.dumps(script.to_json(), sort_keys=True, ensure_ascii=False)
        if key in self.seen:
            return self.seen[key]
        if self.spent(reserve):
            return False
        self.calls += 1
        self.seen[key] = result = await self.still_fails(script)
        return result


async def shrink(
    script: Script,
    still_fails: StillFails,
    *,
    suspects: Collection[str] = (),
    max_calls: int = MAX_CALLS,
) -> Script:
    """A smaller script that still fails (``script`` itself if nothing smaller does); ``still_fails`` is
    called at most ``max_calls`` times."""
    oracle = _Oracle(still_fails, max_calls)
    reserve = min(FAULT_STEPS, _fault_steps(script.faults), max_calls // 4)
    current = await _keep_suspects(script, suspects, oracle, reserve)
    current = await _fewer_accounts(current, suspects, oracle, reserve)
    current = await _fewer_actions(current, oracle, reserve)
    return await _fewer_faults(current, oracle)


async def _keep_suspects(script: Script, suspects: Collection[str], oracle: _Oracle, reserve: int) -> Script:
    kept = tuple(a for a in script.accounts if a.account_id in suspects)
    if kept and len(kept) < len(script.accounts):
        candidate = dataclasses.replace(script, accounts=kept)
        if await oracle.fails(candidate, reserve):
            return candidate
    return script


async def _fewer_accounts(script: Script, suspects: Collection[str], oracle: _Oracle, reserve: int) -> Script:
    if len(script.accounts) < 2:
        return script
    order = sorted(script.accounts, key=lambda a: a.account_id not in suspects)  # stable: suspects first
    for account in order[:SINGLE_TRIES]:
        candidate = dataclasses.replace(script, accounts=(account,))
        if await oracle.fails(candidate, reserve):
            return candidate

    async def fails(accounts: Sequence[AccountScript]) -> bool:
        return await oracle.fails(dataclasses.replace(script, accounts=tuple(accounts)), reserve)

    kept = await _ddmin(list(script.accounts), fails, lambda: oracle.spent(reserve))
    return dataclasses.replace(script, accounts=tuple(kept))


async def _fewer_actions(script: Script, oracle: _Oracle, reserve: int) -> Script:
    current = script
    for index in range(len(script.accounts)):

        async def fails(actions: Sequence[Action], index: int = index, base: Script = current) -> bool:
            return await oracle.fails(_with_actions(base, index, actions), reserve)

        actions = list(current.accounts[index].actions)
        if not actions:
            continue
        if await fails([]):
            kept: list[Action] = []
        else:
            kept = await _ddmin(actions, fails, lambda: oracle.spent(reserve))
        current = _with_actions(current, index, kept)
    return current


async def _fewer_faults(script: Script, oracle: _Oracle) -> Script:
    current = script
    for name in RATES:
        if getattr(current.faults, name):
            zero: dict[str, Any] = {name: 0.0}
            candidate = _with_faults(current, dataclasses.replace(current.faults, **zero))
            if await oracle.fails(candidate):
                current = candidate
    for outage in script.faults.outages:
        outages = tuple(o for o in current.faults.outages if o != outage)
        candidate = _with_faults(current, dataclasses.replace(current.faults, outages=outages))
        if await oracle.fails(candidate):
            current = candidate
    return current


def _fault_steps(faults: Faults) -> int:
    return sum(1 for name in RATES if getattr(faults, name)) + len(faults.outages)


def _with_actions(script: Script, index: int, actions: Sequence[Action]) -> Script:
    accounts = list(script.accounts)
    accounts[index] = dataclasses.replace(accounts[index], actions=tuple(actions))
    return dataclasses.replace(script, accounts=tuple(accounts))


def _with_faults(script: Script, faults: Faults) -> Script:
    return dataclasses.replace(script, faults=faults)


async def _ddmin(
    items: list[T], fails: Callable[[list[T]], Awaitable[bool]], spent: Callable[[], bool]
) -> list[T]:
    """Zeller's delta debugging: a 1-minimal sublist of ``items`` (assumed failing) that still fails, in
    the original order; stops early, with the smallest failing sublist so far, when ``spent()``."""
    granularity = 2
    while len(items) >= 2 and not spent():
        chunks = _split(items, granularity)
        for chunk in chunks:
            if await fails(chunk):
                items, granularity = chunk, 2
                break
        else:
            for i in range(len(chunks)):
                complement = [item for j, chunk in enumerate(chunks) if j != i for item in chunk]
                if await fails(complement):
                    items, granularity = complement, max(granularity - 1, 2)
                    break
            else:
                if granularity >= len(items):
                    break
                granularity = min(len(items), granularity * 2)
    return items


def _split(items: list[T], parts: int) -> list[list[T]]:
    size, extra = divmod(len(items), parts)
    chunks, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        chunks.append(items[start:end])
        start = end
    return [chunk for chunk in chunks if chunk]


# --- for people ------------------------------------------------------------------------------------

PAYLOAD_WIDTH = 120


def describe(script: Script) -> str:
    """A short listing: the faults, then each account (segment, zone, due_in_days, ...) and its actions,
    one a line, as ``+2d03h17m customer_reply via reply_webhook {"text": "STOP", ...}``."""
    lines = [
        f"seed {script.seed}, {script.days} days, {len(script.accounts)} accounts; {_faults(script.faults)}"
    ]
    for account in script.accounts:
        lines.append(_account_line(account.account))
        for action in account.actions:
            lines.append(f"  {_action_line(action)}")
        if not account.actions:
            lines.append("  (no actions)")
    return "\n".join(lines)


def _faults(faults: Faults) -> str:
    rates = [f"{name} {getattr(faults, name):g}" for name in RATES if getattr(faults, name)]
    outages = [f"outage {offset(start)} to {offset(end)}" for start, end in faults.outages]
    return "faults: " + (", ".join(rates + outages) or "none")


def _account_line(account: dict[str, Any]) -> str:
    parts = [
        str(account.get("account_id")),
        str(account.get("segment")),
        str(account.get("timezone")),
        f"due_in_days={account.get('due_in_days')}",
        f"{account.get('amount_due')} {account.get('currency')}",
        str(account.get("locale")),
        str(account.get("phone")),
    ]
    if "birthday_in_days" in account:
        parts.append(f"birthday_in_days={account['birthday_in_days']}")
    if "contact_after" in account or "contact_before" in account:
        parts.append(
            f"contact {account.get('contact_after') or '..'}-{account.get('contact_before') or '..'}"
        )
    return " ".join(parts)


def _action_line(action: Action) -> str:
    payload = {k: v for k, v in action.payload.items() if k != "message_id"}
    text = json.dumps(payload, ensure_ascii=False)
    if len(text) > PAYLOAD_WIDTH:
        text = f"{text[: PAYLOAD_WIDTH - 20]}... ({len(text)} chars)"
    copies = f" x{action.copies}" if action.copies != 1 else ""
    when = offset(action.after)
    if action.trigger == "retrying":
        when = f"{when} after a message of its is first refused in an outage,"
    return f"{when} {action.name} via {action.channel}{copies} {text}"


def offset(after: timedelta) -> str:
    """``+2d03h17m`` (seconds dropped)."""
    minutes = int(after.total_seconds()) // 60
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    return f"+{days}d{hours:02d}h{minutes:02d}m"

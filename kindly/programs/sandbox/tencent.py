"""Placeholder: the sandbox's side of the tencent SMS API."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter

from kindly.programs.sandbox.config import SandboxSettings
from kindly.programs.sandbox.limits import FrequencyLimiter
from kindly.programs.sandbox.store import Mailbox, StoredMessage


def router(
    settings: SandboxSettings,
    box: Mailbox,
    limiter: FrequencyLimiter,
    receipt_later: Callable[[SandboxSettings, Mailbox, StoredMessage], None],
) -> APIRouter:
    return APIRouter()


async def push_receipt(settings: SandboxSettings, box: Mailbox, message: StoredMessage) -> None:
    return None


async def push_reply(settings: SandboxSettings, box: Mailbox, message: StoredMessage) -> None:
    return None

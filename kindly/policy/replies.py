"""What a customer's reply asks for: opt out, help, or just an answer to count."""

from __future__ import annotations

from enum import StrEnum


class ReplyIntent(StrEnum):
    OPT_OUT = "opt_out"
    HELP = "help"
    OTHER = "other"


OPT_OUT_KEYWORDS = frozenset({"STOP", "退订", "TD"})
HELP_KEYWORDS = frozenset({"HELP", "帮助"})


def classify_reply(text: str) -> ReplyIntent:
    """A reply that is exactly a keyword (any case, surrounding spaces) carries that intent."""
    word = text.strip().upper()
    if word in OPT_OUT_KEYWORDS:
        return ReplyIntent.OPT_OUT
    if word in HELP_KEYWORDS:
        return ReplyIntent.HELP
    return ReplyIntent.OTHER

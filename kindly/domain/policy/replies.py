"""What a customer's reply asks for: opt out, help, a person (hardship or dispute), or just an answer.

Keyword families are data. Opt-out and help are whole-message keywords (``STOP``, `` td ``): a
customer who writes "please stop calling my mother" is heard by a person, not by a keyword. Hardship
and dispute phrases are found anywhere in the message, in Chinese or English, any case.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class ReplyIntent(StrEnum):
    OPT_OUT = "opt_out"
    HELP = "help"
    HARDSHIP = "hardship"
    DISPUTE = "dispute"
    OTHER = "other"


class ReplyKeywords(BaseModel):
    """The keyword families, configurable per segment through the contact policy."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    opt_out: list[str] = Field(
        default_factory=lambda: ["STOP", "END", "CANCEL", "UNSUBSCRIBE", "QUIT", "退订", "TD", "T"]
    )
    help: list[str] = Field(default_factory=lambda: ["HELP", "帮助"])
    hardship: list[str] = Field(
        default_factory=lambda: [
            "lost my job",
            "unemployed",
            "laid off",
            "hardship",
            "can't pay",
            "cannot pay",
            "hospital",
            "medical bills",
            "失业",
            "下岗",
            "困难",
            "没钱",
            "还不起",
            "生病",
            "住院",
        ]
    )
    dispute: list[str] = Field(
        default_factory=lambda: [
            "dispute",
            "not my loan",
            "never borrowed",
            "wrong amount",
            "identity theft",
            "争议",
            "不是我的",
            "没借过",
            "金额不对",
            "投诉",
            "盗用",
        ]
    )


DEFAULT_KEYWORDS = ReplyKeywords()


def classify_reply(text: str, keywords: ReplyKeywords = DEFAULT_KEYWORDS) -> ReplyIntent:
    """The reply's intent; dispute and hardship win over everything, so a person always hears them."""
    lowered = text.casefold()
    if any(phrase.casefold() in lowered for phrase in keywords.dispute):
        return ReplyIntent.DISPUTE
    if any(phrase.casefold() in lowered for phrase in keywords.hardship):
        return ReplyIntent.HARDSHIP
    word = text.strip().upper()
    if word in {k.upper() for k in keywords.opt_out}:
        return ReplyIntent.OPT_OUT
    if word in {k.upper() for k in keywords.help}:
        return ReplyIntent.HELP
    return ReplyIntent.OTHER

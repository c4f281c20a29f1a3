"""What a customer's reply asks for: opt out, help, a person (hardship or dispute), a complaint, or just
an answer.

Keyword families are data. Opt-out and help are whole-message keywords (``STOP``, `` td ``): a
customer who writes "please stop calling my mother" is heard by a person, not by a keyword. Complaint,
hardship and dispute phrases are found anywhere in the message, in Chinese or English, any case.

A complaint is about how the lender collects (投诉, the regulator's hotline 12378, "I will report you");
a dispute is about the debt itself (不是我的, "wrong amount"). A reply with both is a complaint: its
handling (``kindly.domain.complaints``) holds contact and puts it before a person with deadlines.
"""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class ReplyIntent(StrEnum):
    OPT_OUT = "opt_out"
    HELP = "help"
    HARDSHIP = "hardship"
    DISPUTE = "dispute"
    COMPLAINT = "complaint"
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
            "盗用",
        ]
    )
    complaint: list[str] = Field(
        default_factory=lambda: [
            "complaint",
            "complain",
            "report you",
            "regulator",
            "ombudsman",
            "CFPB",
            "harassment",
            "harassing",
            "投诉",
            "12378",
            "举报",
            "监管",
            "骚扰",
        ]
    )


DEFAULT_KEYWORDS = ReplyKeywords()


def _found(phrase: str, lowered: str) -> bool:
    """Whether ``phrase`` is in the casefolded text; a number (a hotline such as 12378) only as a whole
    number, not inside a longer one."""
    if phrase.isdigit():
        return re.search(rf"(?<!\d){phrase}(?!\d)", lowered) is not None
    return phrase.casefold() in lowered


def classify_reply(
    text: str, keywords: ReplyKeywords = DEFAULT_KEYWORDS, *, complaints: bool = True
) -> ReplyIntent:
    """The reply's intent. A complaint wins over everything, then a dispute and hardship, so a person
    always hears them. ``complaints`` is False for runs recorded before complaints were told apart:
    they hear a complaint keyword the 1.0 dispute list also holds (投诉) as a dispute."""
    lowered = text.casefold()
    if complaints and any(_found(phrase, lowered) for phrase in keywords.complaint):
        return ReplyIntent.COMPLAINT
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

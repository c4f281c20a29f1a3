"""How money, dates and SMS length are written: the same for rendering and for the content check."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal

__all__ = ["format_date", "format_money", "sms_segments"]

_CENT = Decimal("0.01")
# Fixed English month abbreviations: the process locale must never change what a customer reads.
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def format_money(amount: Decimal, currency: str, locale: str) -> str:
    """Show an amount the way the customer's locale writes it, always to the cent.

    ``en-US``: ``CNY 1,234.50``; ``zh-CN``: ``1,234.50元`` for CNY, else ``1,234.50 USD``.
    """
    number = f"{Decimal(amount).quantize(_CENT, rounding=ROUND_HALF_UP):,.2f}"
    if locale == "zh-CN":
        return f"{number}元" if currency == "CNY" else f"{number} {currency}"
    return f"{currency} {number}"


def format_date(value: dt.date, locale: str) -> str:
    """Show a date unambiguously for the locale: ``Dec 15, 2026`` or ``2026年12月15日``."""
    if locale == "zh-CN":
        return f"{value.year}年{value.month}月{value.day}日"
    return f"{_MONTHS[value.month - 1]} {value.day}, {value.year}"


# GSM 03.38 default alphabet (one septet each) and its extension table (escape + char: two).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = frozenset("^{}\\[~]|€\f")


def _count_parts(units: Sequence[int], single: int, per_part: int) -> int:
    """Parts needed for characters of the given unit sizes, never splitting one character."""
    total = sum(units)
    if total == 0:
        return 0
    if total <= single:
        return 1
    parts, used = 1, 0
    for size in units:
        if used + size > per_part:
            parts += 1
            used = 0
        used += size
    return parts


def sms_segments(body: str) -> int:
    """How many SMS parts the carrier bills for ``body``; 0 for an empty body.

    GSM-7 when every character is in the GSM 03.38 alphabet (extension characters take two
    septets): 160 in one part, 153 per part when split. Otherwise UCS-2: 70 in one part, 67 per
    part, characters outside the BMP taking two code units.
    """
    if all(ch in _GSM_BASIC or ch in _GSM_EXTENDED for ch in body):
        units = [2 if ch in _GSM_EXTENDED else 1 for ch in body]
        return _count_parts(units, 160, 153)
    units = [2 if ord(ch) > 0xFFFF else 1 for ch in body]
    return _count_parts(units, 70, 67)

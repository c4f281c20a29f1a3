"""The console's words in zh-CN and en-US: one flat JSON catalog per locale (``locales/<locale>.json``),
``{name}`` placeholders filled by ``t(key, name=...)``.

Catalogs are data, not code, so a translator edits one file and a test checks that both catalogs have the
same keys and placeholders, and that every key a template names exists. A key missing from a catalog
shows as the English text, or as the key itself: a page never fails for want of a word.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from kindly.domain.contract import SUPPORTED_LOCALES

LOCALES_DIR = Path(__file__).parent / "locales"
DEFAULT_LOCALE = "en-US"
LOCALES: tuple[str, ...] = tuple(SUPPORTED_LOCALES)
LOCALE_NAMES = {"zh-CN": "简体中文", "en-US": "English"}
"""Each locale in its own words, as the language switcher offers it."""

Translate = Callable[..., str]

logger = logging.getLogger(__name__)


class Catalogs:
    """Every locale's messages, read once at start."""

    def __init__(self, messages: Mapping[str, Mapping[str, str]]) -> None:
        self._messages = {locale: dict(found) for locale, found in messages.items()}

    @classmethod
    def load(cls, directory: Path = LOCALES_DIR) -> Catalogs:
        return cls({locale: _read(directory / f"{locale}.json") for locale in LOCALES})

    def has(self, key: str) -> bool:
        return key in self._messages[DEFAULT_LOCALE]

    def translator(self, locale: str) -> Translate:
        """``t(key, **values)`` in ``locale``: the message with its placeholders filled."""
        own = self._messages.get(locale, {})
        fallback = self._messages[DEFAULT_LOCALE]

        def t(key: str, **values: object) -> str:
            message = own.get(key) or fallback.get(key)
            if message is None:
                logger.warning("console catalog has no key %r", key)
                return key
            try:
                return message.format(**values)
            except (KeyError, IndexError, ValueError):
                logger.warning("console message %r in %s lacks a value it names", key, locale)
                return message

        return t


def _read(path: Path) -> dict[str, str]:
    loaded = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(loaded, dict) or not all(isinstance(v, str) for v in loaded.values()):
        raise ValueError(f"{path}: a catalog is one JSON object of strings")
    return loaded


def negotiate(accept_language: str | None) -> str | None:
    """The supported locale the browser's ``Accept-Language`` prefers most, or None. ``zh``, ``zh-Hans``,
    ``zh-CN`` (and other Chinese tags) mean zh-CN; every ``en`` means en-US."""
    if not accept_language:
        return None
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        locale = _locale_of(tag.strip().lower())
        if locale is not None and quality > 0:
            ranked.append((-quality, position, locale))
    return min(ranked)[2] if ranked else None


def _locale_of(tag: str) -> str | None:
    if tag == "zh" or tag.startswith("zh-"):
        return "zh-CN"
    if tag == "en" or tag.startswith("en-"):
        return "en-US"
    return None

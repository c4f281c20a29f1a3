"""The specialist queue's vocabulary: the resolutions a case page offers (who may choose each, the fields
it asks for, its words in the user's language) and the kinds of case. Kept apart from the pages so that
the catalogs' test and the pages read the same table."""

from __future__ import annotations

from dataclasses import dataclass

from kindly.domain.cases import CaseKind
from kindly.domain.roles import Permission
from kindly.programs.case_queue import ResolutionKind
from kindly.programs.console.i18n import Translate
from kindly.store.cases import UNKNOWN_KIND

KINDS: tuple[str, ...] = (*(kind.value for kind in CaseKind), UNKNOWN_KIND)


@dataclass(frozen=True)
class Choice:
    """A resolution as the case page offers it: who may choose it and the fields it asks for."""

    kind: ResolutionKind
    permission: Permission
    fields: tuple[str, ...]


CHOICES: dict[str, Choice] = {
    choice.kind.value: choice
    for choice in (
        Choice(ResolutionKind.RESUME, Permission.PAUSE, ()),
        Choice(ResolutionKind.PROMISE, Permission.PROMISE, ("date",)),
        Choice(ResolutionKind.PAUSE, Permission.PAUSE, ("until", "reason")),
        Choice(ResolutionKind.SETTLE, Permission.SETTLE, ("amount", "reference")),
        Choice(ResolutionKind.CLOSE, Permission.CLOSE, ("reason",)),
    )
}


@dataclass(frozen=True)
class Words:
    name: str
    help: str
    button: str
    confirm: str
    effect: str


def resolution_words(t: Translate, reference: str = "") -> dict[str, Words]:
    """Each resolution's words (written out, so the catalogs' test finds every key); its confirmation
    question names the account by ``reference``."""
    return {
        "resume": Words(
            t("resolve.resume"),
            t("resolve.resume.help"),
            t("resolve.resume.button"),
            t("resolve.resume.confirm", reference=reference),
            t("resolve.resume.effect"),
        ),
        "promise": Words(
            t("resolve.promise"),
            t("resolve.promise.help"),
            t("resolve.promise.button"),
            t("resolve.promise.confirm", reference=reference),
            t("resolve.promise.effect"),
        ),
        "pause": Words(
            t("resolve.pause"),
            t("resolve.pause.help"),
            t("resolve.pause.button"),
            t("resolve.pause.confirm", reference=reference),
            t("resolve.pause.effect"),
        ),
        "settle": Words(
            t("resolve.settle"),
            t("resolve.settle.help"),
            t("resolve.settle.button"),
            t("resolve.settle.confirm", reference=reference),
            t("resolve.settle.effect"),
        ),
        "close": Words(
            t("resolve.close"),
            t("resolve.close.help"),
            t("resolve.close.button"),
            t("resolve.close.confirm", reference=reference),
            t("resolve.close.effect"),
        ),
    }


def kind_words(t: Translate) -> dict[str, str]:
    """Each kind of case in the user's words (written out, so the catalogs' test finds every key)."""
    return {
        CaseKind.HARDSHIP: t("case_kind.hardship"),
        CaseKind.DISPUTE: t("case_kind.dispute"),
        CaseKind.WRONG_NUMBER: t("case_kind.wrong_number"),
        CaseKind.REFUSED: t("case_kind.refused"),
        CaseKind.UNDELIVERABLE: t("case_kind.undeliverable"),
        CaseKind.NO_CONTACT: t("case_kind.no_contact"),
        UNKNOWN_KIND: t("case_kind.unknown"),
    }

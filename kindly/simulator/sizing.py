"""How many SMS parts a message bills: the real renderer and the real part count, on the account's own
values, remembered per template, locale, currency and amount length, and per segment, region and named
variant (which pick the template's variant and the consequences it states): the only things that change
a message's length between accounts (the reference is masked to a fixed length, the link has one)."""

from __future__ import annotations

from datetime import datetime

from kindly.domain.actions import message_context
from kindly.domain.contract import TemplateName
from kindly.domain.messages.content_check import carries_link
from kindly.domain.messages.formatting import sms_segments
from kindly.domain.messages.links import sample_link
from kindly.domain.messages.rendering import MessageRenderer
from kindly.domain.state import AccountState

_Key = tuple[TemplateName, str, str, int, bool, bool, str, str | None, str | None]


class SmsSizer:
    def __init__(self, renderer: MessageRenderer, public_base_url: str) -> None:
        self._renderer = renderer
        self._link = sample_link(public_base_url)
        self._known: dict[_Key, int] = {}

    def segments(self, state: AccountState, template: TemplateName, now: datetime) -> int:
        account = state.account
        key: _Key = (
            template,
            account.locale,
            account.currency,
            len(str(state.amount_due)),
            state.promise_date is not None,
            state.plan is not None,
            account.segment,
            account.region,
            state.policy.template_variant,
        )
        known = self._known.get(key)
        if known is None:
            context = message_context(state, now)
            if carries_link(template):
                context = context.model_copy(update={"link": self._link})
            known = self._known[key] = sms_segments(self._renderer.render(template, account.locale, context))
        return known

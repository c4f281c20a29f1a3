"""A visit to a link: the token resolved to its account, and the account asked what it may offer; then a
choice sent to the account as the ``self_service`` update, and its refusal turned into the page that says
why.

Every dead end answers with ``pages.neutral``: an unknown, malformed or tampered token (404), an expired
link (410), an account that has ended or is gone (410). An unknown and an expired token take the same
path, one lookup by the token's hash and the same page, so neither the page nor its timing tells which.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from kindly.domain.contract import QueryName, SignalName, workflow_id_for
from kindly.domain.plans import SelfServiceChoice, SelfServiceChoiceKind, SelfServiceOffer
from kindly.errors import (
    AccountClosedError,
    AccountNotFoundError,
    AccountStateConflictError,
    ActionTimeoutError,
    InvalidActionValueError,
)
from kindly.programs import operations
from kindly.programs.selfservice.context import SelfServiceContext
from kindly.programs.selfservice.pages import neutral, notice
from kindly.store.self_service_links import LinkExpired

logger = logging.getLogger(__name__)

QUERY_TIMEOUT = timedelta(seconds=15)
"""A query that meets a busy workflow task waits for the worker; the customer should not wait longer."""


@dataclass(frozen=True)
class Visit:
    """A live link and what its account offers now."""

    token: str
    account_id: str
    touchpoint: int
    offer: SelfServiceOffer

    def choice(self, kind: SelfServiceChoiceKind, **values: object) -> SelfServiceChoice:
        return SelfServiceChoice.model_validate({"choice": kind, "touchpoint": self.touchpoint, **values})


@dataclass(frozen=True)
class Refused:
    """The account refused the choice for a value: the field it named (None: none)."""

    field: str | None


@dataclass(frozen=True)
class Unconfirmed:
    """No worker answered in time: the choice is not applied yet, and may still be."""


async def open_visit(request: Request, ss: SelfServiceContext, token: str) -> Visit | Response:
    """The visit, or the page that ends it (neutral, or "try again" when Temporal did not answer)."""
    now = datetime.now(UTC)
    link = await run_in_threadpool(ss.links.resolve, token, now)
    if link is None:
        return neutral(request, 404)
    if isinstance(link, LinkExpired):
        return neutral(request, 410)
    offer = await ask_offer(request, ss, link.account_id, token)
    if isinstance(offer, Response):
        return offer
    if offer.ended:
        return neutral(request, 410)
    return Visit(token=token, account_id=link.account_id, touchpoint=link.touchpoint, offer=offer)


async def ask_offer(
    request: Request, ss: SelfServiceContext, account_id: str, token: str
) -> SelfServiceOffer | Response:
    handle = ss.client.get_workflow_handle(workflow_id_for(account_id))
    try:
        offer: SelfServiceOffer = await handle.query(
            QueryName.SELF_SERVICE, result_type=SelfServiceOffer, rpc_timeout=QUERY_TIMEOUT
        )
    except WorkflowQueryFailedError:  # the run is preparing itself (a moment after the start)
        return notice(request, "busy", 503, token)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:  # the account's history is gone: it ended long ago
            return neutral(request, 410)
        logger.warning("self-service page: Temporal did not answer the offer query (%s)", err.status.name)
        return notice(request, "busy", 503, token)
    return offer


async def submit(
    request: Request, ss: SelfServiceContext, visit: Visit, choice: SelfServiceChoice
) -> Refused | Unconfirmed | Response | None:
    """Sends the choice; None when the account took it, ``Refused`` naming the field of a value it
    refused (the caller shows the form again), ``Unconfirmed`` when no answer came in time, else the
    page to answer with."""
    try:
        await operations.act_on_account(
            ss.client, visit.account_id, SignalName.SELF_SERVICE, choice, timeout=ss.config.answer_timeout
        )
    except InvalidActionValueError as err:
        return Refused(err.field)
    except AccountStateConflictError:
        return await _conflict(request, ss, visit, choice)
    except (AccountClosedError, AccountNotFoundError):
        return neutral(request, 410)
    except ActionTimeoutError:
        logger.warning("self-service page: no worker answered a %s choice in time", choice.choice.value)
        return Unconfirmed()
    except RPCError as err:
        logger.warning("self-service page: Temporal did not take a choice (%s)", err.status.name)
        return notice(request, "busy", 503, visit.token)
    return None


async def _conflict(
    request: Request, ss: SelfServiceContext, visit: Visit, choice: SelfServiceChoice
) -> Response:
    """The account's state forbids the choice: it has ended (the neutral page), a plan was chosen already
    (a replayed confirmation: say so, with the plan), or anything else ("call us")."""
    offer = await ask_offer(request, ss, visit.account_id, visit.token)
    if isinstance(offer, Response):
        return offer
    if offer.ended:
        return neutral(request, 410)
    plan = offer.plan
    if choice.choice is SelfServiceChoiceKind.PLAN and plan is not None and plan.status == "active":
        return notice(request, "plan_chosen", 409, visit.token, plan=plan, currency=offer.currency)
    return notice(request, "conflict", 409, visit.token)

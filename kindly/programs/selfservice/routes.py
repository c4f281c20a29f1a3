"""The pages a link opens with GET: the account's page, and the confirmation after a choice.

Both read the account afresh (the ``self_service`` query): a confirmation shows what the account holds
now (the promised date, the plan), never what an address claims.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from kindly.domain.plans import SelfServiceChoiceKind
from kindly.programs.selfservice.context import SelfService, SelfServiceContext
from kindly.programs.selfservice.forms import FormErrors
from kindly.programs.selfservice.pages import neutral, render
from kindly.programs.selfservice.visits import Visit, open_visit

router = APIRouter(include_in_schema=False)

DONE = frozenset(
    {
        SelfServiceChoiceKind.PROMISE,
        SelfServiceChoiceKind.PLAN,
        SelfServiceChoiceKind.HARDSHIP,
        SelfServiceChoiceKind.DISPUTE,
        SelfServiceChoiceKind.OPT_OUT,
    }
)
"""The choices with a confirmation page ("pay now" goes on to the lender's payment page)."""


def account_page(
    request: Request,
    ss: SelfServiceContext,
    visit: Visit,
    errors: FormErrors | None = None,
    status_code: int = 200,
) -> Response:
    """The account's page; with ``errors``, the form they belong to shows them beside its fields."""
    return render(
        request,
        "page.html",
        {
            "offer": visit.offer,
            "pay_now": ss.config.payment is not None,
            "errors": errors.errors if errors else {},
            "values": errors.values if errors else {},
        },
        status_code=status_code,
        token=visit.token,
    )


@router.get("/{token}")
async def page(request: Request, token: str, ss: SelfService) -> Response:
    visit = await open_visit(request, ss, token)
    if isinstance(visit, Response):
        return visit
    return account_page(request, ss, visit)


@router.get("/{token}/done/{kind}")
async def done(request: Request, token: str, kind: str, ss: SelfService) -> Response:
    visit = await open_visit(request, ss, token)
    if isinstance(visit, Response):
        return visit
    if kind not in DONE:
        return neutral(request, 404)
    return render(request, "done.html", {"kind": kind, "offer": visit.offer}, token=token)

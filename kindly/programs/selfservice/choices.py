"""The choices, each a plain form POST that works without JavaScript and answers with a redirect (303) to
its confirmation, so that reloading the confirmation sends nothing again.

Every choice reaches the account as the ``self_service`` update with the link's touchpoint; the form
carries no account id (the token in the address is the only key). The account records the choice in its
timeline and audit log itself. A refused value comes back on the account's page beside its field (422),
a refused choice as a short page (409, "call us"), an unanswered one as "not confirmed yet" (504).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from kindly.domain.plans import SelfServiceChoiceKind, plan_schedule
from kindly.programs.selfservice.context import SelfService, SelfServiceContext
from kindly.programs.selfservice.forms import FormErrors, date_field, plan_request, refused_field_key, text
from kindly.programs.selfservice.pages import notice, render, with_lang
from kindly.programs.selfservice.payment import payment_reference, payment_url
from kindly.programs.selfservice.routes import account_page
from kindly.programs.selfservice.visits import Refused, Unconfirmed, Visit, open_visit, submit

router = APIRouter(include_in_schema=False)


def _confirmed(request: Request, visit: Visit, kind: SelfServiceChoiceKind) -> Response:
    target = with_lang(f"{request.scope.get('root_path', '')}/{visit.token}/done/{kind.value}", request)
    return RedirectResponse(target, status_code=303)


async def _send(
    request: Request,
    ss: SelfServiceContext,
    visit: Visit,
    kind: SelfServiceChoiceKind,
    form: str,
    **values: object,
) -> Response:
    """Sends a choice; its confirmation, or the page that says why not."""
    outcome = await submit(request, ss, visit, visit.choice(kind, **values))
    if outcome is None:
        return _confirmed(request, visit, kind)
    if isinstance(outcome, Refused):
        errors = FormErrors(form)
        field_name, key = refused_field_key(form, outcome.field)
        errors.errors[field_name] = key
        errors.values.update({f"{form}.{name}": str(value) for name, value in values.items()})
        return account_page(request, ss, visit, errors, status_code=422)
    if isinstance(outcome, Unconfirmed):
        return notice(request, "pending", 504, visit.token)
    return outcome


@router.post("/{token}/pay")
async def pay_now(request: Request, token: str, ss: SelfService) -> Response:
    """Records that the customer went on to pay, then sends them to the lender's payment page with a
    signed reference. A choice the account did not confirm in time does not hold the customer back:
    paying matters more than the record of it."""
    visit = await open_visit(request, ss, token)
    if isinstance(visit, Response):
        return visit
    payment = ss.config.payment
    if payment is None:
        return notice(request, "conflict", 409, token)
    outcome = await submit(request, ss, visit, visit.choice(SelfServiceChoiceKind.PAY_NOW))
    if isinstance(outcome, Response):
        return outcome
    if isinstance(outcome, Refused):  # "pay now" has no value to refuse; a newer rule might
        return notice(request, "conflict", 409, token)
    reference = payment_reference(payment.secret, visit.account_id, visit.touchpoint)
    return RedirectResponse(payment_url(payment.url_template, reference), status_code=303)


@router.post("/{token}/promise")
async def promise(request: Request, token: str, ss: SelfService) -> Response:
    visit = await open_visit(request, ss, token)
    if isinstance(visit, Response):
        return visit
    errors = FormErrors("promise")
    promised = date_field(await request.form(), "date", errors)
    if errors or promised is None:
        return account_page(request, ss, visit, errors, status_code=422)
    return await _send(request, ss, visit, SelfServiceChoiceKind.PROMISE, "promise", date=promised)


@router.post("/{token}/plan")
async def plan(request: Request, token: str, ss: SelfService) -> Response:
    """Two steps: the plan's schedule with a Confirm button, then (``confirm=yes``) the choice itself."""
    visit = await open_visit(request, ss, token)
    if isinstance(visit, Response):
        return visit
    offer = visit.offer
    if not offer.plan_options:
        if offer.plan is not None and offer.plan.status == "active":
            return notice(request, "plan_chosen", 409, token, plan=offer.plan, currency=offer.currency)
        return notice(request, "conflict", 409, token)
    form = await request.form()
    errors = FormErrors("plan")
    confirmed = text(form, "confirm", errors) == "yes"
    asked = plan_request(form, offer, errors)
    if errors or asked is None:
        return account_page(request, ss, visit, errors, status_code=422)
    count, first = asked.option.instalments, asked.first
    if confirmed:
        return await _send(
            request, ss, visit, SelfServiceChoiceKind.PLAN, "plan", instalments=count, date=first
        )
    schedule = plan_schedule(offer.amount_due, count, first, offer.plan_interval_days)
    context = {"offer": offer, "schedule_rows": schedule, "count": count, "first": first.isoformat()}
    return render(request, "plan_confirm.html", context, token=token)


async def _without_values(
    request: Request, token: str, ss: SelfServiceContext, kind: SelfServiceChoiceKind
) -> Response:
    visit = await open_visit(request, ss, token)
    if isinstance(visit, Response):
        return visit
    return await _send(request, ss, visit, kind, "help")


@router.post("/{token}/hardship")
async def hardship(request: Request, token: str, ss: SelfService) -> Response:
    """Hardship ("I can't pay right now"): a person of the specialist team takes the account."""
    return await _without_values(request, token, ss, SelfServiceChoiceKind.HARDSHIP)


@router.post("/{token}/dispute")
async def dispute(request: Request, token: str, ss: SelfService) -> Response:
    """A dispute ("this is not my loan"): a person of the specialist team takes the account."""
    return await _without_values(request, token, ss, SelfServiceChoiceKind.DISPUTE)


@router.post("/{token}/stop-sms")
async def stop_sms(request: Request, token: str, ss: SelfService) -> Response:
    """No more SMS to the number (one confirmation goes); contact by phone goes on under the policy."""
    return await _without_values(request, token, ss, SelfServiceChoiceKind.OPT_OUT)

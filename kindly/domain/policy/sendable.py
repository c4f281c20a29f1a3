"""Which templates a contact policy can send: what a mainland provider must have registered before a worker
sends through it (``kindly.domain.messages.registered_check``).

The cadence's reminders follow from the policy (``schedule``, ``tones``): ``pre_due`` for a reminder days
before the due date, ``due_today`` for one on it; the overdue reminders in the segment's tone (``gentle``
sends ``gentle_reminder`` where ``standard`` sends ``first_overdue`` and ``follow_up``); ``instalment_offer``
when the policy offers one. The rest can reach any account whatever its policy: ``broken_promise`` (a
promise can be recorded on any account: by the customer's page, the console, the API, a call outcome),
``instalment_due`` and ``plan_broken`` (every policy offers instalment plans: ``plan_instalment_counts`` is
never empty), and the replies a customer asks for, ``help`` and ``opt_out_confirmation``.

Pure. A run keeps the policy it resolved when it started, so a worker whose policy file changed may still
send, for older runs, what an earlier policy could; and an experiment's arm may change the tone, the
pre-due days and the offer (``arm_policies``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from pydantic import ValidationError

from kindly.domain.contract import TemplateName
from kindly.domain.experiments import ExperimentDefinition
from kindly.domain.policy.model import ContactPolicy

__all__ = ["ALWAYS_SENDABLE", "arm_policies", "policies_in_use", "sendable_in", "sendable_templates"]

ALWAYS_SENDABLE = frozenset(
    {
        TemplateName.BROKEN_PROMISE,
        TemplateName.INSTALMENT_DUE,
        TemplateName.PLAN_BROKEN,
        TemplateName.HELP,
        TemplateName.OPT_OUT_CONFIRMATION,
    }
)
"""What any policy can send: after a promise, for a plan, and the replies a customer asks for."""


def sendable_templates(policy: ContactPolicy) -> set[TemplateName]:
    """Every template a run on ``policy`` can send."""
    sendable = set(ALWAYS_SENDABLE)
    if any(days > 0 for days in policy.pre_due_days):
        sendable.add(TemplateName.PRE_DUE)
    if 0 in policy.pre_due_days:
        sendable.add(TemplateName.DUE_TODAY)
    if policy.tone == "gentle":
        # ``tones.choose_template``: a gentle segment's first overdue and follow-up reminders.
        sendable.add(TemplateName.GENTLE_REMINDER)
    else:
        sendable |= {TemplateName.FIRST_OVERDUE, TemplateName.FOLLOW_UP}
    if policy.instalment_offer_after_days is not None:
        sendable.add(TemplateName.INSTALMENT_OFFER)
    return sendable


def sendable_in(policies: Iterable[ContactPolicy]) -> set[TemplateName]:
    """Every template a run on any of ``policies`` can send."""
    sendable: set[TemplateName] = set()
    for policy in policies:
        sendable |= sendable_templates(policy)
    return sendable


def arm_policies(
    experiments: Iterable[ExperimentDefinition], policies: Mapping[str, ContactPolicy]
) -> list[ContactPolicy]:
    """The policies the arms of ``experiments`` send on in the segments of ``policies``: each arm's overlay
    on each of its experiment's segments. A shadow arm sends nothing of its own; an overlay the segment's
    policy now refuses cannot run, and is left out."""
    return [policy for segment, policy in _arm_policies(experiments, policies)]


def policies_in_use(
    experiments: Iterable[ExperimentDefinition], policies: Mapping[str, ContactPolicy]
) -> dict[str, list[ContactPolicy]]:
    """Each segment's policy and its running experiments' arms' (``arm_policies``), by segment: what a
    segment's template variants and their consequence facts are checked against."""
    found = {segment: [policy] for segment, policy in policies.items()}
    for segment, policy in _arm_policies(experiments, policies):
        found[segment].append(policy)
    return found


def _arm_policies(
    experiments: Iterable[ExperimentDefinition], policies: Mapping[str, ContactPolicy]
) -> list[tuple[str, ContactPolicy]]:
    found: list[tuple[str, ContactPolicy]] = []
    for definition in experiments:
        for segment in definition.segments:
            policy = policies.get(segment)
            for arm in definition.arms:
                if policy is None or arm.shadow:
                    continue
                try:
                    found.append((segment, arm.overlay.applied_to(policy)))
                except (ValidationError, ValueError):
                    continue
    return found

"""The rule sets a run follows, asked of Temporal once, as the run starts (``workflow.patched``).

A run started under older code replays with the rules it ran with: each later set is a patch whose
marker only runs that started after it carry. A run keeps its rules for life, and continue-as-new
starts the next run on the newest.

- ``kindly-1.1``: stricter refusals of signals, a wait for the day's window recorded as a deferral,
  ``Currency`` and ``TimeZone`` kept true.
- ``kindly-1.2``: call-backs at the customer's time, a resume that hands a specialist's account back
  to the automated cadence, and the facts the built-in work queues order tasks and cases by, sent with
  each hand-off.
- ``kindly-1.3``: a reply with a complaint keyword (投诉, 12378) opens a complaint, which holds contact
  and carries deadlines, instead of a dispute's hand-off to the specialists.
"""

# No ``from __future__ import annotations``: imported by the workflow module, which the SDK inspects.

from dataclasses import dataclass

from temporalio import workflow

RULES_1_1 = "kindly-1.1"
RULES_1_2 = "kindly-1.2"
RULES_1_3 = "kindly-1.3"


@dataclass(frozen=True)
class RunRules:
    v1_1: bool = False
    v1_2: bool = False
    v1_3: bool = False


def rules_of_this_run() -> RunRules:
    """Which rule sets this run follows; called once, at the start of ``run``, in this order."""
    v1_1 = workflow.patched(RULES_1_1)
    v1_2 = workflow.patched(RULES_1_2)
    v1_3 = workflow.patched(RULES_1_3)
    return RunRules(v1_1=v1_1, v1_2=v1_2, v1_3=v1_3)

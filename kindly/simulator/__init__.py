"""Kindly's portfolio simulator: a strategy's future, run on the workflow's own decisions.

``simulate`` runs a book of accounts through simulated days with the same ``plan_next`` and the same
state transitions as ``OverdueAccountWorkflow``; customers respond as a ``ResponseModel`` says; the
``Tally`` it returns becomes the per-day figures of ``kindly.simulator.report``.
"""

from kindly.simulator.account import AccountRun
from kindly.simulator.observed import observed_response_model
from kindly.simulator.portfolio import SyntheticBook, synthetic_book
from kindly.simulator.recorder import TraceEntry
from kindly.simulator.responses import (
    CallOdds,
    ResponseModel,
    TouchOdds,
    TouchRule,
    dpd_bucket,
    load_response_model,
    parse_response_model,
)
from kindly.simulator.run import Horizon, Scenario, simulate, trace_account
from kindly.simulator.tally import Tally
from kindly.simulator.world import Happening, ModelWorld, ScriptedWorld, World

__all__ = [
    "AccountRun",
    "CallOdds",
    "Happening",
    "Horizon",
    "ModelWorld",
    "ResponseModel",
    "Scenario",
    "ScriptedWorld",
    "SyntheticBook",
    "Tally",
    "TouchOdds",
    "TouchRule",
    "TraceEntry",
    "World",
    "dpd_bucket",
    "load_response_model",
    "observed_response_model",
    "parse_response_model",
    "simulate",
    "synthetic_book",
    "trace_account",
]

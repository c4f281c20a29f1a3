"""The workflow sandbox: production workers pass Kindly's workflow package through it, the tests don't.

Passed through, the package is imported once per worker and every workflow instance shares its
globals (``worker.workflow_runner``); these tests keep that safe: nothing in it is mutable state, and
the test suite itself runs in the strict mode that lets the sandbox's restrictions guard that code.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import types
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, TypeVar

from temporalio.common import RetryPolicy

import workflows
from kindly.programs.worker import WORKFLOW_PACKAGE, workflow_runner
from kindly.settings import Settings

IMMUTABLE = (str, bytes, int, float, bool, type(None), timedelta, date, datetime, Decimal, TypeVar, Enum)
READ_ONLY = (RetryPolicy,)
"""Not frozen, but only ever read: the SDK copies a retry policy into each command it builds."""


def _is_shared_safely(value: Any) -> bool:
    if isinstance(value, types.ModuleType | types.FunctionType | type | types.GenericAlias):
        return True
    if isinstance(value, IMMUTABLE + READ_ONLY):
        return True
    if isinstance(value, tuple | frozenset):
        return all(_is_shared_safely(item) for item in value)
    if isinstance(value, types.MappingProxyType):
        return all(_is_shared_safely(item) for item in value.values())
    # ``from __future__ import annotations`` and similar compiler features
    return type(value).__name__ == "_Feature"


def _imported_from_elsewhere(name: str, value: Any) -> bool:
    """The same object as a global of a module outside the package: imported, and shared by every
    instance whatever the sandbox does (those modules are passed through already)."""
    return any(
        getattr(module, name, None) is value
        for module_name, module in list(sys.modules.items())
        if module is not None and not module_name.startswith(f"{WORKFLOW_PACKAGE}.")
    )


def test_workflow_package_keeps_no_mutable_module_state() -> None:
    """A list, dict or set defined at module level would be shared by every workflow on a worker: a
    write from one run would be seen by others and break their determinism."""
    found = []
    for info in pkgutil.iter_modules(workflows.__path__):
        module = importlib.import_module(f"{WORKFLOW_PACKAGE}.{info.name}")
        for name, value in vars(module).items():
            if name.startswith("__") or _is_shared_safely(value) or _imported_from_elsewhere(name, value):
                continue
            found.append(f"{module.__name__}.{name}: {type(value).__name__}")
    assert found == []


def test_the_check_catches_mutable_state() -> None:
    """The check above fails for the kinds of globals it exists to keep out."""
    assert not _is_shared_safely([])
    assert not _is_shared_safely({"a": 1})
    assert not _is_shared_safely((1, set()))
    assert _is_shared_safely((timedelta(seconds=1), "x"))


def test_workers_pass_the_workflow_package_through_unless_strict() -> None:
    fast = workflow_runner(Settings(_env_file=None, strict_workflow_sandbox=False))
    strict = workflow_runner(Settings(_env_file=None, strict_workflow_sandbox=True))

    assert WORKFLOW_PACKAGE == "workflows"
    assert WORKFLOW_PACKAGE in fast.restrictions.passthrough_modules
    assert WORKFLOW_PACKAGE not in strict.restrictions.passthrough_modules


def test_the_test_suite_runs_in_the_strict_sandbox() -> None:
    """Every worker the tests build, in process or as ``python worker.py``, re-imports the workflow
    module per instance, so the sandbox's restrictions guard Kindly's own workflow code here."""
    assert Settings(_env_file=None).strict_workflow_sandbox
    assert Settings.model_fields["strict_workflow_sandbox"].default is False, "production default"

"""The layout keeps the architecture visible: imports flow one way (programs → workflows and activities →
domain and store), the domain does no I/O, nothing imports ``worker.py``, and no module grows past 400
lines. Checked on the source, so a stray import fails here before it tangles the packages."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("kindly", "workflows", "activities")
MAX_LINES = 400

# What each part may import, by module prefix (its own part always).
ALLOWED: dict[str, tuple[str, ...]] = {
    "kindly.domain": ("kindly.domain", "kindly.errors"),
    "kindly.store": ("kindly.store", "kindly.domain", "kindly.errors", "kindly.keyring", "kindly.settings"),
    # Outcome analytics read and derive from the store (I/O), beside it: programs use them, no worker does.
    "kindly.analytics": ("kindly.analytics", "kindly.store", "kindly.domain", "kindly.errors"),
    # The simulator runs the domain's decisions over simulated time; it reads the audit log only to
    # estimate observed responses. Programs use it; no worker does.
    "kindly.simulator": (
        "kindly.simulator",
        "kindly.domain",
        "kindly.analytics",
        "kindly.store",
        "kindly.errors",
        "kindly.settings",
    ),
    "activities": ("activities", "kindly.domain", "kindly.store", "kindly.errors", "kindly.settings"),
    "workflows": ("workflows", "activities", "kindly.domain"),
}
SHARED = ("kindly.settings", "kindly.errors", "kindly.keyring", "kindly.codec")
IO_MODULES = ("httpx", "sqlalchemy", "sqlmodel", "alembic", "temporalio.client", "fastapi", "asyncio")


def _modules() -> list[tuple[str, Path]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            found.append((dotted, path))
    return found


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


MODULES = _modules()


def _part(module: str) -> str | None:
    return next((part for part in ALLOWED if module == part or module.startswith(part + ".")), None)


def _ours(name: str) -> bool:
    return name.split(".")[0] in (*PACKAGES, "worker")


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_imports_flow_one_way(module: str, path: Path) -> None:
    part = _part(module)
    wrong = set()
    for name in _imports(path):
        into_worker = name == "worker" or name.startswith("worker.")
        if into_worker or (part is not None and _ours(name) and not _allowed(name, ALLOWED[part])):
            wrong.add(name)
    assert not wrong, f"{module} ({part or 'programs/shared'}) imports {sorted(wrong)}"


def _allowed(name: str, prefixes: tuple[str, ...]) -> bool:
    if name in PACKAGES:  # ``from kindly import x`` is judged by ``kindly.x``
        return True
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


@pytest.mark.parametrize(("module", "path"), [(m, p) for m, p in MODULES if m.startswith("kindly.domain")])
def test_the_domain_does_no_io(module: str, path: Path) -> None:
    io = {name for name in _imports(path) if name.split(".")[0] in IO_MODULES or name in IO_MODULES}
    assert not io, f"{module} imports {sorted(io)}"


def test_shared_modules_import_no_part() -> None:
    for module, path in MODULES:
        if module in SHARED:
            parts = {name for name in _imports(path) if _ours(name) and not name.startswith(SHARED)}
            assert not parts, f"{module} imports {sorted(parts)}"


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_no_module_is_over_400_lines(module: str, path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines"


def test_the_checks_see_a_wrong_import() -> None:
    """The rule itself: the domain may not reach into the store."""
    assert not _allowed("kindly.store.outbox", ALLOWED["kindly.domain"])
    assert _allowed("kindly.domain.state", ALLOWED["workflows"])
    assert not _allowed("kindly.programs.worker", ALLOWED["activities"])

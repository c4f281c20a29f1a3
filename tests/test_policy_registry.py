"""The workers' policy registry (``kindly.domain.policy.registry``) on SQLite and PostgreSQL: what a starter
compares its policy with before it starts accounts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from kindly.domain.policy.model import ContactPolicy, load_policies
from kindly.domain.policy.registry import MAX_LISTED_DIFFERENCES, PolicyRegistry, policy_fingerprint
from tests.postgres import postgres_url  # noqa: F401  (the session's PostgreSQL cluster, a fixture)
from tests.test_database import at_once, database_url, engine  # noqa: F401  (SQLite and PostgreSQL, fixtures)

T0 = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def policies_from(tmp_path: Path, overrides: dict[str, dict[str, object]]) -> dict[str, ContactPolicy]:
    path = tmp_path / f"policy-{policy_fingerprint(load_policies(None))}-{len(overrides)}.json"
    path.write_text(json.dumps(overrides))
    return load_policies(path)


def test_an_empty_registry_cannot_check_and_says_so(engine: Engine) -> None:  # noqa: F811
    check = PolicyRegistry(engine).check(load_policies(None))
    assert not check.checked and check.matches
    assert "no worker has registered" in check.describe("the built-in policies")


def test_the_workers_policy_matches_and_another_is_refused_field_by_field(
    engine: Engine,  # noqa: F811
    tmp_path: Path,
) -> None:
    registry = PolicyRegistry(engine, clock=Clock())
    built_in = load_policies(None)
    registry.register(built_in)

    same = registry.check(load_policies(None))
    assert same.checked and same.matches and same.differences == ()

    other = policies_from(tmp_path, {"standard": {"follow_up_interval_days": 9}, "vip": {}})
    check = registry.check(other)
    assert check.checked and not check.matches
    assert check.differences == (
        "segment 'standard': follow_up_interval_days is 9 here, 7 on the workers",
        "segment 'vip' exists here, not on the workers",
    )
    text = check.describe("COLLECTIONS_POLICY_FILE=other.json")
    assert "COLLECTIONS_POLICY_FILE=other.json" in text and "2026-12-02 09:00 UTC" in text
    assert policy_fingerprint(built_in) in text and policy_fingerprint(other) in text

    # A worker stamps its continue-as-new threshold on every policy: an importer must have it too.
    stamped = load_policies(None, continue_as_new_after_events=500)
    assert not registry.check(stamped).matches


def test_the_latest_registration_wins_through_a_rollout_and_a_rollback(
    engine: Engine,  # noqa: F811
    tmp_path: Path,
) -> None:
    clock = Clock()
    registry = PolicyRegistry(engine, clock=clock)
    old = load_policies(None)
    new = policies_from(tmp_path, {"standard": {"follow_up_interval_days": 10}})
    registry.register(old)
    clock.now += timedelta(days=3)
    registry.register(new)  # the first worker of the rollout is up
    assert registry.check(new).matches and not registry.check(old).matches

    clock.now += timedelta(hours=1)
    registry.register(old)  # rolled back
    assert registry.check(old).matches and not registry.check(new).matches
    latest = registry.latest()
    assert latest is not None and latest.fingerprint == policy_fingerprint(old)
    first = latest.first_registered_at
    assert (first if first.tzinfo else first.replace(tzinfo=UTC)) == T0


def test_a_long_list_of_differences_is_cut_and_counted(engine: Engine, tmp_path: Path) -> None:  # noqa: F811
    registry = PolicyRegistry(engine)
    registry.register(load_policies(None))
    many = policies_from(tmp_path, {f"segment_{i:02d}": {} for i in range(MAX_LISTED_DIFFERENCES + 3)})
    text = registry.check(many).describe("here")
    assert "segment 'segment_00' exists here" in text
    assert f"segment 'segment_{MAX_LISTED_DIFFERENCES:02d}'" not in text
    assert text.endswith("and 3 more")


def test_workers_starting_together_register_one_row(engine: Engine) -> None:  # noqa: F811
    registry = PolicyRegistry(engine)
    assert len(set(at_once(8, lambda: registry.register(load_policies(None))))) == 1
    latest = registry.latest()
    assert latest is not None and latest.fingerprint == policy_fingerprint(load_policies(None))
    assert registry.check(load_policies(None)).matches

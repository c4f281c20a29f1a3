"""The console's specialist cases on the real dev server with a worker and the built-in work queues: a call
recorded as a wrong number hands the account to a case of that kind, which the specialists find by kind,
note and resolve, each resolution confirmed first and sent to the account as updates; a resolution the
role may not choose is forbidden before anything reaches the account, and every note and resolution,
refused and forbidden ones too, leaves an audit row naming who acted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kindly.domain.contract import Stage
from kindly.domain.masking import mask_reference
from kindly.keyring import load_keyring
from kindly.programs.case_queue import ResolutionKind
from kindly.programs.console.audit_query import ACCEPTED, FORBIDDEN, REFUSED
from kindly.programs.console.case_words import CHOICES, KINDS, kind_words, resolution_words
from kindly.programs.console.i18n import LOCALES, Catalogs
from kindly.programs.operations import account_status, account_timeline
from kindly.store.cases import MAX_TEXT, SpecialistCase, SpecialistCases
from tests.conftest import eventually
from tests.test_console_auth import location, signed_in
from tests.test_console_queue import (  # noqa: F401  (fixtures)
    Floor,
    floor,
    no_number,
    post,
    queue_listing,
    settings,
)


async def handed_over(floor: Floor) -> SpecialistCase:  # noqa: F811
    """An account whose call an agent recorded as a wrong number, and the case it was handed to."""
    task = await floor.escalated()
    async with signed_in(floor.site, "ana") as http:
        await queue_listing(http, task.account_id)
        location(await post(http, "/queue", f"/queue/tasks/{task.id}/claim"))
        path = f"/queue/tasks/{task.id}"
        done = await post(http, path, f"{path}/outcome", outcome="wrong_number")
        assert location(done).startswith("/console/queue?done=wrong_number")
    cases = SpecialistCases(floor.site.engine, load_keyring(floor.settings))

    async def case_of() -> SpecialistCase | None:
        return cases.case_for_account(task.account_id)

    case = await eventually(case_of, lambda found: found is not None)
    assert case is not None
    return case


async def test_a_wrong_number_becomes_a_case_that_a_specialist_notes_and_hands_back(
    floor: Floor,  # noqa: F811
) -> None:
    case = await handed_over(floor)
    ref = mask_reference(case.account_id)
    assert case.kind == "wrong_number"
    async with signed_in(floor.site, "sol") as http:
        listed = await http.get("/cases")
        assert listed.status_code == 200 and ref in listed.text and case.account_id not in listed.text
        assert 'Wrong number <span class="count">1</span>' in listed.text and "All (1)" in listed.text
        assert ref in (await http.get("/cases", params={"kind": "wrong_number"})).text
        assert ref not in (await http.get("/cases", params={"kind": "hardship"})).text
        assert (await http.get("/cases", params={"kind": "nonsense"})).status_code == 422
        no_number(listed.text)

        path = f"/cases/{case.id}"
        page = await http.get(path)
        assert page.status_code == 200 and "call outcome wrong_number" in page.text
        assert 'class="badge stage-specialist"' in page.text and "No personal data" in page.text
        assert f"{path}/resolve/resume" in page.text and f"{path}/resolve/pause" in page.text
        assert f"{path}/resolve/settle" not in page.text and f"{path}/resolve/close" not in page.text
        no_number(page.text)

        note = "Asked the lender for a newer number."
        noted = await post(http, path, f"{path}/notes", text=note)
        assert location(noted) == f"/console{path}?flash=note_added#notes"
        page = await http.get(path)
        notes = page.text.split('id="notes-heading"', 1)[1]
        assert note in notes and "<strong>sol</strong>" in notes
        too_long = await post(http, path, f"{path}/notes", text="x" * (MAX_TEXT + 1))
        assert too_long.status_code == 422 and f"at most {MAX_TEXT} characters" in too_long.text
        assert "x" * (MAX_TEXT + 1) in too_long.text, "the note typed is kept"

        settled = await post(
            http, path, f"{path}/resolve/settle", amount="100", reference="S-1", confirmed="yes"
        )
        assert settled.status_code == 403 and "does not allow" in settled.text

        past = await post(
            http, path, f"{path}/resolve/pause", until="2020-01-01T09:00", reason="x", confirmed="yes"
        )
        assert past.status_code == 422 and "not in the future" in past.text
        assert 'id="pause-until"' in past.text and 'value="2020-01-01T09:00"' in past.text

        asked = await post(http, path, f"{path}/resolve/resume")
        assert asked.status_code == 200 and f"Hand account {ref} back to automated contact?" in asked.text
        assert 'name="confirmed" value="yes"' in asked.text
        still = SpecialistCases(floor.site.engine, load_keyring(floor.settings)).get(case.id or 0)
        assert still is not None and still.closed_at is None, "asking changed nothing"

        resumed = await post(http, path, f"{path}/resolve/resume", confirmed="yes")
        assert location(resumed).startswith("/console/cases?done=resume")
        shown = await http.get(location(resumed).removeprefix("/console"))
        assert f"The case of account {ref} is resolved: Back to automated contact." in shown.text
        # Its number opted out of SMS: the restarted cadence's next contact is a call, at once.
        assert "at the stage “Overdue”; next: call task" in shown.text
        assert ref not in shown.text.split('id="cases-heading"', 1)[1], "no longer an open case"

    resolved = SpecialistCases(floor.site.engine, load_keyring(floor.settings)).get(case.id or 0)
    assert resolved is not None and resolved.resolved_by == "sol"
    assert resolved.resolution == "back to automated contact"
    entries = await account_timeline(floor.env.client, case.account_id)
    assert any("handed back to automated contact by the specialist team" in entry.detail for entry in entries)
    fresh = await eventually(
        lambda: floor.task_of(case.account_id), lambda task: task is not None and task.attempt == 1
    )
    assert fresh is not None, "back in the cadence: its call attempts count afresh"

    async with signed_in(floor.site, "sam") as http:
        page = await http.get(f"/cases/{case.id}")
        assert "resolved by sol" in page.text and "This case has ended" in page.text
        assert "/resolve/" not in page.text
    async with signed_in(floor.site, "ana") as http:
        assert (await http.get("/cases")).status_code == 403

    rows = [
        (row.actor, row.outcome, row.detail.split(": ", 1)[1])
        for row in floor.console_rows(case.account_id)
        if row.detail.startswith("specialist case")
    ]
    assert rows == [
        ("sol", ACCEPTED, f"note ({len(note)} characters)"),
        ("sol", REFUSED, f"note ({MAX_TEXT + 1} characters)"),
        ("sol", FORBIDDEN, "settle amount='100' reference='S-1'"),
        ("sol", REFUSED, "pause until='2020-01-01T09:00' reason='x'"),
        ("sol", ACCEPTED, "resume"),
    ]


async def test_a_supervisor_may_settle_a_case_after_confirming(floor: Floor) -> None:  # noqa: F811
    case = await handed_over(floor)
    path = f"/cases/{case.id}"
    async with signed_in(floor.site, "sam") as http:
        page = await http.get(path)
        assert f"{path}/resolve/settle" in page.text and f"{path}/resolve/close" in page.text
        too_much = await post(
            http, path, f"{path}/resolve/settle", amount="99999", reference="S-9", confirmed="yes"
        )
        assert too_much.status_code == 422 and "more than the amount due" in too_much.text
        asked = await post(http, path, f"{path}/resolve/settle", amount="1200.00", reference="S-2")
        assert (
            f"Settle account {mask_reference(case.account_id)}?" in asked.text and "1200.00 CNY" in asked.text
        )
        settled = await post(
            http, path, f"{path}/resolve/settle", amount="1200.00", reference="S-2", confirmed="yes"
        )
        assert location(settled).startswith("/console/cases?done=settle")
        shown = await http.get(location(settled).removeprefix("/console"))
        assert "at the stage “Settled”" in shown.text
    status = await account_status(floor.env.client, case.account_id)
    assert status.stage is Stage.SETTLED
    [row] = [
        row
        for row in floor.console_rows(case.account_id)
        if row.outcome == ACCEPTED and "settle" in row.detail
    ]
    assert row.actor == "sam" and row.detail.endswith("settle amount='1200.00' reference='S-2'")


async def test_a_promise_hands_the_case_back_and_the_cadence_waits_for_it(floor: Floor) -> None:  # noqa: F811
    case = await handed_over(floor)
    path = f"/cases/{case.id}"
    async with signed_in(floor.site, "sol") as http:
        held = await account_status(floor.env.client, case.account_id)
        assert held.escalation is Stage.SPECIALIST and held.next_touchpoint_at is None
        promised = (datetime.now(UTC) + timedelta(days=5)).date().isoformat()
        asked = await post(http, path, f"{path}/resolve/promise", date=promised)
        assert asked.status_code == 200 and promised in asked.text
        done = await post(http, path, f"{path}/resolve/promise", date=promised, confirmed="yes")
        assert location(done).startswith("/console/cases?done=promise")
    status = await account_status(floor.env.client, case.account_id)
    assert status.escalation is None and status.stage is Stage.PROMISE
    assert str(status.promise_date) == promised
    resolved = SpecialistCases(floor.site.engine, load_keyring(floor.settings)).get(case.id or 0)
    assert resolved is not None and resolved.resolution is not None and promised in resolved.resolution


def test_every_kind_and_resolution_has_words_in_both_languages() -> None:
    catalogs = Catalogs.load()
    for locale in LOCALES:
        t = catalogs.translator(locale)
        kinds, resolutions = kind_words(t), resolution_words(t, "****0001")
        assert set(kinds) == set(KINDS) and set(resolutions) == set(CHOICES) == set(ResolutionKind)
        assert not [word for word in kinds.values() if word.startswith("case_kind.")], locale
        for words in resolutions.values():
            assert not [word for word in vars(words).values() if word.startswith("resolve.")], locale
            assert "****0001" in words.confirm

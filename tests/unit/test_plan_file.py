"""The plan file round-trips, holds its checksum, and refuses edits or truncation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from offboard.errors import BadInput
from offboard.plan import Action, Inventory, InventoryItem, Plan, Step, Target, VendorPlan, read_plan, write_plan


def sample() -> Plan:
    action = Action(id="v.s.1", vendor="v", step="s", kind="api", operation="remove", owner="org:1",
                    target=Target(type="agent", id="1", name="host1"), summary="remove host1", call="DELETE /x/1")
    vp = VendorPlan(vendor="v", display_name="V", scope="org 1", account="key", inventory_fingerprint="f",
                    steps=(Step(id="s", vendor="v", title="Remove", actions=(action,)),))
    return Plan(plan_id="p1", created_at="2026-11-23T10:00:00Z", customer="Acme", config_fingerprint="c",
                vendors=(vp,))


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "exit.plan.json"
    write_plan(sample(), path)
    assert read_plan(path).actions() == sample().actions()


def test_an_edited_plan_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "exit.plan.json"
    write_plan(sample(), path)
    data = json.loads(path.read_text())
    data["vendors"][0]["steps"][0]["actions"][0]["target"]["id"] = "2"
    path.write_text(json.dumps(data))
    with pytest.raises(BadInput, match="was changed after it was written"):
        read_plan(path)


def test_a_truncated_plan_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "exit.plan.json"
    write_plan(sample(), path)
    path.write_text(path.read_text()[:200])
    with pytest.raises(BadInput, match=r"not valid JSON .* truncated"):
        read_plan(path)


def test_a_plan_missing_a_field_names_it(tmp_path: Path) -> None:
    path = tmp_path / "exit.plan.json"
    data = sample().sealed().model_dump(mode="json")
    del data["customer"]
    path.write_text(json.dumps(data))
    with pytest.raises(BadInput, match="malformed at customer: Field required"):
        read_plan(path)


def test_a_missing_plan_file_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="offboard plan -o"):
        read_plan(tmp_path / "none.json")


def test_the_closure_note_lists_what_stops_updating_once_and_only_for_finished_steps() -> None:
    from offboard.plan import Step
    from offboard.proof.closure import render_closure_note

    done = Action(id="v.s.1", vendor="v", step="s", kind="api", operation="remove", owner="org:1",
                  target=Target(type="agent", id="1", name="host1"), summary="remove host1")
    open_item = done.model_copy(update={"id": "v.t.2", "step": "t"})
    vp = VendorPlan(vendor="v", display_name="V", scope="org 1", account="key", inventory_fingerprint="f",
                    steps=(Step(id="s", vendor="v", title="A", actions=(done,), stops_updating=("EDR stops",)),
                           Step(id="s2", vendor="v", title="B", actions=(done,), stops_updating=("EDR stops",)),
                           Step(id="t", vendor="v", title="C", actions=(open_item,), stops_updating=("SIEM stops",))))
    plan = Plan(plan_id="p", created_at="now", customer="Acme", config_fingerprint="c", vendors=(vp,),
                end_of_service="2026-12-31", monitoring_after_exit="Acme IT")
    records = [{"action_id": "v.s.1", "event": "action.succeeded", "detail": {}}]
    note = render_closure_note(plan, records, {"files": {"v/agents.json": {}}})
    assert note.count("- V: EDR stops") == 1 and "SIEM stops" not in note
    assert "for the end of service on 2026-12-31" in note and "Acme IT" in note
    assert "v/agents.json" not in note  # the customer is told what was kept, not the MSP's file names


def test_a_plan_written_before_listings_were_recorded_keeps_its_checksum_and_a_new_one_seals_its_listing() -> None:
    """The recorded listing (what a stale plan's refusal diffs against) is left out of a plan that has
    none, so a plan file written before it existed still reads as sealed; where it is recorded, an
    edit to it breaks the seal like any other."""
    inv = Inventory(vendor="v", scope="org 1", account="key",
                    items=(InventoryItem(target=Target(type="agent", id="1", name="pc-1"), owner="org:1"),))
    old = VendorPlan(vendor="v", display_name="V", scope="org 1", account="key", inventory_fingerprint="f")
    assert "listed" not in old.model_dump(mode="json")
    plan = Plan(plan_id="p", created_at="2026-12-05T00:00:00Z", customer="Acme", config_fingerprint="c",
                vendors=(old,)).sealed()
    assert plan.checksum == Plan.model_validate(plan.model_dump(mode="json")).compute_checksum()
    new = plan.model_copy(update={"vendors": (old.model_copy(update={"listed": inv.listed()}),)}).sealed()
    assert new.model_dump(mode="json")["vendors"][0]["listed"] == [["agent", "1", "org:1", "pc-1"]]
    edited = new.model_dump(mode="json")
    edited["vendors"][0]["listed"][0][2] = "org:2"
    assert Plan.model_validate(edited).compute_checksum() != new.checksum

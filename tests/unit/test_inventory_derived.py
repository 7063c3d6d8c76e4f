"""What an inventory derives once (each object's owner, its fingerprint) is never carried into a copy
with other items: the stale-plan check and the scope guard's listing read them."""

from __future__ import annotations

from offboard.plan import Inventory, InventoryItem, Target


def test_a_copy_with_other_items_derives_its_owners_and_fingerprint_anew() -> None:
    agent = Target(type="agent", id="1")
    listed = Inventory(vendor="v", scope="s", account="a", items=(InventoryItem(target=agent, owner="org:1"),))
    assert listed.owner_of(agent) == "org:1" and listed.fingerprint()  # derived, and kept on the object
    moved = listed.model_copy(update={"items": (InventoryItem(target=agent, owner="org:2"),)})
    assert moved.owner_of(agent) == "org:2"  # was org:1: pydantic's copy carried the original's owners
    assert moved.fingerprint() != listed.fingerprint()
    assert listed.model_copy().fingerprint() == listed.fingerprint()

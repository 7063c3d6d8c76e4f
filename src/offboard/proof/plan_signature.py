"""A saved plan signed with the MSP's key, beside it as ``<plan>.sig``.

The signature does not make a plan an authority (apply re-derives every action from the config
and the live vendor either way); it tells the operator at apply time that the file under review
is the one this MSP's offboard wrote, and refuses one whose signature no longer fits.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path

from cryptography.exceptions import InvalidSignature

from offboard.errors import BadInput
from offboard.plan import Plan, canonical_json
from offboard.proof.signing import Signer
from offboard.rundir import atomic_write_text

PURPOSE = "offboard plan"


def signature_path(plan_path: Path) -> Path:
    return plan_path.with_name(plan_path.name + ".sig")


def _statement(plan: Plan) -> bytes:
    return canonical_json({"purpose": PURPOSE, "plan_id": plan.plan_id, "checksum": plan.compute_checksum()}).encode()


def sign_plan(signer: Signer, plan: Plan, plan_path: Path) -> Path:
    path = signature_path(plan_path)
    record = {"key": signer.fingerprint, "plan_id": plan.plan_id,
              "signature": base64.b64encode(signer.private.sign(_statement(plan))).decode()}
    atomic_write_text(path, json.dumps(record, sort_keys=True) + "\n")
    return path


def check_plan_signature(plan: Plan, plan_path: Path, signer: Signer | None) -> str:
    """One line for the operator: whose signature the plan carries. Bad input when a signature is
    there and does not verify with this MSP's key."""
    path = signature_path(plan_path)
    if not path.exists():
        return f"The plan file is not signed (no {path.name}); offboard re-derives it from the config and the vendor."
    if signer is None:
        return (f"The plan file carries a signature ({path.name}), but this machine has no signing key to "
                "check it with; offboard re-derives the plan from the config and the vendor.")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        signature = base64.b64decode(record["signature"], validate=True)
        signer.public.verify(signature, _statement(plan))
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, binascii.Error, InvalidSignature):
        raise BadInput(f"the plan signature {path} does not verify with this MSP's key {signer.fingerprint}: the "
                       "plan was changed after it was signed, or signed elsewhere; make a new plan with "
                       "`offboard plan -o`") from None
    return f"The plan file is signed with this MSP's key {signer.fingerprint}."

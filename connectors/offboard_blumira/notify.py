"""The de-provisioning email to Blumira, every field of the document's template filled
(shared/seeds/000, "Notifying Blumira"). offboard drafts it as an .eml; a person sends it."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate

from offboard.connectors import ExitContext
from offboard.text import one_line

from .settings import BlumiraSettings
from .steps import MSP_TEAM, SUPPORT

MOVING = {"no": "no", "self": "yes — to the customer's own management", "msp": "yes — to another MSP",
          "unknown": "unknown"}


def draft(name: str, license_: str | None, settings: BlumiraSettings, context: ExitContext | None, *,
          complete: bool) -> bytes:
    """The email; ``complete`` says whether every de-provisioning step is done (the first
    notice, sent before any teardown, says no; the one written when the run ends, yes)."""
    s = settings
    # The sub-account's name and license are the vendor's strings: one line each, so a line break in
    # them can neither end a header (header injection) nor forge a line of the request below.
    name, license_ = one_line(name), (one_line(license_) if license_ else license_)
    end = context.end_of_service.isoformat() if context and context.end_of_service else "(not set: fill in)"
    edition = license_ or "(the API reports no license: fill in)"
    delete = "no (the account moves)" if s.account_moves_to != "no" else ("yes" if s.delete_data else "no")
    lines = [
        "Hello Blumira Support,",
        "",
        "We are the MSP for the sub-account below: its de-provisioning steps are done." if complete
        else "We are the MSP for the sub-account below and request its de-provisioning.",
        "",
        f"- Organization: {name} (account id {s.account_id})",
        f"- Current Blumira Edition: {edition}",
        f"- End-of-service date: {end}",
        f"- Is the account moving? {MOVING[s.account_moves_to]}",
    ]
    if s.account_moves_to == "self":
        lines.append("  - New administrators taking over: " + "; ".join(s.new_administrators))
        lines.append("  - At least one customer Administrator stays on the sub-account before it is separated.")
    if s.account_moves_to == "msp":
        lines.append(f"  - Incoming MSP contact (copied): {s.incoming_msp_contact}")
        lines.append(f"  - Customer contact (copied): {s.end_client_contact}")  # required by the config
        if s.new_administrators:
            lines.append("  - New administrators: " + "; ".join(s.new_administrators))
    lines += [
        f"- De-provisioning complete? {'yes' if complete else 'no'}",
        f"- Okay to delete all account data? {delete}",
    ]
    if context and context.ticket:
        lines += ["", f"Our reference: {context.ticket}"]
    lines += ["", "Thank you,", s.msp_sender or "(your name)"]
    msg = EmailMessage()
    msg["To"] = SUPPORT  # headers: one line each (the config's contacts too), never an exception
    cc = [MSP_TEAM]
    if s.account_moves_to == "msp":
        cc += [c for c in (s.incoming_msp_contact, s.end_client_contact) if c]
    msg["Cc"] = one_line(", ".join(cc))
    if s.msp_sender:
        msg["From"] = one_line(s.msp_sender)
    msg["Subject"] = f"De-provisioning {'complete' if complete else 'request'}: {name}"
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    msg["X-Unsent"] = "1"  # opens as a draft in Outlook and Apple Mail
    msg.set_content("\n".join(lines) + "\n")
    return bytes(msg)

"""What this connector does NOT know about Blumira's API, in one place.

No spec file could be obtained (vendor-specs/SOURCES.md); the vendor notes rebuilt the
operation list, but not every body, field or permission. Each name below is either
unconfirmed by the notes or confirmed only for another kind of credential, and says why.
Code that depends on one of them must ask the vendor first (a harmless read), treat a
refusal as "not offered", record the reason in the plan, and leave the work to the portal.
When the live spec (https://api.blumira.com/public-api/v1/openapi.json) settles one, set it
here with the source, and only here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Unknown:
    what: str
    why: str  # what the notes say, and where

    def __str__(self) -> str:
        return f"{self.what}: {self.why}"


# -- agent response actions ------------------------------------------------------------

ACTION_CATALOG_PATH = "/org/agents/actions"
ACTION_CATALOG = Unknown(
    f"GET {ACTION_CATALOG_PATH} with MSP credentials",
    "the action catalog is an organization-credential endpoint (vendor-notes §2.3 #44) and has no /msp "
    "equivalent (§2.2: no /msp/agents/actions catalog); whether an MSP key may read it is not known")

# The catalog's schema (`action_catalog`, one property) has no published field names
# (vendor-notes §2.3 #44): entries are searched under these keys, none is relied on.
CATALOG_ENTRY_KEYS = ("name", "action", "id", "type", "command")

# The dispatch body (`request_action_dispatch`, four properties) has no published field names
# (vendor-notes §2.2 #15). None: no body is ever sent, so no agent is uninstalled by API.
DISPATCH_ACTION_FIELD: str | None = None
DISPATCH_BODY = Unknown(
    "the body of POST /msp/accounts/{account_id}/agents/devices/{device_id}/actions",
    "schema request_action_dispatch has four properties whose names the notes could not find (vendor-notes "
    "§2.2 #15, §4 q.2); a guessed field is never sent")

# Refusals that mean "this path is not offered to these credentials", not "the vendor is down".
REFUSED = frozenset({400, 401, 403, 404, 405, 422, 501})

# -- writes with MSP credentials --------------------------------------------------------

MSP_WRITES = Unknown(
    "POST/PUT/DELETE with MSP credentials",
    "the MSP KB says the MSP endpoints are \"all scoped for read-only access\" (vendor-notes §1.3); the spec "
    "lists writes since; a refused write becomes the action's manual item")

# -- webhook endpoints -------------------------------------------------------------------

# Webhook endpoint field names are not published (vendor-notes §2.4: schema names only), so
# neither is how an endpoint is limited to a sub-account (§3 step 7: "inspect the fields before
# deleting"). These keys are looked for; an endpoint naming none serves the whole MSP.
WEBHOOK_ACCOUNT_LIST_FIELDS = ("account_ids", "accounts", "org_ids")
WEBHOOK_ACCOUNT_FIELDS = ("account_id", "org_id")
WEBHOOK_FIELDS = Unknown(
    "webhook endpoint fields",
    "only the schema names and property counts are known (vendor-notes §2.4); an endpoint is deleted by API "
    "only when every account the looked-for fields name is this sub-account; its name and url are read only "
    "to show it and to flag one that mentions the customer for review, never to delete it")

# -- ownership of what a sub-account lists -------------------------------------------------

ORG_ID = Unknown(
    "org_id on devices and keys",
    "the notes list the field (vendor-notes §2.4) but never say how it relates to the sub-account's "
    "account_id; ownership comes from the path the object was listed under (/msp/accounts/{account_id}/…), "
    "and an org_id that names something else makes the owner unknown")

ALL = (ACTION_CATALOG, DISPATCH_BODY, MSP_WRITES, WEBHOOK_FIELDS, ORG_ID)

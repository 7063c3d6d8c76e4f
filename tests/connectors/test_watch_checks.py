"""What each connector's watch asks and concludes, against the in-process sandboxes: the calls
made (method, path, body), what counts as "came back", and what never does (another
organization's records, the records from before the exit, a shared webhook left on purpose)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import offboard_huntress.sandbox as sandbox_module
from offboard_blumira.sandbox import CUSTOMER_ACCOUNT, NEIGHBOUR_ACCOUNT
from offboard_huntress.sandbox import CUSTOMER_ORG, NEIGHBOUR_ORG, HuntressSandbox, _log_record
from tests.conftest import FAST, BlumiraHarness, Harness, load, write_config

SINCE = datetime.now(UTC) - timedelta(hours=1)


def after_exit(sandbox: HuntressSandbox) -> None:
    """The customer's agents, sources and learners are gone; the neighbour's stay."""
    for aid in [a["id"] for a in sandbox.agents_of(CUSTOMER_ORG)]:
        del sandbox.agents[aid]
    org = sandbox.orgs[CUSTOMER_ORG]
    org.update(logs_sources_count=0, sat_learner_count=0)
    org.pop("identity_provider_tenant_id", None)
    sandbox.identities = [i for i in sandbox.identities if i["organization"]["id"] != CUSTOMER_ORG]


def huntress_harness(tmp_path: Path, extra: str = "") -> Harness:
    return Harness(HuntressSandbox(time_scale=FAST, customer_agents=3, neighbour_agents=3),
                   load(write_config(tmp_path, extra=extra)))


def test_a_quiet_huntress_costs_three_calls_and_asks_the_siem_from_the_exit_on(tmp_path: Path) -> None:
    h = huntress_harness(tmp_path, 'products = ["edr", "siem"]\n')
    after_exit(h.sandbox)
    before = len(h.sandbox.siem_logs)
    assert before > 0  # the customer's sources sent records before the exit: not news
    with h.sessions() as s:
        found = s.by_vendor["huntress"].watch(SINCE)
    assert [(r.method, r.path) for r in h.sandbox.requests] == [
        ("GET", f"/v1/organizations/{CUSTOMER_ORG}"), ("GET", "/v1/agents"), ("POST", "/v1/siem/query")]
    body = json.loads(h.sandbox.requests[-1].body)
    assert body["esql"] == f'FROM logs | WHERE organization.id == "{CUSTOMER_ORG}" | SORT @timestamp DESC'
    assert body["range_start"] == SINCE.strftime("%Y-%m-%dT%H:%M:%SZ") and body["range_end"] >= body["range_start"]
    assert not any(w.came_back for w in found) and all(w.available for w in found)
    assert {w.check for w in found} == {"usage counts at zero", "no agent listed under the organization",
                                        f"no SIEM record for organization {CUSTOMER_ORG} since "
                                        f"{SINCE.strftime('%Y-%m-%dT%H:%M:%SZ')}"}


def test_siem_records_are_paged_200_at_a_time_counted_for_the_organization_only(tmp_path: Path) -> None:
    h = huntress_harness(tmp_path, 'products = ["siem"]\n')
    after_exit(h.sandbox)
    now = datetime.now(UTC)
    h.sandbox.siem_logs += [_log_record(CUSTOMER_ORG, f"ACME-FW-{n % 2}", now - timedelta(minutes=30, seconds=n))
                            for n in range(450)]
    h.sandbox.siem_logs += [_log_record(NEIGHBOUR_ORG, "GLOBEX-FW", now - timedelta(minutes=5))]
    with h.sessions() as s:
        [usage, siem] = s.by_vendor["huntress"].watch(SINCE)
    queries = [json.loads(r.body) for r in h.sandbox.requests if r.path == "/v1/siem/query"]
    assert len(queries) == 3 and "page_token" not in queries[0]
    assert all(q["page_token"] and q["range_start"] == queries[0]["range_start"] for q in queries[1:])
    assert siem.came_back and siem.key == "siem:records"
    assert siem.detail.startswith(f"450 SIEM record(s) for organization {CUSTOMER_ORG} since the exit; the newest at ")
    assert "from Microsoft-Windows-Security-Auditing" in siem.detail and "3 page(s)" in siem.detail
    assert siem.remedy.startswith("4. Remove cloud integrations") and siem.removed_by == ("siem.disconnect-sources",)
    assert not usage.came_back  # the sandbox's counts were set back to zero by hand here


def test_a_record_that_names_another_organization_is_never_counted_as_ours(tmp_path: Path) -> None:
    """The vendor's reply is hostile input: a record of the neighbour's in our query's answer is named and
    left out of the count (it proves nothing about this customer's sources)."""
    h = huntress_harness(tmp_path, 'products = ["siem"]\n')
    after_exit(h.sandbox)
    recent = datetime.now(UTC) - timedelta(minutes=5)
    h.sandbox.siem_logs += [_log_record(CUSTOMER_ORG, "ACME-FW", recent),
                            _log_record(NEIGHBOUR_ORG, "GLOBEX-FW", recent)]
    real = sandbox_module._esql
    # the double ignores the query's WHERE: its reply holds the neighbour's record beside ours
    sandbox_module._esql = lambda query, rows: real("FROM logs | SORT @timestamp DESC", rows)  # type: ignore[assignment]
    try:
        with h.sessions() as s:
            [_, siem] = s.by_vendor["huntress"].watch(SINCE)
    finally:
        sandbox_module._esql = real
    assert siem.came_back and siem.detail.startswith("1 SIEM record(s)")
    assert "1 record(s) naming another organization ignored" in siem.detail


def test_without_the_siem_query_feature_the_check_says_not_available(tmp_path: Path) -> None:
    h = huntress_harness(tmp_path, 'products = ["siem"]\n')
    after_exit(h.sandbox)
    h.sandbox.siem_enabled = False
    with h.sessions() as s:
        [_, siem] = s.by_vendor["huntress"].watch(SINCE)
    assert not siem.came_back and not siem.available
    assert siem.detail.startswith("not available: POST /v1/siem/query answers 404")


def test_a_deleted_organization_listed_again_is_a_finding_and_gone_is_quiet(tmp_path: Path) -> None:
    h = huntress_harness(tmp_path, "delete_organization = true\n")
    after_exit(h.sandbox)
    with h.sessions() as s:
        back = s.by_vendor["huntress"].watch(SINCE)
    org = next(w for w in back if w.key == f"organization:{CUSTOMER_ORG}")
    assert org.came_back and "is listed again" in org.detail and org.removed_by == ("delete_organization",)
    assert org.remedy.startswith("5b. Delete the whole organization")
    del h.sandbox.orgs[CUSTOMER_ORG]
    h.sandbox.requests.clear()
    with h.sessions() as s:
        quiet = s.by_vendor["huntress"].watch(SINCE)
    assert next((w.came_back, w.detail) for w in quiet) == (False, f"GET /v1/organizations/{CUSTOMER_ORG} → 404: "
                                                                  "still deleted")
    # nothing else is read of a deleted organization but its logs (a source may still send to its endpoint)
    assert [(r.method, r.path) for r in h.sandbox.requests] == [("GET", f"/v1/organizations/{CUSTOMER_ORG}"),
                                                                ("POST", "/v1/siem/query")]
    assert not any(w.came_back for w in quiet)


def test_a_neighbours_agent_in_the_filtered_list_is_not_this_exits_news(tmp_path: Path) -> None:
    h = huntress_harness(tmp_path, 'products = ["edr"]\n')
    after_exit(h.sandbox)
    neighbour = h.sandbox.agents_of(NEIGHBOUR_ORG)[0]
    h.sandbox.strays["agents"].append(neighbour)  # listed under our filter, but it says whose it is
    with h.sessions() as s:
        found = s.by_vendor["huntress"].watch(SINCE)
    assert not any(w.came_back for w in found)


def test_blumira_catches_a_device_key_user_and_the_customers_webhook_not_a_shared_one(
        blumira: BlumiraHarness) -> None:
    sb = blumira.sandbox
    for store in (sb.devices, sb.keys):
        for k in [k for k, v in store.items() if v["_account"] == CUSTOMER_ACCOUNT][1:]:
            del store[k]
    for k in [k for k, u in sb.users.items() if u["_account"] == CUSTOMER_ACCOUNT and u["id"] != "u-1"]:
        del sb.users[k]
    del sb.webhooks["wh-1"]
    with blumira.sessions() as s:
        quiet = s.by_vendor["blumira"].watch(SINCE)
    back = {w.key for w in quiet if w.came_back}
    assert back == {"device:dev-0001-000", "agent_key:key-0001-0"}  # the one of each left behind
    del sb.devices["dev-0001-000"], sb.keys["key-0001-0"]
    sb.webhooks["wh-9"] = {"id": "wh-9", "name": "Acme Dental → PSA again", "url": "https://psa.example/acme2",
                           "account_ids": [CUSTOMER_ACCOUNT], "enabled": True}
    sb.users["u-9"] = {**sb.users["u-1"], "id": "u-9", "email": "returned@acme.example"}
    with blumira.sessions() as s:
        found = s.by_vendor["blumira"].watch(SINCE)
    named = {w.key: w for w in found if w.came_back}
    assert set(named) == {"webhook:wh-9", "user:u-9"}  # wh-3 serves every account: left on purpose, not news
    assert named["webhook:wh-9"].removed_by == ("delete_webhook",)
    assert "returned@acme.example" in named["user:u-9"].detail
    assert all(NEIGHBOUR_ACCOUNT not in r.path for r in sb.requests)
    assert {r.method for r in sb.requests} <= {"GET", "POST"} and all(
        r.path == "/oauth/token" for r in sb.requests if r.method == "POST")

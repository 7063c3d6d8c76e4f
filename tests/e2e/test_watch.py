"""`offboard watch` through the CLI against the sandboxes (served on 127.0.0.1): a finished exit of
Acme Dental from Huntress (EDR and SIEM) and Blumira, with its HaloPSA ticket, then the days after.

The exit itself is made in-process (guided, a technician doing each portal item in the sandbox), so
each test starts from a closed run; every `watch` is the CLI's, over real HTTP."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from offboard import batch as batches
from offboard import connectors, engine
from offboard.connectors import Check
from offboard.connectors.sandboxing import Fault, InProcessTransport, serve
from offboard.engine import GuideAnswer
from offboard.errors import ExitCode
from offboard.plan import Action
from offboard.proof.audit import read_records
from offboard_blumira.sandbox import CUSTOMER_ACCOUNT, BlumiraSandbox
from offboard_halopsa import sandbox as halo
from offboard_huntress.sandbox import CUSTOMER_ORG, DEMO_KEY, DEMO_SECRET, HuntressSandbox
from tests.conftest import DEMO_CREDS, FAST, CliResult, blumira_section, load, write_config
from tests.connectors.psa_harness import HALO
from tests.e2e.test_cli_over_http import offboard_exe

PREFLIGHT = engine.Overrides(preflight="the sandbox customer's isolated host is part of the test")


class Technician:
    """Guided mode: does each manual item in the vendor's sandbox portal, then says done."""

    by = "J. Doe"

    def __init__(self, apps: dict[str, Any]) -> None:
        self.apps = apps

    def ask(self, action: Action, refused: Check | None) -> GuideAnswer:
        app = self.apps.get(action.vendor)
        if app is not None:
            params = {"target": action.target.id} if action.kind == "api" else {}
            with httpx.Client(transport=InProcessTransport(app), base_url="http://sandbox") as c:
                c.post(f"/_sandbox/portal/{action.operation}", params=params)
        return GuideAnswer(done=True, note=f"{action.operation}: done")


@dataclass
class Exited:
    huntress: HuntressSandbox
    blumira: BlumiraSandbox
    psa: Any
    urls: dict[str, str]
    config: Path
    run: Path

    def after(self, vendor: str, what: str, **params: str) -> dict[str, Any]:
        """Something happens after the exit (a sandbox-only route, as the portal items are)."""
        reply = httpx.post(f"{self.urls[vendor]}/_sandbox/watch/{what}", params=params, timeout=10)
        body = reply.json()
        assert body["done"], body
        return dict(body)

    def records(self) -> list[dict[str, Any]]:
        return list(read_records(self.run / "audit.jsonl"))

    def notes(self) -> list[str]:
        return HALO.notes(self.psa)


@pytest.fixture
def exited(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Exited]:
    h = HuntressSandbox(time_scale=FAST, customer_agents=4, neighbour_agents=2)
    b = BlumiraSandbox(time_scale=FAST)
    p = halo.HaloSandbox(time_scale=FAST)
    with serve(h.app) as hurl, serve(b.app) as burl, serve(p.app) as purl:
        path = write_config(tmp_path, hurl, extra='products = ["edr", "siem"]\n',
                            blumira=blumira_section(burl, window=FAST))
        path.write_text(path.read_text() + "\n" + HALO.section(purl))
        cfg = load(path)
        creds = {**DEMO_CREDS, "psa": {k: SecretStr(v) for k, v in HALO.creds.items()}}
        transports = {"huntress": InProcessTransport(h.app), "blumira": InProcessTransport(b.app),
                      "psa": InProcessTransport(p.app)}
        with engine.open_sessions(cfg, transports=transports, creds=creds) as s:
            plan = engine.make_plan(cfg, s)
            result = engine.apply(plan, cfg, s, overrides=PREFLIGHT,
                                  guide=Technician({"huntress": h.app, "blumira": b.app}))
        assert result.exit_code == ExitCode.OK, result.message
        for name, value in (("HUNTRESS_API_KEY", DEMO_KEY), ("HUNTRESS_API_SECRET", DEMO_SECRET),
                            ("BLUMIRA_CLIENT_ID", DEMO_CREDS["blumira"]["client_id"].get_secret_value()),
                            ("BLUMIRA_CLIENT_SECRET", DEMO_CREDS["blumira"]["client_secret"].get_secret_value()),
                            ("PSA_CLIENT_ID", HALO.creds["client_id"]),
                            ("PSA_CLIENT_SECRET", HALO.creds["client_secret"])):
            monkeypatch.setenv(f"OFFBOARD_{name}", value)
        monkeypatch.setenv("COLUMNS", "300")
        yield Exited(h, b, p, {"huntress": hurl, "blumira": burl}, path, result.run.path)


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_a_quiet_day_exits_0_reads_only_and_is_recorded_in_the_chain(exited: Exited, cli: Any) -> None:
    end = [r for r in exited.records() if r["event"] == "run.finished"][-1]
    exited.huntress.requests.clear()
    exited.blumira.requests.clear()
    notes_before = len(exited.notes())

    quiet = cli("watch", "-c", str(exited.config), "--once")

    assert quiet.code == ExitCode.OK, quiet.out + quiet.err
    said = one_line(quiet.out)
    assert "nothing came back" in said and "Huntress: still stopped — no agent listed under the organization" in said
    assert "Blumira: still stopped — no agent device listed" in said
    # a few reads a vendor, nothing written
    h_calls = [(r.method, r.path) for r in exited.huntress.requests]
    assert h_calls == [("GET", f"/v1/organizations/{CUSTOMER_ORG}"), ("GET", "/v1/agents"), ("POST", "/v1/siem/query")]
    assert {r.method for r in exited.blumira.requests} <= {"GET", "POST"}
    assert [r.path for r in exited.blumira.requests if r.method == "POST"] in ([], ["/oauth/token"])
    assert len(exited.blumira.requests) <= 7  # the exit lock's identity read (the sub-account) included
    # the SIEM is asked from the exit's end to now, for the organization, as the spec shapes the query
    siem = next(r for r in exited.huntress.requests if r.path == "/v1/siem/query")
    body = json.loads(siem.body)
    assert body["esql"].startswith("FROM logs") and f'"{CUSTOMER_ORG}"' in body["esql"]
    assert body["range_start"] == end["ts"][:19] + "Z" and "page_token" not in body
    # the old records the customer's sources sent before the exit are not news
    assert len(exited.huntress.siem_logs) > 0
    # every check in the run's chain, the chain whole, the report and status say so, the ticket heard nothing
    watch = [r for r in exited.records() if r["event"].startswith("watch.")]
    assert [r["event"] for r in watch][-1] == "watch.finished" and len(watch) >= 8
    assert all(r["outcome"] == "success" for r in watch)
    verified = cli("audit", "verify", str(exited.run / "audit.jsonl"))
    assert verified.code == 0 and "chain intact" in verified.out
    report = (exited.run / "report.md").read_text()
    assert "## After the exit" in report and "nothing came back" in report
    assert report.index("## After the exit") < report.index("## Timeline")
    page = (exited.run / "report.html").read_text()
    assert "<h2>After the exit</h2>" in page and "nothing came back" in page
    status = cli("status", "-c", str(exited.config))
    assert status.code == 0 and "nothing came back" in one_line(status.out)
    assert len(exited.notes()) == notes_before


def test_a_re_enrolled_agent_a_siem_record_and_a_re_added_device_are_each_caught_named_and_recorded(
        exited: Exited, cli: Any) -> None:
    agent = exited.after("huntress", "re-enrol", hostname="ACME-WS-GOLDEN")["agent_id"]
    exited.after("huntress", "siem-record", hostname="ACME-FW-01")
    device = exited.after("blumira", "re-add-device", account=CUSTOMER_ACCOUNT, hostname="ACME-PC-RESTORED")[
        "device_id"]
    notes_before = len(exited.notes())

    first = cli("watch", "-c", str(exited.config), "--once")

    assert first.code == ExitCode.CAME_BACK == 5, first.out + first.err
    said = one_line(first.err)
    assert f"agent ACME-WS-GOLDEN (id {agent}) is listed under organization {CUSTOMER_ORG} again, last callback" in said
    assert "To remove it: 3. Remove endpoint coverage (EDR agents)" in said
    assert re.search(r"1 SIEM record\(s\) for organization 42 since the exit; the newest at \S+ from "
                     r"Microsoft-Windows-Security-Auditing", said)
    assert "disconnect every log source (SIEM → Source Management)" in said
    assert f"agent device ACME-PC-RESTORED (id {device}) is listed under sub-account 'Acme Dental' again" in said
    assert "4. Remove agent devices and keys" in said
    assert "edr usage is above zero again: agents_count=1" in said
    back = {r["detail"]["key"]: r for r in exited.records() if r["event"] == "watch.checked"
            and r["detail"]["came_back"]}
    assert {f"agent:{agent}", "siem:records", f"device:{device}", "usage:edr", "usage:siem"} <= set(back)
    caught = back[f"agent:{agent}"]
    assert caught["target"]["name"] == "ACME-WS-GOLDEN" and caught["outcome"] == "failure"
    assert cli("audit", "verify", str(exited.run / "audit.jsonl")).code == 0
    # the ticket hears of each finding once
    new = exited.notes()[notes_before:]
    assert len(new) == len(back) and all("came back after the exit" in n for n in new)
    assert any("ACME-WS-GOLDEN" in n for n in new)

    exited.after("huntress", "siem-record", hostname="ACME-FW-01")  # the source keeps sending: 2 records now
    second = cli("watch", "-c", str(exited.config), "--once")

    assert second.code == ExitCode.CAME_BACK, second.out + second.err
    assert "2 SIEM record(s) for organization 42 since the exit" in one_line(second.err)
    assert len(exited.notes()) == notes_before + len(back)  # nothing posted twice across runs
    finished = [r for r in exited.records() if r["event"] == "watch.finished"]
    assert len(finished) == 2 and all(r["outcome"] == "failure" for r in finished)
    report = one_line((exited.run / "report.md").read_text())
    assert "ACME-WS-GOLDEN" in report and "came back" in report
    status = one_line(cli("status", "-c", str(exited.config)).out)
    assert "ACME-WS-GOLDEN" in status


def test_the_last_day_tells_the_ticket_the_watch_ended_once_and_later_runs_check_nothing(
        exited: Exited, cli: Any) -> None:
    today = datetime.now(UTC).date().isoformat()
    before = len(exited.notes())
    for _ in range(2):
        done = cli("watch", "-c", str(exited.config), "--once", "--until", today)
        assert done.code == 0, done.out + done.err
    ended = [n for n in exited.notes()[before:] if "watch ended, nothing came back" in n]
    assert len(ended) == 1 and len(exited.notes()) == before + 1
    exited.huntress.requests.clear()
    late = cli("watch", "-c", str(exited.config), "--once", "--until", "2020-01-01")
    assert late.code == 0 and "nothing was checked" in late.err and exited.huntress.requests == []


# -- on the MSP's scheduler ------------------------------------------------------------------------

FILE_MARK = "### file: "


def scheduled(cli: Any, exited: Exited, kind: str, *extra: str) -> str:
    printed = cli("watch", "-c", str(exited.config), "--schedule", kind, *extra)
    assert printed.code == 0, printed.out + printed.err
    return str(printed.out)


def expected_args(exited: Exited, days: int = 30) -> list[str]:
    until = (datetime.now(UTC).date() + timedelta(days=days)).isoformat()
    return [*offboard_exe(), "-q", "watch", "-c", str(exited.config.resolve()), "--run", exited.run.name, "--once",
            "--until", until]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_the_systemd_unit_and_timer_verify_and_run_daily(exited: Exited, cli: Any, tmp_path: Path) -> None:
    text = scheduled(cli, exited, "systemd")
    files = {}
    for chunk in text.split(FILE_MARK)[1:]:
        name, _, body = chunk.partition("\n")
        files[Path(name).name] = body
    service, timer = (f"offboard-watch-{exited.run.name}.service", f"offboard-watch-{exited.run.name}.timer")
    assert set(files) == {service, timer}
    folder = tmp_path / "units"
    folder.mkdir()
    for name, body in files.items():
        (folder / name).write_text(body)
    verified = subprocess.run(["systemd-analyze", "verify", str(folder / service), str(folder / timer)],
                              capture_output=True, text=True, check=False)
    assert verified.returncode == 0, verified.stderr
    exec_start = next(line for line in files[service].splitlines() if line.startswith("ExecStart="))
    assert shlex.split(exec_start.removeprefix("ExecStart=")) == expected_args(exited)
    calendar = next(line for line in files[timer].splitlines() if line.startswith("OnCalendar="))
    assert calendar == "OnCalendar=*-*-* 06:17:00" and "Persistent=true" in files[timer]
    every6 = scheduled(cli, exited, "systemd", "--every-hours", "6")
    assert "OnCalendar=*-*-* 00/6:17:00" in every6
    # `systemctl --user enable --now` is the command the comments print for it
    assert f"systemctl --user enable --now offboard-watch-{exited.run.name}.timer" in text


def test_the_crontab_line_is_valid_runs_daily_and_runs_as_printed(exited: Exited, cli: Any) -> None:
    from croniter import croniter

    text = scheduled(cli, exited, "cron")
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(lines) == 1
    fields = lines[0].split(" ", 5)
    expr, command = " ".join(fields[:5]), fields[5]
    assert croniter.is_valid(expr) and expr == "17 6 * * *"
    runs = croniter(expr, datetime(2026, 12, 4, 12, 0, tzinfo=UTC))
    first, second = runs.get_next(datetime), runs.get_next(datetime)
    assert (second - first) == timedelta(days=1)
    every6 = [line for line in scheduled(cli, exited, "cron", "--every-hours", "6").splitlines() if line[:1].isdigit()]
    expr6 = " ".join(every6[0].split(" ", 5)[:5])
    assert expr6 == "17 */6 * * *" and croniter.is_valid(expr6)
    runs6 = croniter(expr6, datetime(2026, 12, 4, 12, 0, tzinfo=UTC))
    assert runs6.get_next(datetime) - runs6.get_next(datetime) == -timedelta(hours=6)
    cd, _, rest = command.partition(" && ")
    assert shlex.split(cd) == ["cd", str(exited.config.parent.resolve())]
    assert shlex.split(rest) == expected_args(exited)
    # cron runs the command with /bin/sh: it runs as printed, quietly (nothing came back, nothing printed)
    ran = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, timeout=120, check=False,
                         env={**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring"})
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout == "" and ran.stderr == ""
    assert [r["event"] for r in exited.records()].count("watch.finished") == 1


def test_the_windows_task_runs_the_same_command(exited: Exited, cli: Any) -> None:
    text = scheduled(cli, exited, "windows", "--every-hours", "12")
    command = next(line for line in text.splitlines() if line.startswith("schtasks "))
    assert f'/TN "offboard\\offboard-watch-{exited.run.name}"' in command
    assert "/SC HOURLY /MO 12 /ST 06:17" in command and command.endswith(" /F")
    inner = re.search(r'/TR "(.*)" /F$', command)
    assert inner is not None
    assert shlex.split(inner[1].replace('\\"', '"')) == expected_args(exited)
    assert "/SC DAILY /ST 06:17" in scheduled(cli, exited, "windows")


@pytest.mark.parametrize(("args", "says"), [
    (("--schedule", "launchd"), "--schedule 'launchd': give one of systemd, cron, windows"),
    (("--schedule", "cron", "--every-hours", "5"), "--every-hours 5: give one of 1, 2, 3, 4, 6, 8, 12, 24"),
    ((), "give --once (check now) or --schedule"),
    (("--once", "--schedule", "cron"), "give --once (check now) or --schedule"),
    (("--once", "--until", "next week"), "--until 'next week' is not a date"),
    (("--once", "--run", "20990101T000000000Z-nope00"), "20990101T000000000Z-nope00"),
])
def test_bad_watch_arguments_are_one_line_and_exit_2(exited: Exited, cli: Any, args: tuple[str, ...],
                                                      says: str) -> None:
    calls = len(exited.huntress.requests)
    bad = cli("watch", "-c", str(exited.config), *args)
    assert bad.code == 2 and says in bad.err and bad.out == "", bad.err
    assert len(bad.err.strip().splitlines()) == 1 and "Traceback" not in bad.err
    assert len(exited.huntress.requests) == calls


# -- what to do about it, and the proof made again --------------------------------------------------


def test_plan_out_plans_the_removal_of_what_came_back_and_apply_takes_it_with_its_guards(
        exited: Exited, cli: Any) -> None:
    agent = exited.after("huntress", "re-enrol", hostname="ACME-WS-GOLDEN")["agent_id"]
    neighbours = len(exited.huntress.agents_of(43))
    out = exited.config.parent / "came-back.plan.json"
    exited.huntress.requests.clear()

    caught = cli("watch", "-c", str(exited.config), "--once", "--plan-out", str(out))

    assert caught.code == ExitCode.CAME_BACK, caught.out + caught.err
    said = one_line(caught.out)
    assert f"these answer what came back: huntress.uninstall_agent.{agent} (" in said
    assert f"Review it, then run: offboard apply {out} -c {exited.config}" in said
    plan = json.loads(out.read_text())
    removals = [a for v in plan["vendors"] for s in v["steps"] for a in s["actions"] if a["kind"] == "api"
                and a["destructive"]]
    assert [a["id"] for a in removals] == [f"huntress.uninstall_agent.{agent}"]  # only what came back is removed
    assert [r.method for r in exited.huntress.requests if r.method not in ("GET", "POST")] == []  # nothing written
    applied = cli("apply", str(out), "-c", str(exited.config), "--unattended", "--override-preflight", "watch")
    assert applied.code in (ExitCode.OK, ExitCode.MANUAL_PENDING), applied.out + applied.err
    assert exited.huntress.agents_of(CUSTOMER_ORG) == [] and len(exited.huntress.agents_of(43)) == neighbours
    assert ("DELETE", f"/v1/agents/{agent}") in [(r.method, r.path) for r in exited.huntress.requests]


def test_a_signed_exit_signs_each_watch_and_its_bundle_made_again_holds_the_checks(
        exited: Exited, cli: Any, tmp_path: Path) -> None:
    key = tmp_path / "keys" / "msp-signing-key.pem"
    assert cli("keys", "init", "--key-file", str(key), "-o", str(tmp_path / "msp.pub")).code == 0
    exited.config.write_text(exited.config.read_text().replace('[run]\n', f'[signing]\nkey_file = "{key}"\n\n[run]\n'))
    watched = cli("watch", "-c", str(exited.config), "--once")
    assert watched.code == 0
    # the run was closed: its log grew after its close, and the watch says so (as `verify --run` does)
    assert (f"A bundle of this run made before now, if one was, still verifies but does not hold them; to hand "
            f"them over, make it again: "
            f"offboard bundle --run {exited.run.name} -c {exited.config} -o "
            f"{exited.config.parent / exited.run.name}.tar.gz") in one_line(watched.out), watched.out
    audit_file = exited.run / "audit.jsonl"
    checked = cli("audit", "verify", str(audit_file), "--public-key", str(tmp_path / "msp.pub"))
    assert checked.code == 0, checked.out + checked.err
    heads = (exited.run / "signatures.jsonl").read_text().splitlines()
    assert json.loads(heads[-1])["audit_lines"] == len(exited.records())  # the watch's lines are signed too
    made = cli("bundle", "-c", str(exited.config), "--run", exited.run.name, "-o", str(tmp_path / "exit.tar.gz"))
    assert made.code == 0, made.out + made.err
    with tarfile.open(tmp_path / "exit.tar.gz") as tar:
        names = tar.getnames()
        inside = next(n for n in names if n.endswith("audit.jsonl"))
        extracted = tar.extractfile(inside)
        assert extracted is not None
        lines = extracted.read().decode().splitlines()
        report = next(n for n in names if n.endswith("report.md"))
        report_file = tar.extractfile(report)
        assert report_file is not None and "## After the exit" in report_file.read().decode()
    assert sum(1 for line in lines if '"watch.checked"' in line) >= 7
    assert cli("bundle", "verify", str(tmp_path / "exit.tar.gz"), "--public-key", str(tmp_path / "msp.pub")).code == 0


def test_a_vendor_down_fails_the_watch_in_one_line_and_records_no_half_watch(exited: Exited, cli: Any) -> None:
    # Blumira is read first (the config's order) and answers; Huntress's SIEM stays down
    exited.huntress.faults.append(Fault(method="POST", path_prefix="/v1/siem/query", status=503, times=50))
    lines = len(exited.records())
    down = cli("watch", "-c", str(exited.config), "--once")
    assert down.code == ExitCode.FAILED, down.out + down.err
    assert len(down.err.strip().splitlines()) == 1 and "POST /v1/siem/query failed" in down.err
    assert "Traceback" not in down.err
    assert any("/msp/accounts/" in r.path for r in exited.blumira.requests)
    assert len(exited.records()) == lines  # Blumira answered, but no watch is recorded half
    exited.huntress.faults.clear()
    assert cli("watch", "-c", str(exited.config), "--once").code == 0
    finished = [r for r in exited.records() if r["event"] == "watch.finished"]
    assert len(finished) == 1 and finished[0]["detail"]["checks"] == len(
        [r for r in exited.records() if r["event"] == "watch.checked"])


def test_quiet_for_schedulers_prints_only_what_came_back(exited: Exited, cli: Any) -> None:
    assert cli("-q", "watch", "-c", str(exited.config), "--once") == CliResult(0, "", "")
    exited.after("huntress", "re-enrol", hostname="ACME-WS-GOLDEN")
    loud = cli("-q", "watch", "-c", str(exited.config), "--once")
    assert loud.code == 5 and loud.out == ""
    assert [line.split(" — ")[0] for line in loud.err.strip().splitlines()] == ["Huntress: CAME BACK"] * 2


# -- a batch's exits ----------------------------------------------------------------------------------


def test_batch_watch_checks_every_exit_of_a_batch_and_names_the_customer_whose_agent_came_back(
        tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    h = HuntressSandbox(time_scale=FAST, customer_agents=3, neighbour_agents=2, more_customers={44: 2})
    monkeypatch.setenv("OFFBOARD_HUNTRESS_API_KEY", DEMO_KEY)
    monkeypatch.setenv("OFFBOARD_HUNTRESS_API_SECRET", DEMO_SECRET)
    monkeypatch.setenv("COLUMNS", "300")
    with serve(h.app) as url:
        (tmp_path / "template.toml").write_text(
            '[customer]\nname = "(each row names it)"\nend_of_service = 2026-12-31\n\n'
            f'[huntress]\norganization_id = 1\nbase_url = "{url}"\nrate_window_seconds = {60 * FAST}\n'
            'products = ["edr"]\n')
        (tmp_path / "customers.csv").write_text(
            "customer,approved_by,ticket,huntress.organization_id\n"
            f"Acme Dental,J. Doe,PSA-1,{CUSTOMER_ORG}\nCustomer 44,J. Doe,PSA-2,44\n")
        plan = tmp_path / "batch.plan.json"
        made = cli("batch", "plan", str(tmp_path / "customers.csv"), "--template", str(tmp_path / "template.toml"),
                   "-o", str(plan))
        assert made.code == 0, made.out + made.err
        assert cli("batch", "apply", str(plan), "--override-preflight", "lab").code == ExitCode.MANUAL_PENDING
        b = batches.open_batch(plan, {n: c.settings_model for n, c in connectors.installed().items()})
        for e in b.exits:  # the person confirms each exit's manual items
            cfg = b.configs[e.slug]
            state = batches.exit_state(cfg, e.plan)
            assert state.run is not None
            with engine.open_sessions(cfg, creds=DEMO_CREDS) as sessions:
                for item in state.pending:
                    assert engine.confirm(state.run.run_id, item, "J. Doe", "done", cfg, sessions).accepted

        quiet = cli("batch", "watch", str(plan), "--once")
        assert quiet.code == 0, quiet.out + quiet.err
        assert one_line(quiet.out).count("nothing came back") == 2
        h.requests.clear()
        agent = httpx.post(f"{url}/_sandbox/watch/re-enrol", params={"org": "44", "hostname": "C44-LAPTOP"}).json()
        back = cli("batch", "watch", str(plan), "--once")
        assert back.code == ExitCode.CAME_BACK, back.out + back.err
        said = one_line(back.err)
        # named by its short name, what `--customer` takes and the live table shows
        assert f"customer-44: Huntress: CAME BACK — agent C44-LAPTOP (id {agent['agent_id']})" in said
        assert "acme-dental" not in said
        # EDR only: no SIEM in scope, nothing written
        assert {r.method for r in h.requests if not r.path.startswith("/_sandbox/")} == {"GET"}
        for e in b.exits:
            run = batches.exit_state(b.configs[e.slug], e.plan).run
            assert run is not None
            assert [r["event"] for r in read_records(run.audit_path)].count("watch.finished") == 2
        entry = cli("batch", "watch", str(plan), "--schedule", "cron")
        line = next(x for x in entry.out.splitlines() if x[:1].isdigit())
        assert shlex.split(line.split(" && ", 1)[1])[1:5] == ["-q", "batch", "watch", str(plan.resolve())]

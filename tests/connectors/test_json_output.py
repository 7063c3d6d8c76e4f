"""`--json` (issue 15, machine-readable output): `plan`, `apply`, `status`, `verify` and `confirm` print
one document on stdout and nothing else, each valid against its versioned schema in schemas/, with no
secret in it; a command that fails under --json prints an error document."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from offboard.connectors.sandboxing import serve
from offboard.plan import read_plan
from offboard_blumira.sandbox import BlumiraSandbox
from offboard_huntress.sandbox import HuntressSandbox
from tests.conftest import NOTIFY, CliResult, blumira_section, write_config

SCALE = 0.002
SCHEMAS = Path(__file__).parents[2] / "schemas"
KINDS = ("plan", "apply", "status", "verify", "confirm", "error")
H_KEY, H_SECRET = "hk_canary_json_5e1f", "hs_canary_json_secret_77a0c3"
B_ID, B_SECRET = "blumira-canary-json-client", "blu_canary_json_secret_c0ffee"


def validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMAS / f"{kind}.v1.json").read_text()))


@pytest.mark.parametrize("kind", KINDS)
def test_each_schema_is_a_valid_json_schema_named_as_its_documents_say(kind: str) -> None:
    schema = json.loads((SCHEMAS / f"{kind}.v1.json").read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema"] == {"const": f"offboard.{kind}.v1", "description": schema["properties"][
        "schema"]["description"]}
    assert f"schemas/{kind}.v1.json" in (SCHEMAS.parent / "docs" / "json-output.md").read_text()


@dataclass
class Exit:
    huntress: HuntressSandbox
    blumira: BlumiraSandbox
    urls: dict[str, str]
    config: Path
    outputs: list[str]

    def secrets(self) -> list[str]:
        basic = base64.b64encode(f"{H_KEY}:{H_SECRET}".encode()).decode()
        return [H_KEY, H_SECRET, basic, B_SECRET, *self.blumira.issued]


@pytest.fixture
def two_vendors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Exit]:
    h = HuntressSandbox(time_scale=SCALE, extra_credentials={H_KEY: H_SECRET})
    b = BlumiraSandbox(time_scale=SCALE, extra_clients={B_ID: B_SECRET})
    for var, value in (("OFFBOARD_HUNTRESS_API_KEY", H_KEY), ("OFFBOARD_HUNTRESS_API_SECRET", H_SECRET),
                       ("OFFBOARD_BLUMIRA_CLIENT_ID", B_ID), ("OFFBOARD_BLUMIRA_CLIENT_SECRET", B_SECRET)):
        monkeypatch.setenv(var, value)
    monkeypatch.chdir(tmp_path)
    with serve(h.app) as hurl, serve(b.app) as burl:
        config = write_config(tmp_path, hurl, window=60 * SCALE, blumira=blumira_section(burl, window=SCALE))
        yield Exit(h, b, {"huntress": hurl, "blumira": burl}, config, [])


def document(exit_: Exit, result: CliResult, kind: str, code: int) -> dict[str, Any]:
    """The whole of stdout is one JSON document of ``kind``, valid against its schema."""
    assert result.code == code, (result.out[-2000:], result.err)
    doc = json.loads(result.out)  # fails on a table, a progress line or a note on stdout
    errors = sorted(validator(kind).iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]
    assert doc["schema"] == f"offboard.{kind}.v1" and doc["exit_code"] == code
    exit_.outputs.append(result.out)
    return doc


def test_a_whole_exit_driven_by_json_documents(cli: Any, two_vendors: Exit) -> None:
    x, config = two_vendors, str(two_vendors.config)

    planned = document(x, cli("plan", "-c", config, "-o", "exit.plan.json", "--json"), "plan", 0)
    assert planned["changes"] is True and planned["saved_to"] == "exit.plan.json"
    assert planned["counts"] == {"removals": 43, "evidence_exports": 17, "manual": 21, "blocking_findings": 2}
    assert {v["vendor"] for v in planned["plan"]["vendors"]} == {"blumira", "huntress"}
    Path("from-json.plan.json").write_text(json.dumps(planned["plan"]))
    assert read_plan(Path("from-json.plan.json")) == read_plan(Path("exit.plan.json"))  # `jq .plan` is a plan file
    assert document(x, cli("plan", "-c", config, "--json", "--detailed-exitcode"), "plan", 10)["changes"] is True

    blocked = document(x, cli("apply", "exit.plan.json", "-c", config, "--json", "--unattended"), "apply", 4)
    assert blocked["blocking"] and all(f["blocking"] for f in blocked["blocking"])

    held = document(x, cli("apply", "exit.plan.json", "-c", config, "--json", "--unattended",
                           "--override-preflight", "lab"), "apply", 3)
    run_id = held["run_id"]
    assert NOTIFY in [a["id"] for a in held["pending"]]
    assert held["audit"]["chain_intact"] is True and Path(held["audit"]["path"]).exists()
    assert held["counts"]["succeeded"] == 42 and held["counts"]["held"] > 0

    confirmed = document(x, cli("confirm", NOTIFY, "--by", "J. Doe", "--note", "sent, ticket 4711", "-c", config,
                                "--json"), "confirm", 0)
    assert confirmed["accepted"] is True and confirmed["run_id"] == run_id
    assert confirmed["to_resume"] > 0 and confirmed["resume_command"] == f"offboard apply --resume {run_id}"
    assert NOTIFY not in [a["id"] for a in confirmed["remaining"]]

    resumed = document(x, cli("apply", "--resume", run_id, "-c", config, "--json", "--unattended"), "apply", 3)
    assert resumed["run_id"] == run_id and resumed["plan_signature"] is None

    refused = document(x, cli("confirm", "huntress.itdr.unmap-tenant", "--by", "J. Doe", "--note", "CTO approved",
                              "-c", config, "--json"), "confirm", 1)
    assert refused["accepted"] is False and refused["check"]["passed"] is False

    status = document(x, cli("status", "-c", config, "--json"), "status", 3)
    assert status["run_id"] == run_id and status["counts"]["manual-pending"] >= 1
    assert sum(status["counts"].values()) == len(status["items"]) == 81

    checked = document(x, cli("verify", "-c", config, "--json"), "verify", 1)
    assert checked["stopped"] is False and checked["run_id"] is None
    assert checked["failed"] == sum(1 for c in checked["checks"] if not c["passed"]) > 0
    by_run = document(x, cli("verify", "--run", run_id, "-c", config, "--json"), "verify", 1)
    assert by_run["run_id"] == run_id and any(c["action_id"] for c in by_run["checks"])

    for item in ("itdr.unmap-tenant", "siem.disconnect-sources", "sat.close-campaigns"):
        httpx.post(f"{x.urls['huntress']}/_sandbox/portal/{item}")
    quiet = document(x, cli("-q", "confirm", "huntress.itdr.unmap-tenant", "--by", "J. Doe", "--note", "CTO approved",
                            "-c", config, "--json"), "confirm", 0)
    assert quiet["check"]["passed"] is True

    everything = "\n".join(x.outputs)
    leaked = [s for s in x.secrets() if s in everything]
    assert leaked == [] and len(x.blumira.issued) >= 1


def test_a_command_that_fails_under_json_prints_an_error_document(cli: Any, two_vendors: Exit) -> None:
    x, config = two_vendors, str(two_vendors.config)
    result = cli("status", "--run", "nope", "-c", config, "--json")
    doc = document(x, result, "error", 2)
    assert "'nope' is not a run id" in doc["error"] and not doc["error"].startswith("error:")
    assert result.err.strip() == f"error: {doc['error']}"

    wrong = Path("wrong.toml")
    wrong.write_text(Path(config).read_text().replace("[customer]", "[customer]\nnmae = 1", 1))
    refused = document(x, cli("plan", "-c", str(wrong), "--json"), "error", 2)
    assert "nmae" in refused["error"] and x.huntress.requests == []

    assert cli("plan", "--no-such-flag", "--json").out == ""  # usage errors stay on stderr alone


def test_human_lines_go_to_stderr_under_json(cli: Any, two_vendors: Exit) -> None:
    result = cli("plan", "-c", str(two_vendors.config), "-o", "exit.plan.json", "--json")
    assert result.code == 0
    json.loads(result.out)
    assert "Saved to exit.plan.json" in result.err and "Exit plan" not in result.out + result.err


def test_json_on_a_terminal_never_waits_at_a_prompt(cli: Any, two_vendors: Exit, monkeypatch: pytest.MonkeyPatch
                                                    ) -> None:
    config = str(two_vendors.config)
    assert cli("plan", "-c", config, "-o", "exit.plan.json").code == 0
    monkeypatch.setattr("rich.prompt.Prompt.ask", lambda *a, **k: pytest.fail("prompted under --json"))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    result = cli("apply", "exit.plan.json", "-c", config, "--override-preflight", "lab", "--json")
    assert document(two_vendors, result, "apply", 3)["pending"]


H_BASIC = base64.b64encode(f"{H_KEY}:{H_SECRET}".encode()).decode()


class EchoingHuntress(HuntressSandbox):
    """A vendor whose error bodies echo the credentials the request carried: the secret comes back
    in the very reply `--json` reports, so only the redactor keeps it out of the document."""

    def error(self, status: int, message: str, headers: dict[str, str] | None = None) -> Any:
        if message.startswith("injected fault"):
            message += f" (request: Authorization: Basic {H_BASIC}; api_secret={H_SECRET})"
        return super().error(status, message, headers)


def test_a_secret_the_vendor_echoes_is_masked_in_the_json_documents(
        cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from offboard_huntress.sandbox import Fault

    h = EchoingHuntress(time_scale=SCALE, extra_credentials={H_KEY: H_SECRET})
    monkeypatch.setenv("OFFBOARD_HUNTRESS_API_KEY", H_KEY)
    monkeypatch.setenv("OFFBOARD_HUNTRESS_API_SECRET", H_SECRET)
    monkeypatch.chdir(tmp_path)
    with serve(h.app) as url:
        x = Exit(h, BlumiraSandbox(), {"huntress": url}, write_config(tmp_path, url, window=60 * SCALE), [])
        config = str(x.config)
        document(x, cli("plan", "-c", config, "-o", "exit.plan.json", "--json"), "plan", 0)
        h.faults.append(Fault(method="DELETE", path_prefix="/v1/agents/", status=400))
        applied = cli("apply", "exit.plan.json", "-c", config, "--json", "--unattended", "--override-preflight", "lab")
        document(x, applied, "apply", 1)
        items = document(x, cli("status", "-c", config, "--json"), "status", 1)["items"]
        assert any("injected fault" in i["detail"] for i in items if i["state"] == "failed")  # the vendor's words
        h.faults[:] = [Fault(method="GET", path_prefix="/v1/agents", status=400, times=10**6)]
        failed = cli("plan", "-c", config, "--json")
        assert failed.code != 0 and json.loads(failed.out)["schema"] == "offboard.error.v1", failed.out
        x.outputs.append(failed.out)
    echoed = [out for out in x.outputs if "injected fault" in out]
    assert len(echoed) == 2, x.outputs  # the echo reached the apply document and the error document
    assert all("[REDACTED]" in out for out in echoed)
    everything = "\n".join(x.outputs)
    assert [s for s in (H_KEY, H_SECRET, H_BASIC) if s in everything] == []

"""A batch's customers: a folder of exit configs, or a CSV/TOML listing expanded from a template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from offboard import connectors
from offboard.batch import load_source
from offboard.errors import BadInput
from tests.conftest import blumira_section, write_config

MODELS = {n: c.settings_model for n, c in connectors.installed().items()}
ACCOUNT = "6a1f5c2e-0c1d-4b8e-9d40-acme00000001"


def template(directory: Path) -> Path:
    path = write_config(directory, blumira=blumira_section())
    return path.rename(directory / "template.toml")


def test_a_csv_listing_expands_each_customer_from_the_template_into_its_own_exit(tmp_path: Path) -> None:
    (tmp_path / "customers.csv").write_text(
        "customer,ticket,end_of_service,huntress.organization_id,blumira.account_id,blumira.keep_users\n"
        f'Acme Dental,PSA-1,2027-01-31,42,{ACCOUNT},"[""a@acme.example"", ""b@acme.example""]"\n'
        "Globex Logistics,PSA-2,,43,,\n")
    specs = load_source(tmp_path / "customers.csv", MODELS, template=template(tmp_path), expand_into=tmp_path / "b")
    acme, globex = specs
    assert (acme.slug, globex.slug) == ("acme-dental", "globex-logistics")
    assert acme.cfg.path == tmp_path / "b" / "acme-dental" / "config.toml"
    assert acme.cfg.runs_dir == tmp_path / "b" / "acme-dental" / "runs"
    assert acme.cfg.customer.ticket == "PSA-1" and str(acme.cfg.customer.end_of_service) == "2027-01-31"
    assert acme.cfg.customer.approved_by == "J. Doe"  # the template's, where the row is silent
    assert acme.cfg.vendors["huntress"].model_dump()["organization_id"] == 42
    assert acme.cfg.vendors["blumira"].model_dump()["keep_users"] == ["a@acme.example", "b@acme.example"]
    assert sorted(globex.cfg.vendors) == ["huntress"]  # its row names no Blumira account: not in its exit
    assert globex.cfg.customer.end_of_service is not None  # the template's date
    written = acme.cfg.path.read_text()  # as a person would write it: the id a number, the account text
    assert "organization_id = 42\n" in written and f'account_id = "{ACCOUNT}"' in written


def test_a_toml_listing_names_its_template(tmp_path: Path) -> None:
    template(tmp_path)
    (tmp_path / "customers.toml").write_text(
        'template = "template.toml"\n\n[[customers]]\nname = "Acme Dental"\n[customers.huntress]\n'
        'organization_id = 42\n\n[[customers]]\nname = "Globex"\n[customers.blumira]\n'
        f'account_id = "{ACCOUNT}"\n')
    specs = load_source(tmp_path / "customers.toml", MODELS, template=None, expand_into=tmp_path / "b")
    assert [(s.slug, sorted(s.cfg.vendors)) for s in specs] == [("acme-dental", ["huntress"]), ("globex", ["blumira"])]


def test_a_folder_of_exit_configs_is_a_batch_as_it_stands(tmp_path: Path) -> None:
    for name, org in (("acme", 42), ("globex", 43)):
        (tmp_path / "exits" / name).mkdir(parents=True)
        path = write_config(tmp_path / "exits" / name)
        path.write_text(path.read_text().replace("organization_id = 42", f"organization_id = {org}"))
        path.rename(tmp_path / "exits" / f"{name}.toml")
    specs = load_source(tmp_path / "exits", MODELS, template=None, expand_into=tmp_path / "unused")
    assert [s.slug for s in specs] == ["acme", "globex"] and not (tmp_path / "unused").exists()


@pytest.mark.parametrize(("rows", "said"), [
    ("customer,huntress.organization_id\nAcme,42\nAcme,43\n", "'Acme' is listed twice"),
    ("customer,huntress.organization_id\nAcme,42\nGlobex,42\n", "both name the same huntress account"),
    ("customer,huntress.organisation_id\nAcme,42\n", "huntress.organisation_id"),
    ("customer,colour\nAcme,blue\n", "unknown column 'colour'"),
    ("customer,huntress.organization_id\nAcme,\n", "'Acme' names no vendor"),
    ("ticket,huntress.organization_id\nPSA-1,42\n", "has no `customer` column"),
    ("customer,huntress.organization_id\nAcme,forty-two\n", "customers.csv line 2 (Acme): config: huntress."),
])
def test_a_listing_that_cannot_be_expanded_is_one_line_naming_the_row(tmp_path: Path, rows: str, said: str) -> None:
    (tmp_path / "customers.csv").write_text(rows)
    with pytest.raises(BadInput) as err:
        load_source(tmp_path / "customers.csv", MODELS, template=template(tmp_path), expand_into=tmp_path / "b")
    assert said in str(err.value) and "\n" not in str(err.value)


def test_a_listing_without_a_template_is_bad_input_through_the_cli(tmp_path: Path, cli: Any,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "customers.csv").write_text("customer,huntress.organization_id\nAcme,42\n")
    result = cli("batch", "plan", "customers.csv")
    assert result.code == 2 and "pass --template template.toml" in result.err
    assert result.err.strip().count("\n") == 0 and "Traceback" not in result.err
    result = cli("batch", "status")
    assert result.code == 2 and "batch plan batch.plan.json does not exist" in result.err


def exits_folder(tmp_path: Path, *configs: tuple[str, str, int]) -> Path:
    """A batch folder: (file name, customer, organization id) each."""
    folder = tmp_path / "exits"
    for file_name, customer, org in configs:
        work = tmp_path / "work" / file_name
        work.mkdir(parents=True)
        path = write_config(work)
        path.write_text(path.read_text().replace('name = "Acme Dental"', f'name = "{customer}"')
                        .replace("organization_id = 42", f"organization_id = {org}"))
        folder.mkdir(exist_ok=True)
        path.rename(folder / file_name)
    return folder


def test_batch_plan_refuses_two_configs_that_share_a_short_name_naming_both(
        tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two different customers whose files reduce to one short name: one would silently vanish.
    exits_folder(tmp_path, ("holdout_dental.toml", "Holdout Dental", 42),
                 ("holdout-dental.toml", "Holdout Dental 2", 43), ("acme.toml", "Acme", 44))
    monkeypatch.chdir(tmp_path)
    result = cli("batch", "plan", "exits", "-o", "batch.plan.json")
    assert result.code == 2, result.out + result.err
    assert "holdout-dental.toml" in result.err and "holdout_dental.toml" in result.err
    assert "'holdout-dental'" in result.err and result.err.strip().count("\n") == 0
    assert not (tmp_path / "batch.plan.json").exists()


def test_batch_plan_refuses_two_configs_naming_one_organization_naming_both(
        tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    exits_folder(tmp_path, ("acme.toml", "Acme Dental", 42), ("acme-old-contract.toml", "Acme (old contract)", 42))
    monkeypatch.chdir(tmp_path)
    result = cli("batch", "plan", "exits", "-o", "batch.plan.json")
    assert result.code == 2, result.out + result.err
    assert "'Acme Dental' (acme.toml)" in result.err and "'Acme (old contract)' (acme-old-contract.toml)" in result.err
    assert "organization_id 42" in result.err and result.err.strip().count("\n") == 0


def test_two_configs_spelling_one_huntress_organization_differently_are_refused_at_batch_plan(
        tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # The configs' own spellings differ (127.0.0.1 and localhost): only the vendor, asked during the batch
    # plan's discovery, says they are one organization of one account.
    from offboard.connectors.sandboxing import serve
    from offboard_huntress.sandbox import DEMO_KEY, DEMO_SECRET, HuntressSandbox

    monkeypatch.setenv("OFFBOARD_HUNTRESS_API_KEY", DEMO_KEY)
    monkeypatch.setenv("OFFBOARD_HUNTRESS_API_SECRET", DEMO_SECRET)
    sandbox = HuntressSandbox(time_scale=0.01)
    with serve(sandbox.app) as url:
        folder = exits_folder(tmp_path, ("acme.toml", "Acme Dental", 42), ("acme-again.toml", "Acme (old)", 42))
        for name, host in (("acme.toml", "127.0.0.1"), ("acme-again.toml", "localhost")):
            path = folder / name
            path.write_text(path.read_text().replace("http://127.0.0.1:9", url.replace("127.0.0.1", host)))
        monkeypatch.chdir(tmp_path)
        result = cli("batch", "plan", "exits", "-o", "batch.plan.json")
    assert result.code == 2, result.out + result.err
    said = " ".join(result.err.split())
    assert "'Acme (old)' (acme-again.toml) and 'Acme Dental' (acme.toml) name the same huntress account" in said
    assert "organization 42" in said and "Traceback" not in result.err
    assert not (tmp_path / "batch.plan.json").exists()
    assert not [r for r in sandbox.requests if r.method != "GET" and not r.path.startswith("/_sandbox")]

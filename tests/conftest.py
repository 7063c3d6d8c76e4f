"""Shared fixtures: an in-memory keyring, a sandbox, a config on disk, a CLI runner."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keyring
import keyring.backend
import pytest
from hypothesis import settings as hypothesis_settings
from pydantic import SecretStr

from offboard import connectors, engine
from offboard.cli.app import main
from offboard.config import ExitConfig, load_config
from offboard.connectors import psa
from offboard.connectors.sandboxing import InProcessTransport
from offboard.errors import ExitCode
from offboard.plan import Plan
from offboard_blumira import sandbox as blu
from offboard_huntress.sandbox import DEMO_KEY, DEMO_SECRET, HuntressSandbox
from tests import huntress_spec
from tests.specs import REQUIRE, missing_reason, spec_path

FAST = 0.005  # sandbox clock: a 60 s window lasts 0.3 s

# Every reply the Huntress sandbox sends during the suite is checked against Huntress's published
# spec; a reply the spec does not describe fails the test that caused it (see the hooks below).
if spec_path(huntress_spec.SPEC) is not None:
    HuntressSandbox.reply_check = huntress_spec.REPLIES.check
elif os.environ.get(REQUIRE):
    raise pytest.UsageError(missing_reason(huntress_spec.SPEC) + f"; {REQUIRE} is set: the sandbox's replies "
                            "must be validated against it")


def pytest_report_header() -> str:
    path = spec_path(huntress_spec.SPEC)
    if path is None:
        return f"huntress sandbox replies: NOT validated ({missing_reason(huntress_spec.SPEC)})"
    return f"huntress sandbox replies: validated against {path}"


def _fail_on_bad_replies(phase: str) -> None:
    problems = huntress_spec.REPLIES.take()
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise AssertionError(f"the Huntress sandbox sent {len(problems)} reply problem(s) the published spec "
                             f"does not allow (during {phase}):\n  {shown}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    huntress_spec.REPLIES.take()  # not this test's: a server an earlier test left running
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    result = yield  # a test that failed on its own keeps its own failure
    _fail_on_bad_replies("the test")  # replies sent while its fixtures were set up count too
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    result = yield
    _fail_on_bad_replies("teardown")
    return result

# CI runs the same examples every time (a landing never hinges on a new random draw); locally,
# hypothesis explores new ones on each run and remembers failures in .hypothesis/.
hypothesis_settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")


class MemoryKeyring(keyring.backend.KeyringBackend):
    """Tests never read or write the machine's real keyring."""

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.store.pop((service, username), None)


@pytest.fixture(autouse=True)
def memory_keyring(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[MemoryKeyring]:
    # Each test gets its own rate-limit budget files, never the user's cache.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    # Each test its own exit locks: the machine's shared folder is for real exits (and other checkouts' tests).
    monkeypatch.setenv("OFFBOARD_LOCK_DIR", str(tmp_path_factory.mktemp("locks")))
    previous = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    for var in ("OFFBOARD_HUNTRESS_API_KEY", "OFFBOARD_HUNTRESS_API_SECRET", "OFFBOARD_BLUMIRA_CLIENT_ID",
                "OFFBOARD_BLUMIRA_CLIENT_SECRET", "OFFBOARD_CONFIG", "OFFBOARD_PSA_CLIENT_ID",
                "OFFBOARD_PSA_CLIENT_SECRET", "OFFBOARD_PSA_PUBLIC_KEY", "OFFBOARD_PSA_PRIVATE_KEY",
                "OFFBOARD_PSA_USERNAME", "OFFBOARD_PSA_SECRET", "OFFBOARD_PSA_INTEGRATION_CODE"):
        monkeypatch.delenv(var, raising=False)
    yield ring
    keyring.set_keyring(previous)


@pytest.fixture
def sandbox() -> HuntressSandbox:
    return HuntressSandbox(time_scale=FAST)


def write_config(directory: Path, base_url: str = "http://127.0.0.1:9", *, window: float = 60 * FAST,
                 extra: str = "", huntress: bool = True, blumira: str | None = None) -> Path:
    """A config on disk: the Huntress section (unless ``huntress=False``), and a Blumira
    section when ``blumira`` is given (see ``blumira_section``)."""
    path = directory / "config.toml"
    text = ('[customer]\nname = "Acme Dental"\nend_of_service = 2026-12-31\napproved_by = "J. Doe"\n'
            'ticket = "PSA-4711"\n\n[run]\nruns_dir = "runs"\n\n')
    if blumira is not None:
        text += blumira + "\n"
    if huntress:
        text += f'[huntress]\norganization_id = 42\nbase_url = "{base_url}"\nrate_window_seconds = {window}\n{extra}'
    path.write_text(text)
    return path


def blumira_section(base_url: str = "http://127.0.0.1:9", *, window: float = FAST, extra: str = "") -> str:
    return (f'[blumira]\naccount_id = "{blu.CUSTOMER_ACCOUNT}"\nbase_url = "{base_url}{blu.API_PREFIX}"\n'
            f'token_url = "{base_url}{blu.TOKEN_PATH}"\nrate_window_seconds = {window}\n'
            f'keep_users = ["{blu.KEEP_USER}"]\nmsp_sender = "NOC <noc@msp.example>"\n{extra}')


def load(path: Path) -> ExitConfig:
    return load_config(path, {n: c.settings_model for n, c in connectors.installed().items()},
                       {n: c.settings_model for n, c in psa.installed().items()})


DEMO_CREDS = {"huntress": {"api_key": SecretStr(DEMO_KEY), "api_secret": SecretStr(DEMO_SECRET)},
              "blumira": {"client_id": SecretStr(blu.DEMO_CLIENT_ID), "client_secret": SecretStr(blu.DEMO_SECRET)}}


@dataclass
class Harness:
    """An exit against the in-process sandbox, with its config and run folder."""

    sandbox: HuntressSandbox
    cfg: ExitConfig
    transport: Any = None

    @contextlib.contextmanager
    def sessions(self, transport: Any = None) -> Iterator[engine.Sessions]:
        t = transport or InProcessTransport(self.sandbox.app)
        with engine.open_sessions(self.cfg, transports={"huntress": t}, creds=DEMO_CREDS) as s:
            yield s


@pytest.fixture
def harness(sandbox: HuntressSandbox, tmp_path: Path) -> Harness:
    return Harness(sandbox, load(write_config(tmp_path)))


@dataclass
class BlumiraHarness:
    """A Blumira-only exit against the in-process Blumira sandbox."""

    sandbox: blu.BlumiraSandbox
    dir: Path
    extra: str = ""

    @property
    def cfg(self) -> ExitConfig:
        return load(write_config(self.dir, huntress=False, blumira=blumira_section(extra=self.extra)))

    @contextlib.contextmanager
    def sessions(self, cfg: ExitConfig | None = None) -> Iterator[engine.Sessions]:
        with engine.open_sessions(cfg or self.cfg, transports={"blumira": InProcessTransport(self.sandbox.app)},
                                  creds=DEMO_CREDS) as s:
            yield s


@pytest.fixture
def blumira(tmp_path: Path) -> BlumiraHarness:
    return BlumiraHarness(blu.BlumiraSandbox(time_scale=FAST), tmp_path)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*args: str) -> CliResult:
        capsys.readouterr()
        code = main(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


NOTIFY = "blumira.notify.sent"


def past_the_notification(cfg: ExitConfig, plan: Plan, sessions: engine.Sessions,
                          **kwargs: Any) -> engine.RunResult:
    """Apply, confirm the notification to Blumira as the person who sent it, and resume: no
    Blumira change is made before that confirmation (the document's "notify first")."""
    first = engine.apply(plan, cfg, sessions, **kwargs)
    assert first.exit_code in (ExitCode.MANUAL_PENDING, ExitCode.FAILED), first.message
    assert NOTIFY in [a.id for a in first.pending], first.message
    engine.confirm(first.run.run_id, NOTIFY, "J. Doe", "sent 2026-11-24 09:00 UTC, Blumira ticket 4711", cfg,
                   sessions)
    return engine.resume(first.run.run_id, cfg, sessions, **kwargs)

"""Mutation testing of the modules offboard's safety rests on: break each one on purpose, one
small change at a time (mutmut), run the tests that guard it, and count what they catch.

    .venv/bin/python bench/mutation.py                  # every module below, one after another
    .venv/bin/python bench/mutation.py wire/redact.py   # one module (a path under src/offboard/)
    .venv/bin/python bench/mutation.py --jobs 2 ...     # mutants run side by side (default 1)
    .venv/bin/python bench/mutation.py proof/bundle.py --only 'x_verify*' 'x__check_*'   # some functions only

Each module runs in a scratch copy of the repository (mutmut works in a ``mutants/`` folder of its
own), against the narrow test selection named in MODULES, and the result is written to
``docs/development/mutation.md`` by this script: the kill rate per module and every surviving mutant
with its diff. A module not run this time keeps its previous section in the file. It is slow (minutes per
module), so it is not part of ``.ci/run``; run it after changing one of these modules or its tests.
A survivor is either killed by a new test or explained as equivalent in EQUIVALENT below (the
reason lands in the doc beside it).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "development" / "mutation.md"
SPECS = REPO.parent / "shared" / "vendor-specs"

# module (under src/offboard/) -> the tests that guard it. Narrow on purpose: mutmut runs, for each
# mutant, only the tests of this selection that call into the mutated function.
MODULES: dict[str, list[str]] = {
    "wire/redact.py": ["tests/unit/test_redact.py", "tests/unit/test_audit.py"],
    "proof/signing.py": ["tests/unit/test_signing_checks.py", "tests/unit/test_signing.py",
                         "tests/unit/test_signing_by_default.py", "tests/unit/test_keys_cli.py"],
    "engine/guards.py": ["tests/unit/test_guards.py"],
    "proof/audit.py": ["tests/unit/test_audit_verdicts.py", "tests/unit/test_audit.py",
                       "tests/unit/test_audit_verify_cli.py"],
    "wire/http.py": ["tests/unit/test_http_parts.py", "tests/unit/test_http.py", "tests/unit/test_unreachable_host.py",
                     "tests/connectors/test_huntress_calls.py", "tests/connectors/test_blumira_calls.py",
                     "tests/connectors/test_sandbox_faults.py"],
    "proof/bundle.py": ["tests/unit/test_bundle_views.py", "tests/connectors/test_bundle.py"],
    "engine/execute.py": ["tests/reliability/test_write_lines.py",
                          "tests/reliability/test_scope_property.py", "tests/reliability/test_fresh_ownership.py",
                          "tests/reliability/test_crash_anywhere.py::test_a_write_started_before_a_crash_is_re_read_"
                          "on_resume_not_resent_while_its_object_is_still_listed",
                          "tests/reliability/test_vendor_lanes.py", "tests/connectors/test_blumira_fidelity.py"],
    "engine/scope_guard.py": ["tests/unit/test_call_costs.py",
                              "tests/reliability/test_write_lines.py", "tests/reliability/test_fresh_ownership.py",
                              "tests/reliability/test_scope_property.py::test_the_engine_sends_a_write_only_when_the_"
                              "owner_is_the_plans"],
}

# Survivors that no test can kill because the mutant behaves exactly as the original does:
# "module: mutant name" -> why.
EQUIVALENT: dict[str, str] = {
    "proof/signing.py: offboard.proof.signing.x_write_key_file__mutmut_32":
        "`unlink(missing_ok=None)`: the file was created by this call (O_EXCL) a moment before, so it exists "
        "when a failed write removes it; missing_ok only matters if it does not",
    "proof/signing.py: offboard.proof.signing.x_write_key_file__mutmut_33":
        "`unlink(missing_ok=False)`: the same, the file this call created is there to remove",
    **{f"engine/guards.py: offboard.engine.guards.x__safety__mutmut_{n}":
       "`model_dump(mode=...)` other than \"json\" (python mode): an action's fields are strings, booleans, None "
       "and nested models, which both modes dump alike, so the comparison and its message are the same"
       for n in (1, 2, 3)},
    # httpx's headers are case-insensitive: the same header, read or sent under another spelling
    **{f"wire/http.py: offboard.wire.http.{name}":
       "a header name in another case: httpx.Headers are case-insensitive, so it is the same header"
       for name in ("xǁVendorHttpǁ__init____mutmut_37", "xǁVendorHttpǁ__init____mutmut_38",
                    "xǁVendorHttpǁ__init____mutmut_40", "xǁVendorHttpǁ__init____mutmut_41",
                    "xǁVendorHttpǁrequest__mutmut_27", "xǁVendorHttpǁrequest__mutmut_28",
                    "xǁVendorHttpǁrequest__mutmut_215", "x__read_capped__mutmut_20",
                    "xǁVendorHttpǁ_json_or_none__mutmut_20")},
    "proof/audit.py: offboard.proof.audit.x_seal__mutmut_18":
        "`encode(\"UTF-8\")`: the same codec as \"utf-8\" under another spelling",
    "proof/audit.py: offboard.proof.audit.x_seal__mutmut_4":
        "`ensure_ascii=None`: json reads it as false, the value it had",
    **{f"proof/audit.py: offboard.proof.audit.x_repair_torn_tail__mutmut_{n}":
       "a log that already ends with a newline (or is empty) is truncated to its own length: nothing is removed "
       "and 0 bytes are reported, as when it returns early"
       for n in (4, 7)},
    **{f"engine/execute.py: offboard.engine.execute.x__run_action__mutmut_{n}":
       "the message of `raise AssertionError(\"unreachable\")` after the two attempts: every path of the second "
       "attempt returns (a lost reply re-read as not landed returns `action.failed` there), so it is never raised"
       for n in (240, 241, 242)},
    **{f"engine/execute.py: offboard.engine.execute.xǁRunPassǁone__mutmut_{n}":
       "a settle-only action counted `skipped` instead of `succeeded` (or the other way) in this pass's own tally: "
       "that tally decides the exit code from its failed, unknown and blocked counts only, and every count a "
       "command prints or records is read from the audit log, whose line is unchanged"
       for n in (53, 54, 57, 58, 59)},
    **{f"engine/execute.py: offboard.engine.execute.xǁRunPassǁone__mutmut_{n}":
       "the default of `WRITE_OUTCOMES.get(event, \"\")` is never taken: a write ends in one of the four events "
       "the table maps, or in manual.pending, which goes to a person before the key is used"
       for n in (105, 107, 108)},
    **{f"engine/execute.py: offboard.engine.execute.xǁRunPassǁ_to_person__mutmut_{n}":
       "`guided`'s first value other than \"pending\" (None, another string): it is only ever compared with "
       "\"confirmed\" and \"stop\", and a guide, when there is one, replaces it before that"
       for n in (1, 2, 3)},
    "engine/execute.py: offboard.engine.execute.x__verify_and_close__mutmut_38":
        "a re-read that names no action looked up under `XXXX` instead of '': no action has either id, so the "
        "failed check counts as failed either way",
    "proof/bundle.py: offboard.proof.bundle.x__read_small__mutmut_5":
        "`read(cap + 2)` for `read(cap + 1)`: a file over the cap is refused either way (more than cap bytes read), "
        "one within it is read whole either way",
    "proof/bundle.py: offboard.proof.bundle.x__refuse_unless_verified__mutmut_31":
        "an unreadable state.json read as '' instead of None: `type(recorded) is int` is false for both, so the "
        "cut-back check is skipped either way",
    **{f"proof/bundle.py: offboard.proof.bundle.x__write__mutmut_{n}":
       "tarfile's format None or left out: TarFile keeps its default, PAX_FORMAT, the one asked for"
       for n in (16, 19)},
    **{f"proof/bundle.py: offboard.proof.bundle.x__run_files__mutmut_{n}":
       "os.walk's followlinks (None, left out, or True): a linked folder is refused while its parent's entries are "
       "read, before os.walk (top-down) could descend into it, so no walk ever follows one"
       for n in (5, 7, 8)},
    **{f"proof/bundle.py: offboard.proof.bundle.x_create__mutmut_{n}":
       "`model_dump(mode=...)` other than \"json\" (python mode): the manifest's fields are strings, integers and "
       "nested models of those, which both modes dump alike, so its bytes are the same"
       for n in (140, 141, 142)},
    "proof/bundle.py: offboard.proof.bundle.xǁ_HashingReaderǁreadable__mutmut_1":
        "`readable()` answering False: tarfile copies a member through read() alone and never asks readable()",
    "proof/bundle.py: offboard.proof.bundle.x__json__mutmut_5":
        "`ensure_ascii=None`: json reads it as false, the value it had",
    "proof/bundle.py: offboard.proof.bundle.x_verify__mutmut_42":
        "an empty BUNDLE.sig read as `XXXX`: that decodes to three bytes, no Ed25519 signature either, so the "
        "verdict and its line are the same (the signature does not verify)",
    **{f"wire/http.py: offboard.wire.http.xǁVendorHttpǁ_refused__mutmut_{n}":
       "the refusal reader's exclusion of 401, 403 and 429 is never reached: refused credentials are raised as "
       "such before the reader is asked, and a 429 is retried or given up as throttling, never shown to it"
       for n in (1, 7, 9)},
    "wire/http.py: offboard.wire.http.xǁVendorHttpǁ_refused__mutmut_14":
        "`nesting_depth(content)` without the limit: the limit only lets the count stop early; the depth it "
        "returns is exact either way, so the verdict is the same",
    **{f"wire/http.py: offboard.wire.http.xǁVendorHttpǁ_refused__mutmut_{n}":
       "a header name in another case: httpx.Headers are case-insensitive, so it is the same header"
       for n in (24, 30)},
    "wire/http.py: offboard.wire.http.x_parse_retry_after__mutmut_17":
        "`datetime.now(None).timestamp()`: a naive local time converts to the same POSIX timestamp as the UTC one",
    "wire/http.py: offboard.wire.http.x_request_line__mutmut_1":
        "the default of `query`: every caller passes the query (the record's, or the audit line's with '')",
    "wire/http.py: offboard.wire.http.xǁVendorHttpǁdownload__mutmut_8":
        "`request(\"get\", ...)`: request() upper-cases the method before anything uses it",
    "wire/http.py: offboard.wire.http.xǁVendorHttpǁget__mutmut_10":
        "the method in lower case: request() upper-cases the method before anything uses it",
    **{f"wire/http.py: offboard.wire.http.xǁVendorHttpǁ_shown_url__mutmut_{n}":
       "how the recorded query is decoded (codec spelled `ASCII`, UTF-8, another error handler): httpx.URL.query is "
       "the query encoded as ASCII by httpx itself, so any of these decodes it alike and no error handler is looked up"
       for n in (23, 24, 26, 27, 28)},
    "wire/http.py: offboard.wire.http.xǁVendorHttpǁ__init____mutmut_29":
        "`follow_redirects=None`: httpx treats it as false, its default, so redirects are still not followed",
    "wire/http.py: offboard.wire.http.xǁVendorHttpǁ__init____mutmut_35":
        "`follow_redirects` left out: httpx.Client does not follow redirects by default, so none is followed",
    "wire/http.py: offboard.wire.http.x__read_capped__mutmut_21":
        "a missing Content-Length read as `XXXX` instead of '': neither is a number, so the body is read the same way",
    "wire/http.py: offboard.wire.http.xǁVendorHttpǁ_remaining__mutmut_9":
        "a missing calls-left header read as `XXXX` instead of '': neither is a number, so no count is told either way",
    **{f"wire/http.py: offboard.wire.http.xǁVendorHttpǁ_retry_wait__mutmut_{n}":
       "the `is not None` guards of the retry's wait: tenacity calls before_sleep only once a retry is decided, with "
       "the attempt's outcome set and its next action (the sleep) known, so the guards always hold"
       for n in (3, 5, 8)},
    "wire/http.py: offboard.wire.http.xǁVendorHttpǁrequest__mutmut_22":
        "the guard on `state.outcome` in the wait: tenacity asks for a wait only after an attempt, whose outcome "
        "is set",
    "wire/http.py: offboard.wire.http.xǁVendorHttpǁrequest__mutmut_134":
        "`status != 430` for `status != 429` in the retry test: a 429 is never read as a refusal (`_refused` returns "
        "None for it), so the test is false for it either way, and no other retried status (5xx) is 429 or 430",
    "wire/http.py: offboard.wire.http.xǁVendorHttpǁrequest__mutmut_50":
        "`record`'s first value: every attempt sets it (in its finally) before anything reads it, and an attempt that "
        "raises before that (a request that cannot be built, Ctrl-C in the limiter's wait) ends the call unread",
    "wire/http.py: offboard.wire.http.xǁVendorHttpǁclose__mutmut_4":
        "`shutdown(cancel_futures=True)` without `wait=True`: waiting is shutdown's default",
}

GOAL = 0.90
BEGIN, END = "<!-- mutation:{} -->", "<!-- /mutation:{} -->"


@dataclass
class Result:
    module: str
    tests: list[str]
    total: int
    killed: int
    equivalent: int
    minutes: float
    survivors: dict[str, dict[str, str]] = field(default_factory=dict)
    only: tuple[str, ...] = ()
    date: str = field(default_factory=lambda: time.strftime("%Y-%m-%d"))

    @property
    def rate(self) -> float:
        counted = self.total - self.equivalent
        return self.killed / counted if counted else 1.0


def run_module(module: str, jobs: int, only: tuple[str, ...] = ()) -> Result:
    tests = MODULES[module]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="offboard-mutation-") as scratch:
        work = Path(scratch) / "repo"
        shutil.copytree(REPO, work, ignore=shutil.ignore_patterns(
            ".venv", ".git", "mutants", "__pycache__", ".hypothesis", ".mypy_cache", ".ruff_cache", "runs"))
        pyproject = work / "pyproject.toml"
        text = pyproject.read_text()
        config = {**tomllib.loads(text)["tool"]["mutmut"],  # the shared part, from the repository's pyproject
                  "only_mutate": [f"src/offboard/{module}"], "pytest_add_cli_args_test_selection": tests}
        text = re.sub(r"(?ms)^\[tool\.mutmut\].*?(?=^\[|\Z)", "", text)
        section = "".join(f"{k} = {json.dumps(v)}\n" for k, v in config.items())
        pyproject.write_text(f"{text}\n[tool.mutmut]\n{section}")
        env = {**os.environ, "OFFBOARD_VENDOR_SPECS": str(SPECS), "CI": "1",  # same examples every time
               "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
               "XDG_CACHE_HOME": str(Path(scratch) / "cache")}
        mutmut = [sys.executable, "-m", "mutmut"]
        prefix = "offboard." + module.removesuffix(".py").replace("/", ".") + "."
        run = subprocess.run([*mutmut, "run", "--max-children", str(jobs), *(prefix + o for o in only)],
                             cwd=work, env=env, capture_output=True, text=True)
        results = subprocess.run([*mutmut, "results", "--all", "true"], cwd=work, env=env,
                                 capture_output=True, text=True)
        statuses: dict[str, str] = {}
        for line in results.stdout.splitlines():
            name, _, status = line.strip().partition(": ")
            if name and status:
                statuses[name] = status
        checked = {n: st for n, st in statuses.items() if st != "not checked"
                   and (not only or any(fnmatch.fnmatch(n, prefix + o) for o in only))}
        if run.returncode != 0 or not checked:
            raise SystemExit(f"mutmut ran no mutant of {module}:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
        survivors = {}
        for name, status in sorted(statuses.items()):
            if status in ("survived", "no tests"):
                diff = subprocess.run([*mutmut, "show", name], cwd=work, env=env, capture_output=True, text=True)
                survivors[name] = {"status": status, "diff": diff.stdout.strip()}
    statuses = checked
    killed = sum(1 for s in statuses.values() if s in ("killed", "timeout", "segfault", "suspicious"))
    equivalent = sum(1 for n in survivors if f"{module}: {n}" in EQUIVALENT)
    return Result(module, tests, len(statuses), killed, equivalent, (time.monotonic() - started) / 60, survivors,
                  only)


def command(module: str, only: tuple[str, ...] | list[str] = ()) -> str:
    """The command that produces a module's section, as one can paste it."""
    return f".venv/bin/python bench/mutation.py {module}" + "".join(
        f" {o}" if i else f" --only {o}" for i, o in enumerate(f"'{g}'" for g in only))


COMMAND = "Command: `{}`"


def section(r: Result) -> str:
    module = r.module
    lines = [BEGIN.format(module), f"### `src/offboard/{module}`", "",
             f"{r.killed} of {r.total} mutants killed" + (f", {r.equivalent} equivalent" if r.equivalent else "")
             + f": **{r.rate:.1%}** (run {r.date}, {r.minutes:.1f} min, tests: "
             + ", ".join(f"`{t}`" for t in r.tests) + ")"
             + (f"; **only** the mutants of {', '.join(f'`{o}`' for o in r.only)}, the rest not run" if r.only else ""),
             "", COMMAND.format(command(module, r.only)), ""]
    for name, s in r.survivors.items():
        why = EQUIVALENT.get(f"{module}: {name}")
        lines += [f"- `{name}` ({'equivalent: ' + why if why else s['status']})", "", "  ```diff",
                  *("  " + d for d in s["diff"].splitlines()), "  ```", ""]
    lines.append(END.format(module))
    return "\n".join(lines)


HEADER = """# Mutation testing

Generated by `.venv/bin/python bench/mutation.py` (see [development](../development.md)); do not edit by hand.
Each module's safety checks are broken on purpose, one small change (a *mutant*) at a time, by
[mutmut](https://mutmut.readthedocs.io/), and the tests that guard the module are run against each
mutant. A mutant the tests catch is *killed*; one they do not is a *survivor*: a check that could
be deleted without a test noticing, unless it is *equivalent* (it behaves exactly as the original,
explained beside it). The goal is at least 90 % killed in each module. A module "not run yet" has
no result on record: run `.venv/bin/python bench/mutation.py MODULE` (its section then lands here).

"""


def write_doc(results: list[Result]) -> None:
    old = DOC.read_text() if DOC.exists() else ""
    sections = {m: re.search(re.escape(BEGIN.format(m)) + r".*?" + re.escape(END.format(m)), old, re.S)
                for m in MODULES}
    kept = {m: s.group(0) for m, s in sections.items() if s}
    for m, text in kept.items():  # a section written before its command was shown: the command, from its text
        if "Command: `" not in text:
            only = re.search(r"\*\*only\*\* the mutants of (.*?), the rest not run", text)
            globs = re.findall(r"`([^`]+)`", only.group(1)) if only else []
            rate_line = next(line for line in text.splitlines() if " mutants killed" in line)
            kept[m] = text.replace(rate_line, f"{rate_line}\n\n{COMMAND.format(command(m, globs))}", 1)
    for r in results:
        kept[r.module] = section(r)
    rows = ["| module | mutants | killed | equivalent | kill rate (of the rest) |", "|---|---:|---:|---:|---:|"]
    for m in MODULES:
        found = re.search(r"(\d+) of (\d+) mutants killed(?:, (\d+) equivalent)?: \*\*([\d.]+%)\*\*",
                          kept.get(m, ""))
        partial = " (some functions only)" if "**only**" in kept.get(m, "") else ""
        rows.append(f"| `{m}`{partial} | {found.group(2)} | {found.group(1)} | {found.group(3) or 0} | "
                    f"{found.group(4)} |" if found else f"| `{m}` | not run yet | | | |")
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(HEADER + "\n".join(rows) + "\n\n## Survivors by module\n\n"
                   + "\n\n".join(kept[m] for m in MODULES if m in kept) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help=f"modules under src/offboard/ (default: all {len(MODULES)})")
    parser.add_argument("--jobs", type=int, default=1, help="mutants run side by side (default 1)")
    parser.add_argument("--only", nargs="+", default=[], metavar="GLOB",
                        help="only the mutants of these functions (mutmut's names within the module, e.g. "
                             "'x_verify*'); the doc says the run was partial")
    args = parser.parse_args()
    unknown = [m for m in args.modules if m not in MODULES]
    if unknown:
        parser.error(f"not a module this script covers: {', '.join(unknown)} (one of: {', '.join(MODULES)})")
    results = []
    for module in args.modules or list(MODULES):
        r = run_module(module, args.jobs, tuple(args.only))
        results.append(r)
        write_doc(results)  # each module's section lands as soon as it is known
        print(f"{module}: {r.killed}/{r.total} killed ({r.rate:.1%}), {len(r.survivors)} survivor(s)", flush=True)
    below = [r.module for r in results if r.rate < GOAL]
    print(f"written to {DOC.relative_to(REPO)}" + (f"; below {GOAL:.0%}: {', '.join(below)}" if below else ""))
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main())

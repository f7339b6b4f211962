# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The reliability figures of docs/reliability.md, measured by running the tests that assert them against the lab.

    .venv/bin/python benchmarks/reliability.py            # every figure (about 15 minutes on 2 cores)
    .venv/bin/python benchmarks/reliability.py --quick    # bad inputs only (about 5 minutes)

Each figure comes from tests that fail when it is wrong: a bad input counts as refused cleanly only when its error
names the problem, the lab's call log shows no mutating call and nothing changed (tests/integration/bad_inputs.py);
a fault counts as survived only when exactly one failover or restore happened and the result says so; a kill counts
as cleaned up only when the lab holds no leftover after the cleanup or the sweep; a secret is counted as found when
the leak test finds any password in pg_stat_statements, pg_stat_activity or the server log.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time
from xml.etree import ElementTree

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The bad-input files, and the tests that run their module's bad inputs in the module's own lab (to share it).
BAD_INPUTS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests" / "integration").glob("test_bad_inputs_*.py")) + [
    "tests/integration/test_rds_blue_green.py::test_bad_inputs_are_refused_before_any_change",
    "tests/integration/test_rds_upgrade_drill.py::test_bad_inputs_are_refused_before_any_change",
]
FAULTS = ["tests/integration/test_failover_faults.py", "tests/integration/test_restore_faults.py",
          "tests/integration/test_mutating_call_throttling.py", "tests/lab/test_lost_answer.py"]
SECRETS = ["tests/integration/test_rds_users.py", "tests/integration/test_drill_sql_secrets.py"]

# figure -> (files, test name pattern)
FIGURES = {
    "lost answers survived with exactly one side effect": (FAULTS, r"lost"),
    "throttled mutating calls survived with exactly one side effect": (FAULTS, r"throttl"),
    "drills killed (SIGTERM / SIGKILL) and cleaned up or swept to zero": (FAULTS, r"sigterm|sigkill|killed"),
    "application tables named as a probe table that survived": (FAULTS, r"application_table"),
    "concurrent drills of one source that both passed": (FAULTS, r"two_drills"),
    "password leak checks with no secret found": (SECRETS, r"no_password"),
}


def run_pytest(files, log, junit):
    env = dict(os.environ, DBRE_RELIABILITY_LOG=str(log))
    command = [sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadfile", f"--junitxml={junit}", *files]
    started = time.monotonic()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    return done, time.monotonic() - started


def outcomes(junit):
    """[(file, test name, passed)] from a JUnit XML file."""
    found = []
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        failed = any(child.tag in ("failure", "error", "skipped") for child in case)
        path = case.get("classname", "").replace(".", "/") + ".py"
        found.append((path, case.get("name", ""), not failed))
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="bad inputs only")
    args = parser.parse_args()
    files = BAD_INPUTS + ([] if args.quick else FAULTS + SECRETS)
    with tempfile.TemporaryDirectory(prefix="dbre-reliability-") as tmp:
        log, junit = pathlib.Path(tmp) / "log.jsonl", pathlib.Path(tmp) / "junit.xml"
        done, seconds = run_pytest(files, log, junit)
        records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        cases = outcomes(junit) if junit.exists() else []
    tried = sum(r["tried"] for r in records if r["kind"] == "bad_inputs")
    clean = sum(r["refused_cleanly"] for r in records if r["kind"] == "bad_inputs")
    rows = [("bad inputs tried", tried, "tests/integration/test_bad_inputs_*.py and the test_bad_inputs_* tests"),
            ("bad inputs refused cleanly (message names it, no mutating call, nothing changed)", clean, "")]
    by_target = {}
    for record in records:
        by_target[record["target"]] = by_target.get(record["target"], 0) + record["tried"]
    if not args.quick:
        for figure, (figure_files, pattern) in FIGURES.items():
            matching = [c for c in cases if c[0] in figure_files and re.search(pattern, c[1])]
            rows.append((figure, f"{sum(1 for c in matching if c[2])} of {len(matching)}",
                         " ".join(sorted({c[0] for c in matching}))))
        broken = [c for c in cases if c[0] in FAULTS and re.search(r"lost|throttl", c[1]) and not c[2]]
        rows.append(("double side effects (a second failover or restore)", len(broken), " ".join(FAULTS)))
        leaks = [c for c in cases if c[0] in SECRETS and re.search(FIGURES["password leak checks with no secret found"][1],
                                                                   c[1]) and not c[2]]
        rows.append(("secrets found where another login can read them", len(leaks), " ".join(SECRETS)))
    width = max(len(r[0]) for r in rows)
    print(f"Reliability figures ({seconds:.0f} s, pytest exit {done.returncode}): "
          f".venv/bin/python benchmarks/reliability.py{' --quick' if args.quick else ''}\n")
    print(f"| {'Figure'.ljust(width)} | Value | Reproduce with |")
    print(f"| {'-' * width} | --- | --- |")
    for name, value, where in rows:
        command = f"`.venv/bin/pytest -q {where}`" if where else ""
        print(f"| {name.ljust(width)} | {value} | {command} |")
    print("\nBad inputs by module or role: " + ", ".join(f"{t} {n}" for t, n in sorted(by_target.items())))
    if done.returncode != 0:
        print("\nSome tests failed; their output:\n" + done.stdout[-6000:])
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())

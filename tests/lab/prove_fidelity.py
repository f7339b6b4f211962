# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 3's proof: each behaviour's tests fail on plain moto and pass on the lab.

``python -m tests.lab.prove_fidelity`` runs the behaviour test files twice, with ``LAB_FIDELITY=off`` (plain moto
5.2.5 behind the same fixture) and with the lab, and prints a Markdown table. It exits 0 only when every behaviour
has at least one test failing on plain moto and every test passing on the lab.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from xml.etree import ElementTree

REPO = pathlib.Path(__file__).resolve().parents[2]
LAB_TESTS = "tests/lab"

BEHAVIOURS = (
    (1, "Parameter metadata", "test_parameter_metadata.py"),
    (2, "Parameter validation", "test_parameter_validation.py"),
    (3, "Parameters reach PostgreSQL", "test_parameters_reach_postgres.py"),
    (4, "Status changes take time", "test_status_timing.py"),
    (5, "Reboot and failover", "test_reboot_failover.py"),
    (6, "Snapshots hold data", "test_snapshots.py"),
    (7, "Point-in-time restore", "test_point_in_time_restore.py"),
    (8, "Deletion", "test_deletion.py"),
    (9, "Faults on demand", "test_faults.py"),
    (10, "Call log", "test_call_log.py"),
    (11, "Server log", "test_server_log.py"),
    (12, "Lost answers", "test_lost_answer.py"),
    (13, "TLS on every endpoint", "test_tls.py"),
    (14, "rds.force_ssl", "test_force_ssl.py"),
    (15, "max_connections and clamp events", "test_max_connections.py"),
    (16, "Engine versions and orderable classes", "test_engine_versions.py"),
    (17, "Automated backups and restore window", "test_automated_backups.py"),
    (18, "RDS Proxy with PgBouncer", "test_db_proxy.py"),
    (19, "Snapshot copies with KMS, across regions", "test_snapshot_copy.py"),
    (20, "Renames, stop and start, encrypted restores", "test_encryption.py"),
    (21, "Logical replication by the master user", "test_logical_replication.py"),
    (22, "Performance Insights from pg_stat_activity", "test_performance_insights.py"),
    (23, "Aurora readers as hot standbys, lossless Aurora failover", "test_aurora_readers.py"),
    (24, "Aurora Global Database across regions", "test_global_clusters.py"),
    (25, "CloudWatch metrics from PostgreSQL, metric histories", "test_metrics.py"),
    (26, "Read replicas as standbys across regions, promotion, lag", "test_replication.py"),
    (27, "Blue/green deployments: logical replication, switchover, rollback", "test_blue_green.py"),
    (28, "Engine upgrades: refusals, pre-checks, pg_upgrade to 18, PostgreSQL 18 instances", "test_upgrades.py"),
)


def run_pytest(files: list[str], fidelity: bool, workdir: pathlib.Path) -> tuple[dict, float]:
    """Run pytest once over files; return {file: [(test, outcome, message)]} and the wall time."""
    report = workdir / ("lab.xml" if fidelity else "plain.xml")
    env = dict(os.environ, LAB_FIDELITY="on" if fidelity else "off")
    env.pop("LAB_REUSE", None)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=no", f"--junitxml={report}",
               *[f"{LAB_TESTS}/{name}" for name in files]]
    started = time.monotonic()
    subprocess.run(command, cwd=str(REPO), env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.monotonic() - started
    if not report.exists():
        raise RuntimeError(f"pytest wrote no report ({' '.join(command)})")
    return read_report(report, files), seconds


def read_report(report: pathlib.Path, files: list[str]) -> dict:
    """{file: [(test, outcome, message)]} from a pytest JUnit XML report."""
    results: dict[str, list] = {name: [] for name in files}
    for case in ElementTree.parse(report).iter("testcase"):
        name = case.get("classname", "").rsplit(".", 1)[-1] + ".py"
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            element = case.find(kind)
            if element is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[kind]
                message = (element.get("message") or "").strip().splitlines()[0] if element.get("message") else ""
                break
        results.setdefault(name, []).append((case.get("name"), outcome, message))
    return results


def _short(message: str, width: int = 90) -> str:
    message = message.replace("|", "/").replace("`", "'")
    return message if len(message) <= width else message[:width - 3] + "..."


def summarize(plain: dict, lab: dict) -> tuple[list[str], bool]:
    lines = ["| # | Behaviour | Test file | Plain moto (`LAB_FIDELITY=off`) | Lab | Proven |",
             "| --- | --- | --- | --- | --- | --- |"]
    proven_all = True
    for number, title, name in BEHAVIOURS:
        plain_cases, lab_cases = plain.get(name, []), lab.get(name, [])
        plain_failed = [case for case in plain_cases if case[1] in ("failed", "error")]
        lab_passed = [case for case in lab_cases if case[1] == "passed"]
        proven = bool(plain_failed) and bool(lab_cases) and len(lab_passed) == len(lab_cases)
        proven_all = proven_all and proven
        # A lab-only control route (faults, timing) missing on plain moto says less than an AWS answer does.
        on_the_api = [case for case in plain_failed if not case[2].startswith("tests.lab.control.LabControlError")]
        shown = (on_the_api or plain_failed)[:1]
        first = f" (e.g. `{_short(shown[0][2])}`)" if shown else ""
        lines.append(f"| {number} | {title} | `tests/lab/{name}` | {len(plain_failed)} of {len(plain_cases)} fail"
                     f"{first} | {len(lab_passed)} of {len(lab_cases)} pass | {'yes' if proven else 'NO'} |")
    return lines, proven_all


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab.prove_fidelity", description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="also list every test with both outcomes")
    parser.add_argument("--lab-report", type=pathlib.Path,
                        help="JUnit XML of a lab run that already happened (pytest --junitxml=... tests/lab) instead "
                             "of running the lab side again")
    args = parser.parse_args(argv)
    files = [behaviour[2] for behaviour in BEHAVIOURS]
    with tempfile.TemporaryDirectory(prefix="lab-proof-") as tmp:
        workdir = pathlib.Path(tmp)
        plain, plain_seconds = run_pytest(files, fidelity=False, workdir=workdir)
        if args.lab_report:
            lab, lab_seconds = read_report(args.lab_report, files), None
        else:
            lab, lab_seconds = run_pytest(files, fidelity=True, workdir=workdir)
    lines, proven = summarize(plain, lab)
    print("\n".join(lines))
    lab_took = f"lab run {lab_seconds:.0f} s" if lab_seconds is not None else f"lab results from {args.lab_report}"
    print(f"\nplain moto run {plain_seconds:.0f} s, {lab_took}; load average {os.getloadavg()[0]:.1f}")
    if args.verbose:
        for name in files:
            lab_outcomes = {case[0]: case[1] for case in lab.get(name, [])}
            for test, outcome, message in plain.get(name, []):
                print(f"{name}::{test}: plain {outcome}, lab {lab_outcomes.get(test, 'missing')}  "
                      f"{_short(message, 120)}")
    print("every behaviour proven" if proven else "NOT PROVEN: see the rows marked NO")
    return 0 if proven else 1


if __name__ == "__main__":
    sys.exit(main())

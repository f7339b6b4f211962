# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cost of a growing fleet: the tune and restore-drill playbooks over the aws_rds inventory, on the lab.

For each fleet size (1, 10 and 50 databases by default) the lab gets that many RDS PostgreSQL 15 instances (real
PostgreSQL servers, db.t3.micro, us-east-1, each with its own parameter group, tagged dbre:env=bench); sizes grow in
one lab, so the 10 include the 1. For each size:

  - memory: PSS and RSS (from /proc/<pid>/smaps_rollup) of each instance's PostgreSQL processes (its postmaster,
    found by its data directory under the lab's state dir, and the postmaster's children), and the RSS of the lab's
    server process (moto and the lab's Python);
  - ansible-inventory --list on playbooks/inventory/aws_rds.yml: wall time and API calls;
  - playbooks/tune_parameters.yml on the size's hosts (-i playbooks/inventory/aws_rds.yml -l <hosts> -f FORKS) for
    each FORKS (1, 5, 10): wall time, API calls per database (the lab's call log, inventory's calls included). Before
    each run every group is reset (ResetDBParameterGroup, not measured), so every run makes the same changes;
  - amazon.aws.rds_instance_param_group in a loop (benchmarks/param_tune.py's playbook) on as many empty groups,
    created beforehand like the playbook's, set to the values the tune playbook set: the issue wants the 50-group
    tune in at most half of this time; "same values" compares every group's user values with the tuned groups';
  - playbooks/restore_drill.yml on the size's hosts for each FORKS with dbre_rds_max_parallel_drills=FORKS (the
    playbook's batches, so FORKS drills run at once): wall time, API calls per database, drills passed (from the run's
    fleet report).

    .venv/bin/python benchmarks/fleet.py [--sizes 1 10 50] [--forks 1 5 10] [--drill-sizes ...] [--drill-forks ...]
                                         [--no-amazon] [--budget SECONDS] [--lab-url URL]

Restore drills on 50 databases one at a time take long: --drill-sizes / --drill-forks (default: --sizes / --forks)
limit them; --budget starts no new measurement after that many seconds. amazon.aws runs right after the first
--forks value's tune (it needs its values). Without --lab-url (or LAB_URL) a private lab is started and stopped; with
it, the lab must be on this machine (memory is read from /proc) and hold no bench-fleet-* resources. Writes
benchmarks/output/fleet.json (every run's API calls by action too).

One run on 2026-11-30 07:45 UTC, on a 2-core machine shared with other jobs (load average 12 falling to 3 during the
run, so the small sizes ran on a busier machine than the 50; compare within a size), with the tune playbook's
run_once form (tasks/fleet_tune.yml: one rds_param_tune per region for the play's databases); restore drills only
at 1 and 10 databases with forks 10 (the time left; see below for forks 1 and 5):

    command: .venv/bin/python benchmarks/fleet.py --sizes 1 10 50 --forks 10 5 1 --drill-sizes 1 10 --drill-forks 10
             --budget 900

     DBs  create s PSS MiB/inst RSS MiB/inst procs/inst PSS MiB all lab server RSS MiB
    ----------------------------------------------------------------------------------
       1         5         19.8         77.2        7.0          20                216
      10        43         14.7         80.1        7.0         147                234
      50        27         14.0         80.5        7.0         699                239

     DBs  run                                  forks  wall s   s/DB API calls calls/DB mutating  result
    ---------------------------------------------------------------------------------------------------
       1  ansible-inventory --list                       6.7   6.70         5      5.0        0  1 hosts
       1  playbooks/tune_parameters.yml           10    28.8  28.80        14     14.0        1  19 values set
       1  playbooks/tune_parameters.yml            5    32.2  32.20        14     14.0        1  19 values set
       1  playbooks/tune_parameters.yml            1    31.7  31.70        14     14.0        1  19 values set
       1  playbooks/restore_drill.yml             10    46.5  46.50        14     14.0        2  1/1 drills passed
       1  amazon.aws.rds_instance_param_group   loop    12.7  12.70         8      8.0        1  same values
      10  ansible-inventory --list                       3.6   0.36        14      1.4        0  10 hosts
      10  playbooks/tune_parameters.yml           10    19.2   1.92        60      6.0       10  19 values set
      10  playbooks/tune_parameters.yml            5    11.1   1.11        60      6.0       10  19 values set
      10  playbooks/tune_parameters.yml            1    13.8   1.38        60      6.0       10  19 values set
      10  playbooks/restore_drill.yml             10   134.2  13.42        84      8.4       20  10/10 drills passed
      10  amazon.aws.rds_instance_param_group   loop    17.5   1.75        80      8.0       10  same values
      50  ansible-inventory --list                       5.0   0.10        54      1.1        0  50 hosts
      50  playbooks/tune_parameters.yml           10    36.3   0.73       260      5.2       50  19 values set
      50  playbooks/tune_parameters.yml            5    25.1   0.50       260      5.2       50  19 values set
      50  playbooks/tune_parameters.yml            1    30.0   0.60       260      5.2       50  19 values set
      50  amazon.aws.rds_instance_param_group   loop    63.3   1.27       400      8.0       50  same values

      50 groups, forks 10: tune playbook 36.3 s = 0.57 x amazon.aws's 63.3 s (NOT within the issue's 0.5)
      50 groups, forks  5: tune playbook 25.1 s = 0.40 x amazon.aws's 63.3 s (within the issue's 0.5)
      50 groups, forks  1: tune playbook 30.0 s = 0.47 x amazon.aws's 63.3 s (within the issue's 0.5)
      (10 groups: 0.63 to 1.10 x; 1 group: 2.3 to 2.5 x; forks 10 ran first, right after the instances were created)

Reading it: memory grows with the instances (about 14 MiB PSS, 80 MiB RSS and 7 processes per PostgreSQL; the lab
server itself about 240 MiB whatever the size). The tune playbook's time hardly grows with the fleet (one module run
for all the groups, forks only matter for the per-host set_fact/set_stats tasks) while amazon.aws's loop grows by
about 1.1 s per group; the playbook's calls per database fall from 14 to 5.2 (per database the inventory's
ListTagsForResource, and one DescribeDBInstances, DescribeDBParameterGroups, DescribeDBParameters and
ModifyDBParameterGroup; the engine defaults and the class sizing once). At one database the playbook pays the
inventory, the plan and the fleet report, so it is slower than a single amazon.aws task. Restore drills cost about
8.4 calls and 13 s of wall time per database on 2 cores: the restores' PostgreSQL start-ups and copies are
CPU-bound, so forks do not shorten them here.

An earlier run the same morning (07:15 UTC, --sizes 1 10, load average 9 to 19; its whole output in
benchmarks/output/fleet-per-host-tune-2026-11-30.txt) measured the restore drill at 10 databases with forks 1, 5 and
10: 170.5, 149.5 and 160.1 s (10/10 passed each time; 10.4, 8.6 and 8.4 calls per database), and the tune playbook
as it was before tasks/fleet_tune.yml, one rds_instance_info and one rds_param_tune per host: 10 databases in 162.8,
56.7 and 45.2 s with forks 1, 5 and 10 (11.4 calls per database) against amazon.aws's 32.6 s, 1.39 x at best.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.param_tune import AMAZON, measure, user_values  # noqa: E402
from tests.lab.__main__ import lab_env, start_daemon, stop_daemon  # noqa: E402
from tests.lab.control import LabControl  # noqa: E402

INVENTORY = ROOT / "playbooks" / "inventory" / "aws_rds.yml"
TUNE = ROOT / "playbooks" / "tune_parameters.yml"
DRILL = ROOT / "playbooks" / "restore_drill.yml"
OUTPUT = ROOT / "benchmarks" / "output"
BIN = ROOT / ".venv" / "bin"
REGION = "us-east-1"
PREFIX = "bench-fleet"
USER, PASSWORD, DB_NAME = "dbadmin", "Bench-Fleet-1", "app"
INSTANCE_CLASS = "db.t3.micro"


def name(index):
    return f"{PREFIX}-{index:03d}"


def group_name(index):
    return f"{PREFIX}-pg-{index:03d}"


def amazon_group_prefix(size):
    return f"{PREFIX}-aws-{size}"


# --- the fleet --------------------------------------------------------------------------------------------------

def grow(rds, have, size):
    """Create instances have..size-1 (each with its own parameter group) and wait until all are available."""
    def create(index):
        rds.create_db_parameter_group(DBParameterGroupName=group_name(index), DBParameterGroupFamily="postgres15",
                                      Description="benchmarks/fleet.py")
        rds.create_db_instance(DBInstanceIdentifier=name(index), Engine="postgres", EngineVersion="15.7",
                               DBInstanceClass=INSTANCE_CLASS, AllocatedStorage=20, MasterUsername=USER,
                               MasterUserPassword=PASSWORD, DBName=DB_NAME, BackupRetentionPeriod=1,
                               DBParameterGroupName=group_name(index),
                               Tags=[{"Key": "dbre:env", "Value": "bench"}, {"Key": "dbre:drill", "Value": "bench"}])

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(create, range(have, size)))
    deadline = time.monotonic() + 120 + 30 * (size - have)
    for index in range(size):
        while rds.describe_db_instances(DBInstanceIdentifier=name(index))["DBInstances"][0][
                "DBInstanceStatus"] != "available":
            if time.monotonic() > deadline:
                raise SystemExit(f"{name(index)} did not become available")
            time.sleep(0.5)
    return time.monotonic() - started


# --- memory -----------------------------------------------------------------------------------------------------

def _smaps(pid):
    """(PSS, RSS) of one process in KiB, from /proc/<pid>/smaps_rollup; (0, 0) when it is gone."""
    pss = rss = 0
    try:
        for line in pathlib.Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
            elif line.startswith("Rss:"):
                rss = int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return pss, rss


def _children():
    """{parent pid: [child pids]} of every process."""
    children = {}
    for entry in pathlib.Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def instance_memory(lab_root, identifiers):
    """{identifier: {"pss_kib", "rss_kib", "processes"}} of each instance's PostgreSQL (its postmaster, found by the
    data directory <lab root>/pg/db-<identifier>-<n>/data, and the postmaster's children)."""
    children = _children()
    result = {}
    for identifier in identifiers:
        pattern = re.compile(rf"db-{re.escape(identifier)}-\d+")
        pids = []
        for directory in (pathlib.Path(lab_root) / "pg").glob(f"db-{identifier}-*"):
            if not pattern.fullmatch(directory.name):
                continue
            try:
                pid = int((directory / "data" / "postmaster.pid").read_text().split("\n", 1)[0])
            except (FileNotFoundError, ValueError):
                continue
            if pathlib.Path(f"/proc/{pid}").exists():
                pids += [pid] + children.get(pid, [])
        sizes = [_smaps(pid) for pid in pids]
        result[identifier] = {"pss_kib": sum(s[0] for s in sizes), "rss_kib": sum(s[1] for s in sizes),
                              "processes": len(pids)}
    return result


# --- runs -------------------------------------------------------------------------------------------------------

def timed(control, command, env, timeout=7200, may_fail=False):
    """Run one command with the call log cleared before: wall seconds, the calls, and its output (and exit status:
    a failed command ends the benchmark unless ``may_fail``)."""
    control.clear_calls()
    started = time.monotonic()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    seconds = time.monotonic() - started
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-6000:] + done.stderr[-3000:])
        if not may_fail:
            raise SystemExit(f"failed ({done.returncode}): {shlex.join(command)}")
    calls = control.calls()
    actions = {}
    for call in calls:
        actions[call["action"]] = actions.get(call["action"], 0) + 1
    return {"seconds": round(seconds, 1), "calls": len(calls), "actions": actions,
            "mutating": sum(not c["action"].startswith(("Describe", "List", "Get")) for c in calls),
            "rc": done.returncode, "stdout": done.stdout}


def playbook_command(playbook, hosts, forks, extra_vars):
    return [str(BIN / "ansible-playbook"), "-i", str(INVENTORY), str(playbook), "-l", ",".join(hosts),
            "-f", str(forks), "-e", "@" + str(extra_vars)]


def reset_groups(rds, groups):
    for group in groups:
        rds.reset_db_parameter_group(DBParameterGroupName=group, ResetAllParameters=True)


def fleet_report(report_dir, playbook):
    """The newest fleet report JSON of ``playbook`` in report_dir (the playbooks' stored format)."""
    reports = sorted((report_dir / "fleet").glob(f"fleet-{playbook}-*.json"))
    return json.loads(reports[-1].read_text()) if reports else None


def amazon_loop(rds, control, env, work, size, groups, values):
    """amazon.aws.rds_instance_param_group in a loop on ``size`` empty groups (created first, like the tuned ones),
    set to ``values``; "same_values": each ends with the user values of the tuned group of the same index."""
    prefix = amazon_group_prefix(size)
    for i in range(size):
        rds.create_db_parameter_group(DBParameterGroupName=f"{prefix}-{i}", DBParameterGroupFamily="postgres15",
                                      Description="benchmark")
    vars_file = work / f"amazon-{size}.json"
    vars_file.write_text(json.dumps({"bench_values": values}))
    amazon = measure(control, AMAZON.format(count=size, prefix=prefix), env, work, vars_file)
    same = all(user_values(rds, f"{prefix}-{i}") == user_values(rds, groups[i]) for i in range(size))
    return {"size": size, **amazon, "seconds": round(amazon["seconds"], 1), "values": len(values),
            "same_values": same}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--forks", type=int, nargs="+", default=[1, 5, 10])
    parser.add_argument("--drill-sizes", type=int, nargs="*", default=None,
                        help="sizes at which the restore drill playbook runs (default: --sizes; none: no drills)")
    parser.add_argument("--drill-forks", type=int, nargs="+", default=None, help="default: --forks")
    parser.add_argument("--no-amazon", action="store_true", help="skip amazon.aws.rds_instance_param_group")
    parser.add_argument("--lab-url", default=os.environ.get("LAB_URL"))
    parser.add_argument("--budget", type=float, default=None,
                        help="start no new measurement after this many seconds; the tables show what was done")
    args = parser.parse_args()
    sizes = sorted(set(args.sizes))
    drill_sizes = set(sizes if args.drill_sizes is None else args.drill_sizes)
    drill_forks = args.drill_forks or args.forks
    command_line = shlex.join([".venv/bin/python", "benchmarks/fleet.py", *sys.argv[1:]])
    print(f"command: {command_line}", flush=True)

    state_dir, process = None, None
    url = args.lab_url
    if not url:
        state_dir = pathlib.Path(tempfile.mkdtemp(prefix="dbre-bench-fleet-lab-"))
        process, info = start_daemon(state_dir, parent_pid=os.getpid())
        url = info["url"]
    rows, memory_rows, amazon_rows, inventory_rows, skipped = [], [], [], [], []
    began = time.monotonic()

    def in_budget(what):
        if args.budget is None or time.monotonic() - began < args.budget:
            return True
        skipped.append(what)
        print(f"[{time.monotonic() - began:6.0f}s] over the budget of {args.budget:.0f} s: {what} not run", flush=True)
        return False

    try:
        import boto3

        control = LabControl(url)
        health = control.health()
        env = dict(os.environ, **lab_env(url), ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build"), ANSIBLE_NOCOLOR="1",
                   ANSIBLE_PIPELINING="1", ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_DEPRECATION_WARNINGS="0",
                   ANSIBLE_PYTHON_INTERPRETER=sys.executable)
        rds = boto3.client("rds", endpoint_url=url, region_name=REGION, aws_access_key_id="testing",
                           aws_secret_access_key="testing")
        with tempfile.TemporaryDirectory(prefix="dbre-bench-fleet-") as scratch:
            work = pathlib.Path(scratch)
            have = 0
            for size in sizes:
                if not in_budget(f"{size} databases"):
                    continue
                hosts = [name(i) for i in range(size)]
                created = grow(rds, have, size)
                have = size
                print(f"[{time.monotonic() - began:6.0f}s] {size} instances available ({created:.0f} s)", flush=True)

                memory = instance_memory(health["root"], hosts)
                lab_rss = _smaps(health["pid"])[1]
                memory_rows.append({"size": size, "create_seconds": round(created, 1), "instances": memory,
                                    "lab_server_rss_kib": lab_rss})

                listed = timed(control, [str(BIN / "ansible-inventory"), "-i", str(INVENTORY), "--list"], env)
                listed_hosts = json.loads(listed.pop("stdout")).get("dbre_databases", {}).get("hosts", [])
                inventory_rows.append({"size": size, **listed, "hosts": len(listed_hosts)})
                if sorted(h for h in listed_hosts if h.startswith(PREFIX)) != hosts:
                    raise SystemExit(f"the inventory's dbre_databases are not the {size} instances: {listed_hosts}")

                report_dir = work / f"reports-{size}"
                extra = work / f"vars-{size}.json"
                extra.write_text(json.dumps({
                    "dbre_rds_report_dir": str(report_dir), "dbre_rds_poll_interval": 0.5, "dbre_rds_async_poll": 1,
                    "dbre_rds_drill_user": USER, "dbre_rds_drill_password": PASSWORD, "dbre_rds_drill_db": DB_NAME}))
                groups = [group_name(i) for i in range(size)]
                for position, forks in enumerate(args.forks):
                    if not in_budget(f"tune_parameters.yml on {size} with forks {forks}"):
                        continue
                    reset_groups(rds, groups)
                    run = timed(control, playbook_command(TUNE, hosts, forks, extra), env)
                    run.pop("stdout")
                    values = user_values(rds, groups[0])
                    tuned_alike = all(user_values(rds, g) == values for g in groups[1:])
                    rows.append({"size": size, "playbook": "tune_parameters", "forks": forks, **run,
                                 "values": len(values), "ok": bool(values) and tuned_alike})
                    print(f"[{time.monotonic() - began:6.0f}s] tune {size} forks {forks}: {run['seconds']} s",
                          flush=True)
                    # amazon.aws right after the first tune (it needs its values), before the other forks
                    if position == 0 and not args.no_amazon and in_budget(f"amazon.aws on {size} groups"):
                        amazon_rows.append(amazon_loop(rds, control, env, work, size, groups, values))
                        print(f"[{time.monotonic() - began:6.0f}s] amazon.aws {size}: "
                              f"{amazon_rows[-1]['seconds']:.1f} s", flush=True)

                if size in drill_sizes:
                    for forks in drill_forks:
                        if not in_budget(f"restore_drill.yml on {size} with forks {forks}"):
                            continue
                        run = timed(control, playbook_command(DRILL, hosts, forks, extra) +
                                    ["-e", f"dbre_rds_max_parallel_drills={forks}"], env, may_fail=True)
                        run.pop("stdout")
                        report = fleet_report(report_dir, "restore_drill") or {}
                        passed = sum(bool(d.get("passed")) for d in report.get("databases", []))
                        rows.append({"size": size, "playbook": "restore_drill", "forks": forks, **run,
                                     "passed": passed, "ok": passed == size})
                        print(f"[{time.monotonic() - began:6.0f}s] drill {size} forks {forks}: {run['seconds']} s",
                              flush=True)
    finally:
        if state_dir is not None:
            stop_daemon(state_dir, process.pid if process else None)
            shutil.rmtree(state_dir, ignore_errors=True)

    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "fleet.json").write_text(json.dumps({
        "command": command_line, "url": url, "load_average": os.getloadavg(), "memory": memory_rows,
        "inventory": inventory_rows, "runs": rows, "amazon": amazon_rows, "not_run": skipped}, indent=2) + "\n")
    print_tables(command_line, memory_rows, inventory_rows, rows, amazon_rows)
    for what in skipped:
        print(f"not run (over the --budget): {what}")


def print_tables(command_line, memory_rows, inventory_rows, rows, amazon_rows):
    print()
    print(f"command: {command_line}")
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    print()
    header = f"{'DBs':>4}  {'create s':>8} {'PSS MiB/inst':>12} {'RSS MiB/inst':>12} {'procs/inst':>10} " \
             f"{'PSS MiB all':>11} {'lab server RSS MiB':>18}"
    print(header)
    print("-" * len(header))
    for m in memory_rows:
        instances = list(m["instances"].values())
        n = len(instances)
        pss = sum(i["pss_kib"] for i in instances) / 1024
        rss = sum(i["rss_kib"] for i in instances) / 1024
        procs = sum(i["processes"] for i in instances)
        print(f"{m['size']:>4}  {m['create_seconds']:>8.0f} {pss / n:>12.1f} {rss / n:>12.1f} {procs / n:>10.1f} "
              f"{pss:>11.0f} {m['lab_server_rss_kib'] / 1024:>18.0f}")
    print()
    header = f"{'DBs':>4}  {'run':<36} {'forks':>5} {'wall s':>7} {'s/DB':>6} {'API calls':>9} {'calls/DB':>8} " \
             f"{'mutating':>8}  result"
    print(header)
    print("-" * len(header))
    for i in inventory_rows:
        print(f"{i['size']:>4}  {'ansible-inventory --list':<36} {'':>5} {i['seconds']:>7.1f} "
              f"{i['seconds'] / i['size']:>6.2f} {i['calls']:>9} {i['calls'] / i['size']:>8.1f} {i['mutating']:>8}  "
              f"{i['hosts']} hosts in dbre_databases")
        for r in [r for r in rows if r["size"] == i["size"]] + [a for a in amazon_rows if a["size"] == i["size"]]:
            if "playbook" in r:
                what = f"playbooks/{r['playbook']}.yml"
                result = (f"{r['values']} values set, same on every group" if r["playbook"] == "tune_parameters"
                          else f"{r['passed']}/{r['size']} drills passed") if r["ok"] else \
                    ("values DIFFER" if r["playbook"] == "tune_parameters" else f"ONLY {r['passed']} passed")
                forks = r["forks"]
            else:
                what, forks = "amazon.aws.rds_instance_param_group", "loop"
                result = f"{r['values']} values, {'same' if r['same_values'] else 'NOT the same'} as the playbook's"
            print(f"{r['size']:>4}  {what:<36} {forks:>5} {r['seconds']:>7.1f} {r['seconds'] / r['size']:>6.2f} "
                  f"{r['calls']:>9} {r['calls'] / r['size']:>8.1f} {r['mutating']:>8}  {result}")
    print()
    for a in amazon_rows:
        tunes = [r for r in rows if r["size"] == a["size"] and r["playbook"] == "tune_parameters"]
        for r in tunes:
            ratio = r["seconds"] / a["seconds"]
            verdict = "within" if ratio <= 0.5 else "NOT within"
            print(f"{a['size']:>4} groups, forks {r['forks']:>2}: tune playbook {r['seconds']:.1f} s = {ratio:.2f} x "
                  f"amazon.aws's {a['seconds']:.1f} s ({verdict} the issue's 0.5)")


if __name__ == "__main__":
    main()

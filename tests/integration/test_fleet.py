# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fleet on an inventory: playbooks/inventory/aws_rds.yml lists the lab's databases with their groups, and
playbooks/tune_parameters.yml tunes them with one rds_param_tune run per region, and playbooks/restore_drill.yml
drills the hosts of a group in batches, with a fleet report after every run (locally and in the lab's S3).

One lab, converged once (module fixture): twelve DB instances in us-east-1 and us-west-2, tagged into groups. Only
the three of dbre_drill_monthly are PostgreSQL (the drills restore them); the nine others are MySQL, which the lab
keeps in the API only (a PostgreSQL server costs seconds to start, a MySQL instance nothing). fleet-a and fleet-b
(us-east-1) share one parameter group, fleet-c (us-west-2) has its own. Two ansible-playbook runs on
-l dbre_drill_monthly (each invocation costs seconds of start-up and inventory, so the tune and the passing drill
share one):
- the tune, then the restore drill at most two at a time (dbre_rds_max_parallel_drills=2), every drill passes;
- the restore drill one at a time with an RPO objective no restore can meet: the first drill breaches and the
  batches after it stop; its fleet report also goes to S3 (dbre_rds_report_s3), as a stopped run's must.
What the playbooks did is read from the lab's call log (the tune's module runs, restores and deletions of the drills'
instances, with times), from the files of the fleet reports, from S3 and from ansible-playbook's exit status.
"""

import concurrent.futures
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
from xml.etree import ElementTree

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
INVENTORY = ROOT / "playbooks" / "inventory" / "aws_rds.yml"
PASSWORD = "Fleet-Secret-1"
MONTHLY = {"fleet-a": "us-east-1", "fleet-b": "us-east-1", "fleet-c": "us-west-2"}
FILLERS = {f"fleet-m{i}": ("us-east-1", "us-west-2")[i % 2] for i in range(9)}
RESTORES = ("RestoreDBInstanceFromDBSnapshot", "RestoreDBInstanceToPointInTime")
GROUPS = {"us-east-1": "fleet-east-pg15", "us-west-2": "fleet-west-pg15"}  # fleet-a and fleet-b share the east one
BUCKET, PREFIX = "fleet-reports", "team-dbre"


def _create(lab, name, region, engine, tags):
    request = dict(DBInstanceIdentifier=name, Engine=engine, DBInstanceClass="db.t3.micro", AllocatedStorage=20,
                   MasterUsername="dbadmin", MasterUserPassword=PASSWORD, BackupRetentionPeriod=7,
                   AvailabilityZone=f"{region}a", Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    if engine == "postgres":
        request.update(EngineVersion="15.7", DBName="orders", MultiAZ=name == "fleet-a",
                       DBParameterGroupName=GROUPS[region])
    lab.client("rds", region).create_db_instance(**request)


def _wait_available(lab, names):
    deadline = time.monotonic() + 180
    for name, region in names.items():
        rds = lab.client("rds", region)
        while rds.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]["DBInstanceStatus"] != "available":
            assert time.monotonic() < deadline, f"{name} did not become available"
            time.sleep(0.3)


def _env(lab):
    env = dict(os.environ)
    env.update(lab.env)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build"), ANSIBLE_NOCOLOR="1", ANSIBLE_PIPELINING="1",
               ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_DEPRECATION_WARNINGS="0")
    return env


def _unsafe(value):
    """ansible-inventory's JSON marks strings from the inventory as unsafe: {"__ansible_unsafe": "..."}."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {key: _unsafe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_unsafe(item) for item in value]
    return value


def _playbook(lab, work, *extra, playbooks=("restore_drill",), timeout=420):
    words = [str(BIN / "ansible-playbook"), "-i", str(INVENTORY),
             *[str(ROOT / "playbooks" / f"{name}.yml") for name in playbooks],
             "-l", "dbre_drill_monthly", "-e", f"@{work / 'vars.json'}", *extra]
    started = time.time()
    done = subprocess.run(words, cwd=ROOT, env=_env(lab), capture_output=True, text=True, timeout=timeout,
                          check=False)
    return {"rc": done.returncode, "out": done.stdout, "err": done.stderr, "started": started, "ended": time.time()}


def _fleet_reports(directory, playbook="restore_drill"):
    return sorted((directory / "fleet").glob(f"fleet-{playbook}-*.json"))


def _drills(lab, since, until):
    """Each drill the lab served between ``since`` and ``until``: its source and its interval
    (the restore request's start to the end of the drill instance's deletion)."""
    calls = [c for c in lab.control.calls(since=since) if c["epoch"] <= until]
    drills = {}
    for call in calls:
        if call["action"] in RESTORES and call["status"] == 200:
            params = call["params"]
            target = params.get("DBInstanceIdentifier") or params.get("TargetDBInstanceIdentifier")
            # the drill names its instance <source>-drill-<time>-<id>
            drills[target] = {"source": str(target).split("-drill-", 1)[0], "start": call["epoch"] - call["seconds"],
                              "end": None}
    for call in calls:
        target = call["params"].get("DBInstanceIdentifier")
        if call["action"] == "DeleteDBInstance" and target in drills:
            drills[target]["end"] = call["epoch"]
    return drills


def _most_at_once(intervals):
    events = sorted([(start, 1) for start, _end in intervals] + [(end, -1) for _start, end in intervals],
                    key=lambda e: (e[0], e[1]))
    running = most = 0
    for _moment, step in events:
        running += step
        most = max(most, running)
    return most


@pytest.fixture(scope="module")
def fleet(lab):
    lab.control.reset()
    work = pathlib.Path(tempfile.mkdtemp(prefix="dbre-rds-fleet-"))
    timings = {}
    try:
        began = time.monotonic()
        specs = [(name, region, "postgres", {"dbre:drill": "monthly", "dbre:env": "prod",
                                             "dbre:tier": "gold" if name != "fleet-b" else "silver"})
                 for name, region in MONTHLY.items()]
        specs += [(name, region, "mysql", {"dbre:drill": "quarterly", "dbre:env": "dev", "dbre:tier": "bronze"})
                  for name, region in FILLERS.items()]
        for region, group in GROUPS.items():
            lab.client("rds", region).create_db_parameter_group(
                DBParameterGroupName=group, DBParameterGroupFamily="postgres15", Description="fleet tune")
        lab.client("s3").create_bucket(Bucket=BUCKET)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda spec: _create(lab, *spec), specs))
        _wait_available(lab, {**MONTHLY, **FILLERS})
        rds = lab.client("rds", "us-east-1")
        arn = rds.describe_db_instances(DBInstanceIdentifier="fleet-b")["DBInstances"][0]["DBInstanceArn"]
        rds.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "dbre:max_rto_seconds", "Value": "1800"}])
        (work / "vars.json").write_text(json.dumps({
            "dbre_rds_drill_user": "dbadmin", "dbre_rds_drill_password": PASSWORD, "dbre_rds_drill_db": "orders",
            "dbre_rds_poll_interval": 0.5, "dbre_rds_async_poll": 1}))
        timings["lab"] = time.monotonic() - began

        began = time.monotonic()
        listed = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(INVENTORY), "--list"], cwd=ROOT,
                                env=_env(lab), capture_output=True, text=True, timeout=120, check=False)
        assert listed.returncode == 0, listed.stderr[-3000:]
        timings["inventory"] = time.monotonic() - began

        began = time.monotonic()
        passing = _playbook(lab, work, "-e", "dbre_rds_max_parallel_drills=2", "-e",
                            f"dbre_rds_report_dir={work / 'reports'}", playbooks=("tune_parameters", "restore_drill"))
        timings["tune and drill"] = time.monotonic() - began
        passing["reports"] = _fleet_reports(work / "reports")
        passing["tune_reports"] = _fleet_reports(work / "reports", "tune_parameters")

        began = time.monotonic()
        (work / "breach").mkdir()
        for path in passing["reports"]:  # the earlier run's stored report, for the last passed drill
            (work / "breach" / "fleet").mkdir(exist_ok=True)
            shutil.copy(path, work / "breach" / "fleet" / path.name)
        breach = _playbook(lab, work, "-e", "dbre_rds_max_parallel_drills=1", "-e", "dbre_rds_max_rpo_seconds=1",
                           "-e", f"dbre_rds_report_dir={work / 'breach'}",
                           "-e", f"dbre_rds_report_s3=s3://{BUCKET}/{PREFIX}")
        timings["breach"] = time.monotonic() - began
        breach["reports"] = [p for p in _fleet_reports(work / "breach") if p.name not in
                             {q.name for q in passing["reports"]}]
        sys.stderr.write(f"\ntest_fleet wall time: {json.dumps({k: round(v, 1) for k, v in timings.items()})}\n")
        yield {"inventory": _unsafe(json.loads(listed.stdout)), "passing": passing, "breach": breach, "work": work}
    finally:
        lab.control.reset()
        shutil.rmtree(work, ignore_errors=True)


def test_the_inventory_lists_the_twelve_instances_with_their_groups(fleet):
    inventory = fleet["inventory"]

    def group(name):
        return set(inventory.get(name, {}).get("hosts", []))

    everything = set(MONTHLY) | set(FILLERS)
    assert group("aws_rds") == everything
    assert group("dbre_drill_monthly") == set(MONTHLY)
    assert group("dbre_drill_quarterly") == set(FILLERS)
    assert group("dbre_env_prod") == set(MONTHLY) and group("dbre_env_dev") == set(FILLERS)
    assert group("dbre_tier_gold") == {"fleet-a", "fleet-c"} and group("dbre_tier_silver") == {"fleet-b"}
    assert group("rds_engine_postgres") == set(MONTHLY) and group("rds_engine_mysql") == set(FILLERS)
    assert group("aws_region_us_east_1") == {n for n, r in {**MONTHLY, **FILLERS}.items() if r == "us-east-1"}
    assert group("aws_region_us_west_2") == {n for n, r in {**MONTHLY, **FILLERS}.items() if r == "us-west-2"}
    assert group("dbre_databases") == set(MONTHLY)  # PostgreSQL only
    hostvars = inventory["_meta"]["hostvars"]
    for name, region in MONTHLY.items():
        host = hostvars[name]
        assert host["dbre_rds_db_instance_identifier"] == name
        assert host["dbre_rds_region"] == region
        assert host["dbre_rds_endpoint"] == host["endpoint"]["address"]
        assert host["dbre_rds_port"] == host["endpoint"]["port"] and host["dbre_rds_port"] > 0
        assert host["dbre_rds_db_instance_class"] == "db.t3.micro"
        assert host["dbre_rds_multi_az"] is (name == "fleet-a")
        assert "dbre_rds_cluster" not in host  # no Aurora cluster member
    # a per-database objective from a tag; no tag, no value (never a 0 that every drill would breach)
    assert hostvars["fleet-b"]["dbre_rds_max_rto_seconds"] == 1800.0
    assert "dbre_rds_max_rto_seconds" not in hostvars["fleet-a"]


def test_the_drill_drills_exactly_the_group_at_most_two_at_a_time(fleet, lab):
    run = fleet["passing"]
    assert run["rc"] == 0, run["out"][-6000:] + run["err"][-2000:]
    drills = _drills(lab, run["started"], run["ended"])
    assert sorted(d["source"] for d in drills.values()) == sorted(MONTHLY)
    assert all(d["end"] is not None for d in drills.values()), "a drill's instance was not deleted"
    # two batches: fleet-a and fleet-b together, then fleet-c once both are done
    assert _most_at_once([(d["start"], d["end"]) for d in drills.values()]) == 2
    by_source = {d["source"]: d for d in drills.values()}
    assert by_source["fleet-c"]["start"] > max(by_source["fleet-a"]["end"], by_source["fleet-b"]["end"])


def test_the_fleet_report_lists_each_database_with_its_verdict(fleet):
    run = fleet["passing"]
    assert len(run["reports"]) == 1, run["reports"]
    stored = run["reports"][0]
    report = json.loads(stored.read_text())
    assert report["format"] == "dbre.rds.fleet_report/1" and report["playbook"] == "restore_drill"
    assert report["targets"] == "dbre_drill_monthly"
    lines = {line["identifier"]: line for line in report["databases"]}
    assert set(lines) == set(MONTHLY)
    tunes = {line["identifier"]: line for line in json.loads(run["tune_reports"][0].read_text())["databases"]}
    for name, region in MONTHLY.items():
        line = lines[name]
        assert (line["region"], line["kind"], line["verdict"], line["passed"]) == (region, "restore", "passed", True)
        assert line["rto_seconds"] > 0 and line["rpo_seconds"] >= 0
        # the last passed run of each kind: this drill, and the tune of the same run (the report dir's other report)
        assert line["last_passed"] == {"restore": line["finished_at"], "tune": tunes[name]["finished_at"]}
        assert pathlib.Path(line["report_files"]["json"]).exists()
    assert report["summary"]["passed"] == 3 and report["summary"]["failed"] == 0
    markdown = stored.with_suffix(".md").read_text()
    assert all(f"| `{name}` | {region} | PASSED |" in markdown for name, region in MONTHLY.items())
    html = stored.with_suffix(".html").read_text()
    assert html.count('<tr class="passed">') == 3
    suite = ElementTree.fromstring(stored.with_suffix(".xml").read_text())
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "0", "0")
    assert {case.get("classname") for case in suite.findall("testcase")} == {
        f"{region}.{name}" for name, region in MONTHLY.items()}


def test_a_breach_stops_the_rest_of_the_batch(fleet, lab):
    run = fleet["breach"]
    assert run["rc"] != 0, "a breached objective must fail the run"
    assert "rpo_seconds did not hold" in run["out"]
    drills = _drills(lab, run["started"], run["ended"])
    assert len(drills) == 1, f"only the first drill runs: {drills}"
    first = next(iter(drills.values()))["source"]
    assert len(run["reports"]) == 1
    report = json.loads(run["reports"][0].read_text())
    verdicts = {line["identifier"]: line["verdict"] for line in report["databases"]}
    assert verdicts == {name: ("failed" if name == first else "not_run") for name in MONTHLY}
    failed = next(line for line in report["databases"] if line["identifier"] == first)
    assert "rpo_seconds did not hold" in failed["failure"]
    # the last passed restore is the earlier run's, read from the stored report
    earlier = json.loads(fleet["passing"]["reports"][0].read_text())
    assert failed["last_passed"] == next(line for line in earlier["databases"]
                                         if line["identifier"] == first)["last_passed"]
    assert (report["summary"]["failed"], report["summary"]["not_run"]) == (1, 2)


def test_the_tune_makes_one_rds_param_tune_run_per_region(fleet, lab):
    run = fleet["passing"]
    assert run["rc"] == 0, run["out"][-6000:] + run["err"][-2000:]
    calls = [c for c in lab.control.calls(since=run["started"]) if c["epoch"] <= run["ended"]
             and "dbre.rds/rds_param_tune" in (c.get("user_agent") or "")]
    # each module run sizes a class once (EC2's instance types; the three share db.t3.micro): one run per region,
    # never one per database (three)
    sizings = [c for c in calls if c["action"] == "DescribeInstanceTypes"]
    assert len(sizings) == len(GROUPS), sorted({c["action"] for c in calls})
    # fleet-a and fleet-b share their group: it is read once, and no instance is read on its own (the group comes
    # from the inventory's hostvars, not from a DescribeDBInstances per host)
    described = [c["params"].get("DBParameterGroupName") for c in calls if c["action"] == "DescribeDBParameterGroups"]
    assert sorted(described) == sorted(GROUPS.values()), described
    modified = {c["params"].get("DBParameterGroupName") for c in calls if c["action"] == "ModifyDBParameterGroup"}
    assert modified == set(GROUPS.values())
    everyone = [c for c in lab.control.calls(since=run["started"]) if c["epoch"] <= run["ended"]
                and "amazon.aws/rds_instance_info" in (c.get("user_agent") or "")]
    assert everyone == []


def test_the_tune_report_lists_the_parameters_changed_per_database(fleet, lab):
    reports = fleet["passing"]["tune_reports"]
    assert len(reports) == 1, reports
    report = json.loads(reports[0].read_text())
    assert (report["playbook"], report["kind"]) == ("tune_parameters", "tune")
    lines = {line["identifier"]: line for line in report["databases"]}
    assert set(lines) == set(MONTHLY)
    for name, region in MONTHLY.items():
        line = lines[name]
        assert (line["region"], line["kind"], line["verdict"], line["passed"]) == (region, "tune", "changed", True)
        # what the group holds now is what the line says changed
        rds = lab.client("rds", region)
        pages = rds.get_paginator("describe_db_parameters").paginate(DBParameterGroupName=GROUPS[region],
                                                                     Source="user")
        user_set = {p["ParameterName"] for page in pages for p in page["Parameters"]}
        assert line["parameters_changed"] and set(line["parameters_changed"]) <= user_set, line
        assert "effective_cache_size" in line["parameters_changed"]
    # one group, one tune: the two databases that share it list the same changes
    assert lines["fleet-a"]["parameters_changed"] == lines["fleet-b"]["parameters_changed"]
    assert report["summary"]["changed"] == 3


def test_the_fleet_report_of_a_stopped_run_goes_to_s3(fleet, lab):
    s3 = lab.client("s3")
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/fleet/")
    keys = {item["Key"] for item in listed.get("Contents", [])}
    local = fleet["breach"]["reports"]
    assert len(local) == 1
    assert keys == {f"{PREFIX}/fleet/{path.stem}.{suffix}"
                    for path in local for suffix in ("json", "md", "html", "xml")}
    for path in local:
        stored = s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/fleet/{path.name}")["Body"].read()
        assert json.loads(stored) == json.loads(path.read_text())
        markdown = s3.get_object(Bucket=BUCKET, Key=f"{PREFIX}/fleet/{path.stem}.md")["Body"].read().decode()
        assert markdown == path.with_suffix(".md").read_text()

# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_snapshot_retention against the lab, as a user runs it: check mode, a run that fails in the middle of
its deletions, the run that finishes the job, and a run that changes nothing.

One fleet for the file: instances ret-a and ret-b and the Aurora cluster ret-c (tagged retention=daily, the
selection), with manual snapshots dated 1 to 90 days ago through the lab's ``snapshot_create_time`` route, one
tagged Permanent, one shared with another account, one restored by a running restore drill (an instance tagged as
rds_restore_drill tags its resources, naming the snapshot), one being copied to us-west-2, and an old DR copy this
module made in us-west-2. The drill's instance is not tagged retention=daily: its 99-day-old snapshot is never
touched. The tests
run in file order and each reads what the lab holds afterwards.
"""

import datetime
import json
import os
import pathlib
import re
import subprocess
import sys
import time

import pytest

from tests.lab.clients import MASTER_PASSWORD, MASTER_USER, create_postgres, wait_cluster, wait_instance

ROOT = pathlib.Path(__file__).resolve().parents[2]
ANSIBLE = str(pathlib.Path(sys.executable).parent / "ansible")
WEST = "us-west-2"
OTHER_ACCOUNT = "210987654321"
MODULE = "dbre.rds.rds_snapshot_retention"
NOW = datetime.datetime.now(datetime.timezone.utc)

# (source, snapshot, age in days); the expected outcome of the policy (retention 30 days, keep_last 1).
SNAPSHOTS = [
    ("ret-a", "a-90", 90), ("ret-a", "a-60-perm", 60), ("ret-a", "a-50-shared", 50), ("ret-a", "a-45-drill", 45),
    ("ret-a", "a-40", 40), ("ret-a", "a-35-copying", 35), ("ret-a", "a-20", 20), ("ret-a", "a-1", 1),
    ("ret-b", "b-70", 70), ("ret-b", "b-33", 33), ("ret-b", "b-2", 2),
    ("ret-c", "c-80", 80), ("ret-c", "c-5", 5),
    ("ret-a-drill-1", "out-99", 99),
]
TO_DELETE = ["a-90", "c-80", "b-70", "a-40", "b-33"]  # oldest first, as the module deletes them
KEPT = {"a-60-perm": "keep_tag", "a-50-shared": "shared", "a-45-drill": "restore_drill",
        "a-35-copying": "being_copied", "a-20": "retention", "a-1": "newest", "b-2": "newest", "c-5": "newest"}
COPIES = {"a-1-dr", "b-2-dr", "c-5-dr"}
OLD_COPY = "a-20-dr"


def module_env(lab):
    env = dict(os.environ)
    env.update(lab.env)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build"), ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_NOCOLOR="1")
    return env


def run(lab, args, check=False):
    command = [ANSIBLE, "localhost", "-i", "localhost,", "-c", "local", "-m", MODULE, "-a", json.dumps(args)]
    done = subprocess.run(command + (["--check"] if check else []), env=module_env(lab), cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    try:
        return json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError):
        raise AssertionError(f"no module result:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}") from None


def _ago(days):
    return NOW - datetime.timedelta(days=days)


def present(lab):
    """Identifiers of the manual snapshots (instance and cluster) in us-east-1 and in us-west-2."""
    found = {}
    for region in ("us-east-1", WEST):
        rds = lab.client("rds", region=region)
        found[region] = {s["DBSnapshotIdentifier"] for s in rds.describe_db_snapshots(SnapshotType="manual")
                         ["DBSnapshots"]}
        found[region] |= {s["DBClusterSnapshotIdentifier"] for s in rds.describe_db_cluster_snapshots(
            SnapshotType="manual")["DBClusterSnapshots"]}
    return found


@pytest.fixture(scope="module")
def fleet(lab):
    lab.control.reset()
    lab.control.set_timing(restore=0, snapshot_copy=0)
    rds, west = lab.client("rds"), lab.client("rds", region=WEST)
    key = lab.client("kms", region=WEST).create_key(Description="DR snapshots")["KeyMetadata"]
    lab.client("kms", region=WEST).create_alias(AliasName="alias/dr-snapshots", TargetKeyId=key["KeyId"])
    selected = [{"Key": "retention", "Value": "daily"}]
    rds.create_db_cluster(DBClusterIdentifier="ret-c", Engine="aurora-postgresql", MasterUsername=MASTER_USER,
                          MasterUserPassword=MASTER_PASSWORD, DatabaseName="app", Tags=selected)
    for identifier in ("ret-a", "ret-b"):
        create_postgres(rds, identifier, Tags=selected)
    wait_cluster(rds, "ret-c")
    arns = {}
    for source, name, days in SNAPSHOTS:
        if source == "ret-a-drill-1":
            # A running restore drill: the instance it restored names its snapshot.
            rds.restore_db_instance_from_db_snapshot(
                DBInstanceIdentifier=source, DBSnapshotIdentifier="a-45-drill",
                Tags=[{"Key": "dbre:drill-id", "Value": "drill-1"},
                      {"Key": "dbre:drill-snapshot", "Value": "a-45-drill"}])
            wait_instance(rds, source, "available")
        tags = [{"Key": "Permanent", "Value": "true"}] if name.endswith("-perm") else []
        if source == "ret-c":
            made = rds.create_db_cluster_snapshot(DBClusterIdentifier=source, DBClusterSnapshotIdentifier=name,
                                                  Tags=tags)["DBClusterSnapshot"]
            arns[name] = made["DBClusterSnapshotArn"]
        else:
            made = rds.create_db_snapshot(DBInstanceIdentifier=source, DBSnapshotIdentifier=name, Tags=tags)
            arns[name] = made["DBSnapshot"]["DBSnapshotArn"]
        lab.control.set_snapshot_create_time(name, _ago(days), kind="cluster" if source == "ret-c" else "db")
    rds.modify_db_snapshot_attribute(DBSnapshotIdentifier="a-50-shared", AttributeName="restore",
                                     ValuesToAdd=[OTHER_ACCOUNT])
    # An older DR copy this module made, and a copy someone else has in progress.
    ret_a = rds.describe_db_instances(DBInstanceIdentifier="ret-a")["DBInstances"][0]["DBInstanceArn"]
    west.copy_db_snapshot(SourceDBSnapshotIdentifier=arns["a-20"], TargetDBSnapshotIdentifier=OLD_COPY,
                          SourceRegion="us-east-1", KmsKeyId="alias/dr-snapshots", Tags=[
                              {"Key": "dbre:managed-by", "Value": MODULE},
                              {"Key": "dbre:copy-of", "Value": arns["a-20"]},
                              {"Key": "dbre:copy-source", "Value": ret_a},
                              {"Key": "dbre:copy-source-created", "Value": _ago(20).isoformat()}])
    lab.control.set_timing(snapshot_copy=600)
    west.copy_db_snapshot(SourceDBSnapshotIdentifier=arns["a-35-copying"], TargetDBSnapshotIdentifier="a-35-mine",
                          SourceRegion="us-east-1", KmsKeyId="alias/dr-snapshots")
    lab.control.set_timing(snapshot_copy=1)
    storage = {name: s["AllocatedStorage"] for name, s in
               [(s["DBSnapshotIdentifier"], s) for s in rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]]
               + [(s["DBClusterSnapshotIdentifier"], s) for s in
                  rds.describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"]]}
    storage[OLD_COPY] = west.describe_db_snapshots(DBSnapshotIdentifier=OLD_COPY)["DBSnapshots"][0]["AllocatedStorage"]
    yield dict(key=key, storage=storage, arns=arns)
    lab.control.reset()


ARGS = dict(tags={"retention": "daily"}, retention_days=30, keep_last=1, batch_size=2, copy_to_region=WEST,
            copy_kms_key_id="alias/dr-snapshots", copy_keep_last=1, poll_interval=0.5, wait_timeout=60)


def test_check_mode_lists_every_decision_and_changes_nothing(lab, fleet):
    before = present(lab)
    since = time.time()
    result = run(lab, ARGS, check=True)
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True
    assert [e["identifier"] for e in result["deleted"] if e["region"] == "us-east-1"] == TO_DELETE
    assert [e["identifier"] for e in result["deleted"] if e["region"] == WEST] == [OLD_COPY]
    assert all("older than retention_days 30" in e["reason"] for e in result["deleted"][:5])
    kept = {e["identifier"]: e["reason_code"] for e in result["kept"] if e["region"] == "us-east-1"}
    assert kept == KEPT
    reasons = {e["identifier"]: e["reason"] for e in result["kept"]}
    assert OTHER_ACCOUNT in reasons["a-50-shared"] and "drill-1" in reasons["a-45-drill"]
    assert "a-35-mine" in reasons["a-35-copying"] and "Permanent=true" in reasons["a-60-perm"]
    assert {c["target_identifier"] for c in result["copied"]} == COPIES
    assert {s["identifier"] for s in result["selected"]} == {"ret-a", "ret-b", "ret-c"}
    assert result["storage_freed_gib"] == sum(fleet["storage"][n] for n in TO_DELETE + [OLD_COPY])
    assert present(lab) == before
    mutating = [c["action"] for c in lab.control.calls(since=since)
                if not c["action"].startswith(("Describe", "List"))]
    assert mutating == []


def test_a_failure_in_the_middle_of_the_deletions_reports_the_split(lab, fleet):
    # The second DeleteDBSnapshot (b-70) is refused; a-90 and the cluster snapshot c-80 went before it.
    lab.control.set_fault("error", share=0.5, actions=["DeleteDBSnapshot"], code="AccessDenied", count=1, seed=10,
                          message="User is not authorized to perform rds:DeleteDBSnapshot on b-70")
    try:
        result = run(lab, ARGS)
    finally:
        lab.control.clear_faults()
    assert result["failed"] is True
    assert [e["identifier"] for e in result["deleted"]] == ["a-90", "c-80"]
    assert [(e["identifier"], e["error"].split(":")[0]) for e in result["not_deleted"]] == [("b-70", "AccessDenied")]
    assert [e["identifier"] for e in result["remaining"]] == ["a-40", "b-33"]
    assert "after 2 of 5 deletions" in result["msg"] and "run the module again" in result["msg"]
    assert {c["target_identifier"] for c in result["copied"]} == COPIES
    east = present(lab)["us-east-1"]
    assert not {"a-90", "c-80"} & east and {"b-70", "a-40", "b-33"} <= east


def test_the_next_run_finishes_and_copies_are_encrypted_in_the_dr_region(lab, fleet, tmp_path):
    since = time.time()
    result = run(lab, dict(ARGS, report_dir=str(tmp_path)))
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True
    assert [(e["identifier"], e["region"]) for e in result["deleted"]] == [
        ("b-70", "us-east-1"), ("a-40", "us-east-1"), ("b-33", "us-east-1"), (OLD_COPY, WEST)]
    assert result["copied"] == [] and result["not_deleted"] == [] and result["remaining"] == []
    # Each snapshot is described again (its tags, then its sharing) just before its deletion, not only at plan time.
    calls = [(c["action"], c["params"].get("DBSnapshotIdentifier")) for c in lab.control.calls(since=since)]
    for name in ("b-70", "a-40", "b-33", OLD_COPY):
        delete = calls.index(("DeleteDBSnapshot", name))
        previous = max([i for i, c in enumerate(calls[:delete]) if c[0] == "DeleteDBSnapshot"], default=-1)
        between = calls[previous + 1:delete]
        # (the plan describes snapshots by source, never by name: a describe naming one is the re-check)
        assert ("DescribeDBSnapshots", name) in between, name
        last = {c: i for i, c in enumerate(between)}
        assert last[("DescribeDBSnapshots", name)] < last.get(("DescribeDBSnapshotAttributes", name), -1), name
    found = present(lab)
    assert found["us-east-1"] == {entry[1] for entry in SNAPSHOTS} - set(TO_DELETE)
    assert found[WEST] == COPIES | {"a-35-mine"}
    west = lab.client("rds", region=WEST)
    for name in COPIES:
        if name.startswith("c-"):
            copy = west.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=name)["DBClusterSnapshots"][0]
            assert copy["StorageEncrypted"] is True
        else:
            copy = west.describe_db_snapshots(DBSnapshotIdentifier=name)["DBSnapshots"][0]
            assert copy["Encrypted"] is True and copy["SourceRegion"] == "us-east-1"
        assert copy["Status"] == "available" and copy["KmsKeyId"] == fleet["key"]["Arn"]
        tags = {t["Key"]: t["Value"] for t in copy["TagList"]}
        assert tags["dbre:managed-by"] == MODULE and tags["dbre:copy-of"] == fleet["arns"][name[:-3]]
    report = json.loads(pathlib.Path(result["report_files"]["json"]).read_text())
    assert report["passed"] is True and report["measurements"]["deleted"] == 4
    assert re.search(r"\| storage_freed_gib \| \d+ \|", pathlib.Path(result["report_files"]["md"]).read_text())


def test_a_second_run_changes_nothing(lab, fleet):
    before = present(lab)
    result = run(lab, ARGS)
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is False
    assert result["deleted"] == [] and result["copied"] == []
    assert {e["identifier"]: e["reason_code"] for e in result["kept"] if e["region"] == "us-east-1"} == KEPT
    assert present(lab) == before
    checked = run(lab, ARGS, check=True)
    assert checked["changed"] is False and checked["deleted"] == []

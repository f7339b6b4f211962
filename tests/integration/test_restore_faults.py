# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_restore_drill when things go wrong: lost answers, throttling, concurrent drills, and drills killed
at each phase. The lab's call log and its instances are the truth: one restore happens, nothing is left behind.

How a SIGTERM reaches the module (ansible-core 2.19, local connection, found empirically): ``kill -TERM`` on
ansible-playbook ends it, and the module's process gets a SIGTERM of its own while it is re-parented to init. The
drill runtime's handler then stops the drill and cleans up, although nobody reads the result any more. A SIGKILL
leaves the drill's resources behind; ``state: sweep`` removes them because their ``dbre:drill-owner`` process is gone.
"""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
import yaml

from tests.integration.test_rds_restore_drill import PASSWORD
from tests.integration.test_rds_restore_drill import add_rows
from tests.integration.test_rds_restore_drill import connect
from tests.integration.test_rds_restore_drill import drill_args
from tests.integration.test_rds_restore_drill import drill_command
from tests.integration.test_rds_restore_drill import module_env
from tests.integration.test_rds_restore_drill import run_drill
from tests.integration.test_rds_restore_drill import wait_available
from tests.integration.test_rds_restore_drill import wait_snapshot

ROOT = pathlib.Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(pathlib.Path(sys.executable).parent / "ansible-playbook")
RESTORE = "RestoreDBInstanceFromDBSnapshot"
ROWS = [{"name": "rows", "sql": "SELECT count(*) FROM orders", "expect": {"equals": 100}}]


@pytest.fixture(scope="module")
def source(lab):
    """``orders`` with 100 rows and the manual snapshot ``orders-snap`` of them."""
    lab.control.reset()
    rds = lab.client("rds")
    rds.create_db_instance(DBInstanceIdentifier="orders", Engine="postgres", DBInstanceClass="db.t3.micro",
                           MasterUsername="app", MasterUserPassword=PASSWORD, AllocatedStorage=20,
                           BackupRetentionPeriod=1)
    wait_available(rds, "orders")
    with connect(rds.describe_db_instances(DBInstanceIdentifier="orders")["DBInstances"][0]) as conn:
        add_rows(conn, 100)
    rds.create_db_snapshot(DBInstanceIdentifier="orders", DBSnapshotIdentifier="orders-snap")
    wait_snapshot(rds, "orders-snap")
    yield rds
    lab.control.reset()


@pytest.fixture
def faults_lab(lab, source):
    lab.control.clear_faults()
    lab.control.reset_timing()
    lab.control.clear_calls()
    yield lab
    lab.control.clear_faults()
    lab.control.reset_timing()


def snapshot_drill(**extra):
    return drill_args("orders", **dict({"restore_from": "snapshot", "snapshot_identifier": "orders-snap",
                                        "checks": ROWS}, **extra))


def drill_instances(rds):
    """Identifier -> tags of every instance that carries a drill id."""
    found = {}
    for instance in rds.describe_db_instances()["DBInstances"]:
        tags = {t["Key"]: t["Value"] for t in rds.list_tags_for_resource(
            ResourceName=instance["DBInstanceArn"])["TagList"]}
        if "dbre:drill-id" in tags:
            found[instance["DBInstanceIdentifier"]] = tags
    return found


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"{what} within {timeout}s")


# ------------------------------------------------------------------------------------------------ calls made once


def test_a_restore_whose_answer_is_lost_happens_once_and_says_so(faults_lab, source):
    lab = faults_lab
    # The lab restores, then holds the answer past botocore's 60 s read timeout.
    lab.control.set_fault("lost_answer", actions=[RESTORE], seconds=75, count=1)

    result = run_drill(lab, snapshot_drill(target_identifier="orders-lost"), timeout=400)

    assert result.get("failed") is not True, result.get("msg")
    assert result["passed"] is True and result["checks"][0]["observed"] == 100
    outcome = result["restore_request"]["outcome"]
    assert (outcome["attempts"], outcome["lost_answers"], outcome["throttled"]) == (1, 1, 0)
    assert outcome["confirmed_by"].startswith("instance orders-lost exists")
    assert result["report"]["details"]["restore_request"]["outcome"] == outcome
    restores = lab.control.calls(action=RESTORE)
    assert len(restores) == 1 and restores[0]["fault"] == "lost_answer"
    history = lab.control.status_history("orders-lost")
    assert [s["status"] for s in history.get("db:orders-lost", [])].count("creating") == 1
    assert drill_instances(source) == {}
    assert [c["params"]["DBInstanceIdentifier"] for c in lab.control.calls(action="DeleteDBInstance")] == \
        ["orders-lost"]


def test_a_throttled_restore_is_checked_then_sent_again_and_happens_once(faults_lab, source):
    lab = faults_lab
    lab.control.set_fault("throttle", actions=[RESTORE], count=2)

    result = run_drill(lab, snapshot_drill(target_identifier="orders-throttled"))

    assert result.get("failed") is not True, result.get("msg")
    assert result["restore_request"]["outcome"] == {"attempts": 3, "throttled": 2, "lost_answers": 0,
                                                    "confirmed_by": "answer"}
    restores = lab.control.calls(action=RESTORE)
    assert [c["error"] for c in restores] == ["Throttling", "Throttling", None]
    # Before each resend the module looked for the target (and found nothing).
    first, last = restores[0]["epoch"], restores[-1]["epoch"]
    looks = [c for c in lab.control.calls(action="DescribeDBInstances")
             if c["params"].get("DBInstanceIdentifier") == "orders-throttled" and first < c["epoch"] < last]
    assert len(looks) >= 2
    assert drill_instances(source) == {}


# ------------------------------------------------------------------------------------------------ concurrent drills


def test_two_drills_of_one_source_started_in_the_same_second_both_pass(faults_lab, source):
    """Both drills run from one ``ansible`` process with two forks, so they start within a few milliseconds of each
    other; two separate ``ansible`` processes drift apart by their start-up time under load."""
    lab = faults_lab
    hosts = ["drill-a", "drill-b"]
    single = drill_command(snapshot_drill())
    assert single[1:6] == ["localhost", "-i", "localhost,", "-c", "local"]
    command = [single[0], "all", "-i", ",".join(hosts) + ",", "-c", "local", "-f", "2", *single[6:]]
    same_second = False
    for _attempt in range(5):
        done = subprocess.run(command, env=module_env(lab), cwd=ROOT, capture_output=True, text=True, timeout=300,
                              check=False)
        try:
            by_host = json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"]
        except (ValueError, KeyError, IndexError):
            raise AssertionError(f"no module results in the output:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        results = [by_host[host] for host in hosts]
        for result in results:
            assert result.get("failed") is not True, result.get("msg")
            assert result["passed"] is True
        targets = [r["target"]["instance"] for r in results]
        assert targets[0] != targets[1] and all(t.startswith("orders-drill-") for t in targets)
        assert results[0]["drill_id"] != results[1]["drill_id"]
        # orders-drill-YYYYmmddHHMMSS-xxxxxx: the same second, told apart by the suffix.
        if targets[0].rsplit("-", 1)[0] == targets[1].rsplit("-", 1)[0]:
            same_second = True
            break
    assert same_second, "no pair of drills started in the same second in five tries"
    assert drill_instances(source) == {}


# ------------------------------------------------------------------------------------------------ killed drills


def start_playbook(lab, tmp_path, args):
    playbook = tmp_path / "drill.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "connection": "local", "gather_facts": False,
                                         "tasks": [{"name": "drill", "dbre.rds.rds_restore_drill": args}]}]))
    return subprocess.Popen([ANSIBLE_PLAYBOOK, "-i", "localhost,", str(playbook)], env=module_env(lab), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


PHASES = {
    # restoring: the restore takes a minute in the lab
    "restoring": ({"restore": 60.0}, "[wait_available] wait_available started", []),
    # validating: the first check sleeps in the restored database
    "validating": ({}, "[validation] connected to", [
        {"name": "slow", "sql": "SELECT count(*) FROM (SELECT pg_sleep(3)) s", "expect": {"rows": 1}}]),
}


def drill_until(lab, tmp_path, phase, target):
    timing, marker, checks = PHASES[phase]
    if timing:
        lab.control.set_timing(**timing)
    progress = tmp_path / "progress.log"
    process = start_playbook(lab, tmp_path, snapshot_drill(target_identifier=target, progress_log=str(progress),
                                                           checks=checks + ROWS, wait_timeout=300))
    try:
        wait_for(lambda: progress.exists() and marker in progress.read_text() or process.poll() is not None, 180,
                 f"the drill reached {phase}")
    except AssertionError:
        process.kill()
        raise
    assert process.poll() is None, f"the drill ended before {phase}: {process.communicate()}"
    return process, progress


@pytest.mark.parametrize("phase", ["restoring", "validating"])
def test_sigterm_to_ansible_playbook_cleans_up(faults_lab, source, tmp_path, phase):
    lab = faults_lab
    target = f"orders-term-{phase[:4]}"
    process, progress = drill_until(lab, tmp_path, phase, target)
    try:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
        # The module outlives ansible-playbook just long enough to delete what it created.
        wait_for(lambda: target not in drill_instances(source), 120, f"{target} deleted after SIGTERM")
    finally:
        if process.poll() is None:
            process.kill()
    log = wait_for(lambda: "removed instance" in progress.read_text() and progress.read_text(), 30,
                   "cleanup in the progress log")
    assert "interrupted by SIGTERM" in log
    assert [c["params"]["DBInstanceIdentifier"] for c in lab.control.calls(action="DeleteDBInstance")] == [target]
    assert drill_instances(source) == {}


def module_process(pid):
    """The pid of the module process named in an owner tag, checked to be an Ansible module of this test."""
    cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    assert "AnsiballZ_rds_restore_drill" in cmdline or "rds_restore_drill" in cmdline, cmdline
    return pid


@pytest.mark.parametrize("phase", ["restoring", "validating"])
def test_sigkill_leaves_an_orphan_that_the_sweep_removes(faults_lab, source, tmp_path, phase):
    lab = faults_lab
    target = f"orders-kill-{phase[:4]}"
    process, _unused = drill_until(lab, tmp_path, phase, target)
    try:
        tags = drill_instances(source)[target]
        host, pid, _started = tags["dbre:drill-owner"].rsplit("/", 2)
        assert host == os.uname().nodename
        os.kill(module_process(int(pid)), signal.SIGKILL)
        process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    lab.control.reset_timing()
    assert target in drill_instances(source), "nothing cleaned up after a SIGKILL: the sweep's job"
    # Not expired: only the owner's death makes it sweepable now.
    assert tags["dbre:drill-expires"] > time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())

    swept = run_drill(lab, {"state": "sweep", "poll_interval": 0.2, "cleanup_timeout": 120}, timeout=300)

    assert swept.get("failed") is not True, swept.get("msg")
    assert [(r["identifier"], r["reason"]) for r in swept["removed"]] == \
        [(target, f"its drill's process is gone (pid {pid} on {host})")]
    assert drill_instances(source) == {}
    assert [i["DBInstanceIdentifier"] for i in source.describe_db_instances()["DBInstances"]] == ["orders"]


# ------------------------------------------------------------------------------------------------ failing queries


def test_a_failing_freshness_query_is_a_failed_check_with_the_measurements_kept(faults_lab, source):
    lab = faults_lab

    result = run_drill(lab, snapshot_drill(target_identifier="orders-fresh", freshness_sql="SELECT no_such_column",
                                           checks=ROWS + [{"name": "broken", "sql": "SELECT * FROM nowhere",
                                                           "expect": {"rows": 1}}]))

    assert result["failed"] is True and result["passed"] is False
    assert "Unexpected" not in result["msg"]
    assert "check: broken did not hold" in result["msg"] and "check: freshness_sql did not hold" in result["msg"]
    by_name = {c["name"]: c for c in result["checks"]}
    assert by_name["rows"]["passed"] is True and by_name["rows"]["observed"] == 100
    assert "no_such_column" in by_name["freshness_sql"]["message"]
    assert "nowhere" in by_name["broken"]["message"]
    assert result["rto_seconds"] > 0 and result["measurements"]["available_at"]
    assert result["cleanup"]["removed"] == ["orders-fresh"]
    assert drill_instances(source) == {}

# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the calls of the integration suite are attributed, and the policy files the suite derives from them.

The check itself runs after every integration test file (tests/integration/conftest.py): a call that the policy of
the module or role that made it does not allow fails that file. These tests pin the attribution it relies on (user
agent for the collection's modules, the callback plugin's task windows for roles and playbooks) and the files.
"""

import json
import math
import os
import pathlib
import re
import subprocess
import sys

import pytest

from tests.tools import iam_policies
from tests.tools.iam_policies import (Journal, actions_by_subject, attributed_calls, attribution, policy_actions,
                                      task_subject, task_windows, violations)

REPO = pathlib.Path(__file__).resolve().parents[2]
IAM_DIR = REPO / "docs" / "iam"
ANSIBLE_PLAYBOOK = str(pathlib.Path(sys.executable).parent / "ansible-playbook")
AMAZON_AWS = "APN/1.0 Ansible/2.19.14 amazon.aws/10.1.2 Botocore/1.44.8"
DBRE_RDS = AMAZON_AWS + " dbre.rds/rds_restore_drill"
BOTO3 = "Boto3/1.40.0 md/Botocore#1.40.0 ua/2.1 os/linux Python/3.11"


def task(epoch, path, role=None, collection=None, pid=1):
    role_path = str(REPO / "roles" / role) if role and collection == "dbre.rds" else None
    return {"event": "task", "epoch": epoch, "pid": pid, "path": str(path), "role": role,
            "role_collection": collection, "role_path": role_path, "task": "a task"}


@pytest.mark.parametrize("record, subject", [
    (task(0, REPO / "roles/rds_provision/tasks/main.yml", "rds_provision", "dbre.rds"), "rds_provision"),
    (task(0, REPO / "roles/rds_users/tasks/main.yml", "rds_users"), None),  # no collection and no path: not ours
    (dict(task(0, "/x/roles/rds_monitoring/tasks/main.yml", "rds_monitoring"),
          role_path=str(REPO / "roles" / "rds_monitoring")), "rds_monitoring"),  # by path (ANSIBLE_ROLES_PATH=roles)
    (task(0, "/elsewhere/roles/r/tasks/main.yml", "r", "someone.else"), None),
    (task(0, REPO / "playbooks/tasks/drill_login.yml"), "playbooks"),
    (task(0, REPO / "playbooks/restore_drill.yml"), "playbooks"),
    (task(0, REPO / "playbooks/demo/prepare_lab.yml"), None),  # the demo's fixtures
    (task(0, REPO / "playbooks/awx/configure_awx.yml"), None),
    (task(0, "/tmp/pytest-of-root/converge.yml"), None),  # a test's own playbook
])
def test_a_task_runs_for_a_role_of_dbre_rds_or_the_playbooks_or_no_one(record, subject):
    assert task_subject(record) == subject


def test_a_task_window_lasts_until_the_next_event_of_its_own_process():
    records = [
        {"event": "playbook_start", "epoch": 0.0, "pid": 1},
        task(1.0, REPO / "playbooks/provision_rds.yml", pid=1),
        task(2.0, REPO / "roles/rds_provision/tasks/main.yml", "rds_provision", "dbre.rds", pid=1),
        task(2.5, "/tmp/other.yml", pid=2),
        task(3.0, "/tmp/test.yml", pid=1),
        task(4.0, REPO / "roles/rds_users/tasks/main.yml", "rds_users", "dbre.rds", pid=1),
        {"event": "playbook_end", "epoch": 5.0, "pid": 1},
        task(6.0, REPO / "roles/rds_monitoring/tasks/main.yml", "rds_monitoring", "dbre.rds", pid=3),  # killed
    ]
    assert [(w["subject"], w["start"], w["end"]) for w in task_windows(records)] == [
        ("playbooks", 1.0, 2.0), ("rds_provision", 2.0, 3.0), ("rds_users", 4.0, 5.0),
        ("rds_monitoring", 6.0, math.inf)]


@pytest.mark.parametrize("epoch, user_agent, subjects", [
    (2.5, AMAZON_AWS, ["rds_provision"]),                       # an amazon.aws module inside the role
    (2.5, DBRE_RDS, ["rds_provision", "rds_restore_drill"]),    # a dbre.rds module inside the role: both
    (7.0, DBRE_RDS, ["rds_restore_drill"]),                     # a dbre.rds module anywhere else
    (1.5, AMAZON_AWS, ["playbooks"]),
    (2.5, BOTO3, []),                                           # the test's own client, while the role runs
    (7.0, AMAZON_AWS, []),                                      # a test playbook's amazon.aws task
    (3.0, AMAZON_AWS, ["rds_provision"]),                       # at the edge: the earlier task's (still running)
])
def test_a_call_belongs_to_its_module_and_to_the_role_or_playbook_running_then(epoch, user_agent, subjects):
    windows = [{"subject": "playbooks", "start": 1.0, "end": 2.0},
               {"subject": "rds_provision", "start": 2.0, "end": 3.0}]
    assert attribution({"epoch": epoch, "user_agent": user_agent}, windows) == subjects


def test_a_call_the_policy_does_not_allow_is_a_violation(tmp_path):
    (tmp_path / "rds_restore_drill.json").write_text(json.dumps(iam_policies.policy_document(
        {"rds:DescribeDBInstances", "rds:DescribeDBSnapshots"})))
    calls = [{"epoch": 1.0, "service": "rds", "action": action, "user_agent": DBRE_RDS}
             for action in ("DescribeDBSnapshots", "RestoreDBInstanceFromDBSnapshot")]
    calls.append({"epoch": 1.0, "service": "monitoring", "action": "DescribeAlarms", "user_agent": AMAZON_AWS})
    found = attributed_calls(calls, [{"subject": "rds_monitoring", "start": 0.0, "end": 2.0}])
    assert actions_by_subject(calls, [{"subject": "rds_monitoring", "start": 0.0, "end": 2.0}]) == {
        "rds_restore_drill": {"rds:DescribeDBSnapshots", "rds:RestoreDBInstanceFromDBSnapshot"},
        "rds_monitoring": {"cloudwatch:DescribeAlarms", "rds:DescribeDBSnapshots",
                           "rds:RestoreDBInstanceFromDBSnapshot"}}
    denied = {(subject, action) for subject, action, _entry in violations(found, tmp_path)}
    assert denied == {("rds_restore_drill", "rds:RestoreDBInstanceFromDBSnapshot"),
                      ("rds_monitoring", "cloudwatch:DescribeAlarms"),  # no rds_monitoring.json: allows nothing
                      ("rds_monitoring", "rds:DescribeDBSnapshots"),
                      ("rds_monitoring", "rds:RestoreDBInstanceFromDBSnapshot")}


def test_the_journal_hands_each_complete_line_once(tmp_path):
    journal = Journal(tmp_path)
    path = tmp_path / "calls-1.jsonl"
    path.write_text('{"n": 1}\n{"n": 2')
    assert journal.drain() == [{"n": 1}]
    with open(path, "a", encoding="utf-8") as handle:
        handle.write('}\n')
    (tmp_path / "calls-2.jsonl").write_text('{"n": 3}\n')
    assert journal.drain() == [{"n": 2}, {"n": 3}]
    assert journal.drain() == []


def test_the_callback_plugin_traces_each_task_with_its_role_and_file(tmp_path):
    """The callback as the suite loads it (ANSIBLE_CALLBACK_PLUGINS, DBRE_RDS_IAM_TRACE_DIR), on a real run."""
    repo = tmp_path / "repo"
    (repo / "roles" / "rds_fake" / "tasks").mkdir(parents=True)
    (repo / "roles" / "rds_fake" / "tasks" / "main.yml").write_text(
        "- name: Inside the role\n  ansible.builtin.debug:\n    msg: role\n")
    (repo / "playbooks").mkdir()
    playbook = repo / "playbooks" / "play.yml"
    playbook.write_text("- hosts: localhost\n  gather_facts: false\n  tasks:\n"
                        "    - name: Outside the role\n      ansible.builtin.debug:\n        msg: play\n"
                        "    - name: Run the role\n      ansible.builtin.include_role:\n        name: rds_fake\n")
    trace = tmp_path / "trace"
    env = dict(os.environ, DBRE_RDS_IAM_TRACE_DIR=str(trace), ANSIBLE_ROLES_PATH=str(repo / "roles"),
               ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_NOCOLOR="1")
    result = subprocess.run([ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", str(playbook)], env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    records = Journal(trace).drain()
    assert [r["event"] for r in records] == ["playbook_start", "task", "task", "task", "playbook_end"]
    assert [(r["task"], r["role"]) for r in records if r["event"] == "task"] == [
        ("Outside the role", None), ("Run the role", None), ("rds_fake : Inside the role", "rds_fake")]
    windows = task_windows(records, repo=repo)
    assert [w["subject"] for w in windows] == ["playbooks", "playbooks", "rds_fake"]
    assert windows[-1]["end"] == records[-1]["epoch"]
    inside = (windows[-1]["start"] + windows[-1]["end"]) / 2
    assert attribution({"epoch": inside, "user_agent": AMAZON_AWS}, windows) == ["rds_fake"]


def subjects_of_the_collection():
    modules = {path.stem for path in (REPO / "plugins" / "modules").glob("*.py") if path.stem != "__init__"}
    roles = {path.name for path in (REPO / "roles").iterdir() if (path / "tasks").is_dir()}
    return modules | roles | {"playbooks"}


def test_each_policy_file_is_a_policy_of_a_module_role_or_the_playbooks():
    files = sorted(IAM_DIR.glob("*.json"))
    assert files
    for path in files:
        document = json.loads(path.read_text())
        assert path.stem in subjects_of_the_collection(), f"{path.name} names no module or role of dbre.rds"
        assert document["Version"] == "2012-10-17"
        services = [statement["Action"][0].split(":")[0] for statement in document["Statement"]]
        assert services == sorted(set(services)), f"{path.name}: one statement per service, sorted"
        for statement in document["Statement"]:
            assert statement["Effect"] == "Allow" and statement["Resource"] == "*"
            assert statement["Action"] == sorted(statement["Action"])
            assert {action.split(":")[0] for action in statement["Action"]} == {services.pop(0)}
        assert document == iam_policies.policy_document(policy_actions(document)), f"{path.name} is not as written"


def test_the_policies_the_docs_name_exist():
    named = set()
    for doc in [REPO / "README.md", *(REPO / "docs").rglob("*.md")]:
        if "reference" in doc.relative_to(REPO).parts:
            continue
        named.update((doc.name, name) for name in re.findall(r"docs/iam/([A-Za-z0-9_]+)\.json", doc.read_text()))
        if doc.parent == IAM_DIR or doc.name == "awx.md":
            named.update((doc.name, name) for name in re.findall(r"`([A-Za-z0-9_]+)\.json`", doc.read_text()))
    assert named
    assert sorted((doc, name) for doc, name in named if not (IAM_DIR / f"{name}.json").exists()) == []


# What users attach each file for (docs/guides/awx.md, provisioning.md, docs/iam/README.md): the suite's paths that
# make these calls. A file without one means a path left the suite, and the policy with it.
PROMISED = {
    "rds_restore_drill": {"rds:DescribeDBSnapshots", "rds:RestoreDBInstanceFromDBSnapshot",  # latest/random snapshot
                          "rds:RestoreDBInstanceToPointInTime", "rds:DescribeDBInstanceAutomatedBackups",
                          "rds:RestoreDBClusterFromSnapshot", "rds:DeleteDBInstance", "rds:DeleteDBCluster"},
    "rds_failover_test": {"rds:RebootDBInstance", "rds:FailoverDBCluster", "cloudwatch:DescribeAlarms"},
    "rds_provision": {"rds:CreateDBInstance", "rds:CreateDBInstanceReadReplica", "rds:CreateDBCluster",  # main, Aurora
                      "rds:DeleteDBInstance", "rds:DeleteDBCluster", "rds:DeleteDBParameterGroup",  # destroy
                      "rds:DeleteDBClusterParameterGroup", "rds:ListTagsForResource", "secretsmanager:CreateSecret"},
    "rds_users": {"secretsmanager:GetSecretValue"},
    "rds_monitoring": {"cloudwatch:PutMetricAlarm", "sns:CreateTopic", "rds:CreateEventSubscription"},
    "rds_param_tune": {"rds:ModifyDBParameterGroup", "rds:ModifyDBClusterParameterGroup"},
    "playbooks": {"rds:DescribeDBInstances", "secretsmanager:GetSecretValue"},
}


@pytest.mark.parametrize("subject", sorted(PROMISED))
def test_each_policy_covers_the_paths_it_is_attached_for(subject):
    assert PROMISED[subject] - iam_policies.allowed_actions(subject) == set()

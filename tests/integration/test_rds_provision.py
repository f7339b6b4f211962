# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_provision against the lab: bad declarations and check mode create nothing.

Every bad declaration runs through the role in one playbook (a block/rescue per case, so the lab is called once per
case and the playbook starts once); each test then reads that case's message. The lab's call log shows which AWS
actions the role called: only reads are allowed.
"""

import json
import os
import pathlib
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
READ_ONLY = ("Describe", "List", "Get")

VALID_INSTANCE = {"name": "orders", "engine_version": "15.7", "db_instance_class": "db.t4g.medium"}
BAD_DECLARATIONS = {
    "retention_outside_1_35": (
        {"rds_provision_instances": [dict(VALID_INSTANCE, backup_retention_period=40)]},
        ["rds_provision_instances[0] (orders).backup_retention_period", "set a value between 1 and 35"]),
    "windows_overlap": (
        {"rds_provision_instances": [dict(VALID_INSTANCE, preferred_backup_window="04:00-05:00",
                                          preferred_maintenance_window="sun:04:30-sun:05:30")]},
        ["preferred_backup_window '04:00-05:00' overlaps preferred_maintenance_window", "move one of them"]),
    "replicas_with_retention_0": (
        {"rds_provision_instances": [dict(VALID_INSTANCE, replicas=2, backup_retention_period=0)]},
        ["rds_provision_instances[0] (orders).replicas", "set backup_retention_period between 1 and 35, or replicas: 0"]),
    "engine_not_postgresql": (
        {"rds_provision_instances": [dict(VALID_INSTANCE, engine="mysql")]},
        ["engine", "must be one of: postgres", "rds_provision_instances"]),
    "cluster_engine_not_postgresql": (
        {"rds_provision_clusters": [{"name": "ledger", "engine": "aurora-mysql", "engine_version": "8.0",
                                     "db_instance_class": "db.r6g.large"}]},
        ["engine", "must be one of: aurora-postgresql", "rds_provision_clusters"]),
    "unknown_class": (
        {"rds_provision_instances": [dict(VALID_INSTANCE, db_instance_class="db.t4g.mediun")]},
        ["rds_provision_instances[0] (orders).db_instance_class", "not a known RDS instance class",
         "did you mean db.t4g.medium"]),
    "missing_subnets": (
        {"rds_provision_instances": [VALID_INSTANCE], "rds_provision_subnet_ids": []},
        ["rds_provision_instances[0] (orders).subnet_ids is empty", "at least two private subnets"]),
    "unknown_subnet": (
        {"rds_provision_instances": [VALID_INSTANCE], "rds_provision_subnet_ids": ["subnet-00000000000000000"]},
        ["subnet-00000000000000000 not found", "give existing private subnet IDs"]),
}

BAD_PLAY = """---
- name: Bad declarations
  hosts: localhost
  gather_facts: false
  vars:
    outcomes: {{}}
  tasks:
{cases}
    - name: Write the outcomes
      ansible.builtin.copy:
        content: "{{{{ outcomes | to_json }}}}"
        dest: "{out}"
        mode: "0600"
"""
CASE = """
    - name: Case {name}
      vars: {variables}
      block:
        - name: Run the role on case {name}
          ansible.builtin.include_role:
            name: dbre.rds.rds_provision
        - name: Record that case {name} was accepted
          ansible.builtin.set_fact:
            outcomes: "{{{{ outcomes | combine({{'{name}': 'ACCEPTED'}}) }}}}"
      rescue:
        - name: Record the message of case {name}
          ansible.builtin.set_fact:
            outcomes: "{{{{ outcomes | combine({{'{name}': ansible_failed_result.msg}}) }}}}"
"""

CHECK_PLAY = """---
- name: Check mode on an empty lab
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Plan an instance with a replica and an Aurora cluster
      ansible.builtin.include_role:
        name: dbre.rds.rds_provision
    - name: Write the endpoints the role reports
      ansible.builtin.copy:
        content: "{{ rds_provision_endpoints | to_json }}"
        dest: "%s"
        mode: "0600"
      check_mode: false
"""


def run_playbook(lab, playbook, *extra):
    env = dict(os.environ)
    env.update(lab.env)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build"), ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_CALLBACK_RESULT_FORMAT="yaml")
    command = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), str(playbook), "-i", "localhost,",
               "-c", "local", *extra]
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600,
                            check=False)
    sys.stdout.write(result.stdout[-15000:])
    sys.stderr.write(result.stderr[-3000:])
    return result


def network(lab):
    """Two private subnets in two zones and an application security group, made before the call log is cleared."""
    ec2 = lab.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.77.{i}.0/24", AvailabilityZone=f"us-east-1{zone}")
               ["Subnet"]["SubnetId"] for i, zone in enumerate("ab")]
    app = ec2.create_security_group(GroupName="app", Description="application", VpcId=vpc)["GroupId"]
    return {"rds_provision_subnet_ids": subnets, "rds_provision_allowed_security_group_ids": [app]}


def mutating_calls(lab):
    return [call["action"] for call in lab.control.calls() if not call["action"].startswith(READ_ONLY)]


def nothing_was_created(lab):
    rds = lab.client("rds")
    return {
        "instances": rds.describe_db_instances()["DBInstances"],
        "clusters": rds.describe_db_clusters()["DBClusters"],
        "subnet_groups": rds.describe_db_subnet_groups()["DBSubnetGroups"],
        "parameter_groups": [group["DBParameterGroupName"] for group in rds.describe_db_parameter_groups()[
            "DBParameterGroups"] if not group["DBParameterGroupName"].startswith("default.")],
        "secrets": lab.client("secretsmanager").list_secrets()["SecretList"],
        "roles": lab.client("iam").list_roles()["Roles"],
        "security_groups": [group["GroupName"] for group in lab.client("ec2").describe_security_groups()[
            "SecurityGroups"] if group["GroupName"] not in ("default", "app")],
    }


EMPTY = {"instances": [], "clusters": [], "subnet_groups": [], "parameter_groups": [], "secrets": [], "roles": [],
         "security_groups": []}


@pytest.fixture(scope="module")
def bad_outcomes(lab, tmp_path_factory):
    lab.control.reset()
    fixtures = network(lab)
    lab.control.clear_calls()
    folder = tmp_path_factory.mktemp("bad")
    out = folder / "outcomes.json"
    cases = "".join(CASE.format(name=name, variables=json.dumps(dict(fixtures, **variables)))
                    for name, (variables, unused_expected) in BAD_DECLARATIONS.items())
    playbook = folder / "bad.yml"
    playbook.write_text(BAD_PLAY.format(cases=cases, out=out))
    result = run_playbook(lab, playbook)
    assert result.returncode == 0, "the bad-declaration playbook itself failed; see the output above"
    outcomes = json.loads(out.read_text())
    calls, created = mutating_calls(lab), nothing_was_created(lab)
    lab.control.reset()
    return outcomes, calls, created


@pytest.mark.parametrize("case", sorted(BAD_DECLARATIONS))
def test_a_bad_declaration_fails_naming_the_key_and_the_fix(bad_outcomes, case):
    outcomes = bad_outcomes[0]
    message = outcomes[case]
    assert message != "ACCEPTED", f"{case} was accepted"
    for expected in BAD_DECLARATIONS[case][1]:
        assert expected in message, f"{case}: {expected!r} not in {message!r}"
    assert "password" not in message.lower() or "master_user_password" in message


def test_bad_declarations_make_no_mutating_call_and_create_nothing(bad_outcomes):
    calls, created = bad_outcomes[1:]
    assert calls == []
    assert created == EMPTY


def test_check_mode_on_an_empty_lab_creates_nothing(lab, tmp_path):
    lab.control.reset()
    try:
        variables = dict(network(lab), rds_provision_instances=[dict(VALID_INSTANCE, replicas=1)],
                         rds_provision_clusters=[{"name": "ledger", "engine_version": "15.4",
                                                  "db_instance_class": "db.r6g.large"}])
        (tmp_path / "vars.yml").write_text(yaml.safe_dump(variables))
        out = tmp_path / "endpoints.json"
        playbook = tmp_path / "check.yml"
        playbook.write_text(CHECK_PLAY % out)
        lab.control.clear_calls()
        result = run_playbook(lab, playbook, "--check", "-e", f"@{tmp_path / 'vars.yml'}")
        assert result.returncode == 0, "check mode failed; see the output above"
        assert "changed=" in result.stdout and "changed=0 " not in result.stdout, "check mode planned no change"
        assert mutating_calls(lab) == []
        assert nothing_was_created(lab) == EMPTY
        endpoints = json.loads(out.read_text())
        assert sorted(endpoints) == ["ledger", "orders"]
        assert not endpoints["orders"]["exists"] and endpoints["orders"]["writer_endpoint"] is None
    finally:
        lab.control.reset()

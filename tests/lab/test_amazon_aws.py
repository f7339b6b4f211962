# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""amazon.aws's own RDS and CloudWatch modules run against the lab and are idempotent (second run: changed=0)."""

import json
import os
import pathlib
import re
import subprocess

import pytest

pytestmark = pytest.mark.lab

REPO = pathlib.Path(__file__).resolve().parents[2]
PLAYBOOK = pathlib.Path(__file__).resolve().parent / "playbooks" / "amazon_aws_idempotence.yml"
VENV_BIN = pathlib.Path(os.environ.get("VIRTUAL_ENV") or REPO / ".venv") / "bin"


def _run(lab, subnet_ids):
    env = dict(lab.env, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build"), LAB_TEST_PASSWORD="lab-secret-1",
               ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="0", ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0", ANSIBLE_PIPELINING="1")
    command = [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", str(PLAYBOOK),
               "-e", json.dumps({"lab_subnet_ids": subnet_ids, "ansible_python_interpreter": str(VENV_BIN / "python")})]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, cwd=str(REPO),
                            check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    recap = re.search(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", result.stdout)
    assert recap, result.stdout[-2000:]
    return int(recap.group(2)), result.stdout


def test_amazon_aws_modules_are_idempotent_against_the_lab(lab_clean):
    ec2 = lab_clean.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnet_ids = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"us-east-1{az}")
                  ["Subnet"]["SubnetId"] for i, az in ((1, "a"), (2, "b"))]

    changed = _run(lab_clean, subnet_ids)[0]
    assert changed == 6
    changed, output = _run(lab_clean, subnet_ids)
    assert changed == 0, output[-4000:]

    rds = lab_clean.client()
    instance = rds.describe_db_instances(DBInstanceIdentifier="lab-db")["DBInstances"][0]
    assert instance["DBParameterGroups"][0]["DBParameterGroupName"] == "lab-params"
    assert instance["Endpoint"]["Address"] == "127.0.0.1"

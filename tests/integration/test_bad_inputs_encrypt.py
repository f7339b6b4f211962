# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_encrypt_instance refuses bad inputs before its first mutating call, naming the problem and the fix.

Every case runs as a task of one playbook (tests/integration/bad_inputs.py) against a lab holding an unencrypted
instance (``shop``), an encrypted one (``vault``), an enabled and a disabled KMS key. For each case the error names
the problem, the lab's call log shows only reads, and the lab holds what it held before. An instance that is
encrypted already is not an error: the module says so and changes nothing. Option checks that need no AWS answer
(blank key, pre_cutover_sql without post_cutover_sql, table names, bounds) are covered table-driven in
tests/unit/plugins/module_utils/test_encrypt_instance.py.
"""

import json
import subprocess
import time

import pytest

from tests.integration.bad_inputs import ANSIBLE_PLAYBOOK
from tests.integration.bad_inputs import ROOT
from tests.integration.bad_inputs import assert_all_refused
from tests.integration.bad_inputs import module_env
from tests.integration.bad_inputs import mutating_calls
from tests.integration.bad_inputs import run_module_cases

MODULE = "dbre.rds.rds_encrypt_instance"
PASSWORD = "bad-Input-Secret-7"


def _available(rds, identifier):
    deadline = time.monotonic() + 60
    while rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]["DBInstanceStatus"] \
            != "available":
        assert time.monotonic() < deadline, f"{identifier} not available"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def keys(lab):
    lab.control.reset()
    rds, kms = lab.client("rds"), lab.client("kms")
    enabled = kms.create_key(Description="enabled")["KeyMetadata"]
    disabled = kms.create_key(Description="disabled")["KeyMetadata"]
    kms.disable_key(KeyId=disabled["KeyId"])
    common = dict(Engine="postgres", DBInstanceClass="db.t3.micro", MasterUsername="master",
                  MasterUserPassword=PASSWORD, DBName="shop", AllocatedStorage=20)
    rds.create_db_instance(DBInstanceIdentifier="shop", **common)
    rds.create_db_instance(DBInstanceIdentifier="vault", StorageEncrypted=True, KmsKeyId=enabled["KeyId"], **common)
    _available(rds, "shop")
    _available(rds, "vault")
    yield {"enabled": enabled, "disabled": disabled}
    lab.control.reset()


def cases(keys):
    def encrypt(**args):
        return dict({"db_instance_identifier": "shop", "kms_key_id": keys["enabled"]["KeyId"],
                     "login_password": PASSWORD, "login_db": "shop", "poll_interval": 0.2}, **args)

    return [
        {"id": "unknown_kms_key", "args": encrypt(kms_key_id="alias/no-such-key"),
         "expect": ["KMS key 'alias/no-such-key' does not exist in this region", "refused before any change"]},
        {"id": "disabled_kms_key", "args": encrypt(kms_key_id=keys["disabled"]["KeyId"]),
         "expect": ["is Disabled, not Enabled", "enable it or choose another key"]},
        {"id": "unknown_instance", "args": encrypt(db_instance_identifier="shopp"),
         "expect": ["no DB instance 'shopp' exists", "check the identifier and the region"]},
        {"id": "bad_cutover", "args": encrypt(cutover="blue-green"),
         "expect": ["value of cutover must be one of: snapshot, logical, got: blue-green"]},
        {"id": "logical_without_rds_logical_replication", "args": encrypt(cutover="logical"),
         "expect": ["cutover=logical needs rds.logical_replication=1 in effect on shop", "wal_level is replica",
                    "set rds.logical_replication=1 in a custom parameter group", "attach it and reboot it",
                    "refused before any change"]},
        {"id": "negative_keep_old_hours", "args": encrypt(keep_old_hours=-1),
         "expect": ["keep_old_hours must be between 0 and 8760"]},
        {"id": "check_fails_on_source", "args": encrypt(compare_row_counts=["missing_table"]),
         "expect": ["check rows in missing_table fails on the source", "does not exist"]},
    ]


def test_bad_inputs_are_refused_before_any_change(lab, keys):
    assert_all_refused(lab, run_module_cases, MODULE, cases(keys), secrets=[PASSWORD])


def test_an_encrypted_instance_is_left_alone(lab, keys, tmp_path):
    playbook = tmp_path / "encrypted.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [
        {"name": "encrypt vault", MODULE: {"db_instance_identifier": "vault", "kms_key_id": keys["enabled"]["KeyId"],
                                           "login_password": PASSWORD}, "register": "vault"},
        {"name": "results", "ansible.builtin.debug": {"msg": "{{ [vault] }}"}}]}]))
    vault = lab.client("rds").describe_db_instances(DBInstanceIdentifier="vault")["DBInstances"][0]
    assert vault["KmsKeyId"]
    since = time.time()
    done = subprocess.run([ANSIBLE_PLAYBOOK, "-i", "localhost,", str(playbook)], env=module_env(lab), cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    tasks = json.loads(done.stdout)["plays"][0]["tasks"]
    for result in tasks[-1]["hosts"]["localhost"]["msg"]:
        assert result.get("failed") is not True, result.get("msg")
        assert result["changed"] is False and result["encrypted"] is True
        assert result["kms_key_id"] == vault["KmsKeyId"]
        assert "is encrypted already" in result["msg"]
    assert mutating_calls(lab, since) == []

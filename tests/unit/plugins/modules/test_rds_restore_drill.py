# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module's glue without AWS: documented options match the argument spec, bad options fail before any AWS call,
and the progress log gets one line per phase. Behaviour against AWS is in tests/integration/test_rds_restore_drill.py.
"""

import importlib
import json

import pytest
import yaml

from ansible.module_utils.testing import patch_module_args

from ansible_collections.dbre.rds.plugins.modules import rds_restore_drill as module_under_test

FRAGMENTS = {
    "dbre.rds.wait": "ansible_collections.dbre.rds.plugins.doc_fragments.wait",
    "dbre.rds.db_connection": "ansible_collections.dbre.rds.plugins.doc_fragments.db_connection",
    "dbre.rds.report": "ansible_collections.dbre.rds.plugins.doc_fragments.report",
    "dbre.rds.data_checks": "ansible_collections.dbre.rds.plugins.doc_fragments.data_checks",
}


def documented_options():
    doc = yaml.safe_load(module_under_test.DOCUMENTATION)
    options = dict(doc["options"])
    for fragment in doc["extends_documentation_fragment"]:
        if fragment in FRAGMENTS:
            options.update(yaml.safe_load(importlib.import_module(FRAGMENTS[fragment]).ModuleDocFragment.DOCUMENTATION)
                           ["options"])
    return doc, options


def _compare(spec, documented, path=""):
    assert set(spec) == set(documented), f"{path}: spec {sorted(spec)} vs docs {sorted(documented)}"
    for name, option in spec.items():
        doc = documented[name]
        where = f"{path}{name}"
        assert doc.get("type", "str") == option.get("type", "str"), where
        assert doc.get("default") == option.get("default"), where
        assert doc.get("choices") == option.get("choices"), where
        assert bool(doc.get("required")) == bool(option.get("required")), where
        assert doc.get("elements") == option.get("elements"), where
        if option.get("options"):
            _compare(option["options"], doc["suboptions"], where + ".")


def test_documentation_matches_argument_spec():
    doc, options = documented_options()
    _compare(module_under_test.argument_spec(), options)
    assert doc["version_added"] == "0.1.0"
    assert doc["attributes"]["check_mode"]["support"] == "full"


def test_examples_use_fqcn_and_names_and_return_is_yaml():
    examples = yaml.safe_load(module_under_test.EXAMPLES)
    assert all(task.get("name") for task in examples)
    assert any(task.get("check_mode") for task in examples)
    assert any("async" in task and "poll" in task for task in examples)
    assert any(task.get("register") for task in examples)
    assert all(next(k for k in task if "." in k).startswith(("dbre.rds.", "ansible.builtin.")) for task in examples)
    returned = yaml.safe_load(module_under_test.RETURN)
    assert {"rto_seconds", "rpo_seconds", "checks", "cleanup", "recovery_point", "report_files"} <= set(returned)


def run_module(args, capsys):
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module_under_test.main()
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("args, fragment", [
    ({"db_instance_identifier": "src", "restore_from": "point_in_time"}, "exactly one of restore_time"),
    ({"db_instance_identifier": "src", "target_identifier": "src"}, "must differ from the source"),
    ({"db_instance_identifier": "src", "checks": [{"name": "n", "sql": "SELECT 1", "expect": {"rows": 1}}]},
     "give login_password or iam_auth=true"),
    ({"db_instance_identifier": "src", "checks": [{"name": "n", "sql": "SELECT 1", "expect": {}}]},
     "expect needs one of"),
    ({"db_instance_identifier": "src", "ssl_mode": "verify-full", "login_password": "x"}, "needs ca_cert"),
    ({"restore_from": "latest_snapshot"}, "any of the following are missing: db_instance_identifier, db_cluster_identifier"),
    ({"db_instance_identifier": "a", "db_cluster_identifier": "b"}, "mutually exclusive"),
    ({"db_instance_identifier": ""}, "db_instance_identifier must not be empty or blank"),
    ({"db_instance_identifier": "   "}, "db_instance_identifier must not be empty or blank"),
    ({"db_cluster_identifier": " "}, "db_cluster_identifier must not be empty or blank"),
    ({"db_instance_identifier": "src", "report_name": "../escape"}, "report_name"),
    ({"db_instance_identifier": "src", "wait_timeout": 0}, "wait_timeout must be greater than 0"),
    ({"state": "sweep", "sweep_older_than": -1}, "sweep_older_than must be greater than 0"),
])
def test_bad_options_fail_before_any_aws_call(args, fragment, capsys, monkeypatch):
    def no_client(module):
        raise AssertionError("an AWS client was created for invalid options")

    monkeypatch.setattr(module_under_test, "rds_client", no_client)
    result = run_module(args, capsys)
    assert result["failed"] is True
    assert fragment in result["msg"]
    assert "x" not in result["msg"].split("login_password")[0][-3:]

# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rds_provision role's argument spec stays in step with its defaults, README, internal defaults and filter."""

import pathlib

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.dbre.rds.plugins.module_utils import rds_provision
from tests.tools import role_readme

ROLE = pathlib.Path(__file__).resolve().parents[3] / "roles" / "rds_provision"
SPECS = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]
SPEC = SPECS["main"]["options"]
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
INTERNAL = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())


def test_every_default_is_specified_with_the_same_value():
    specified = {**SPECS["destroy"]["options"], **SPEC}
    assert sorted(DEFAULTS) == sorted(specified)
    for name, value in DEFAULTS.items():
        assert specified[name].get("default") == value, name


def test_the_readme_is_generated_from_the_current_spec():
    assert (ROLE / "README.md").read_text() == role_readme.render(ROLE), (
        "run: python tests/tools/role_readme.py roles/rds_provision")


def test_the_readme_lists_every_variable_and_declaration_key_with_its_default():
    readme = (ROLE / "README.md").read_text()
    for name, spec in SPEC.items():
        row = next(line for line in readme.splitlines() if line.startswith(f"| `{name}` |"))
        assert role_readme.default_text(spec) in row
    for key in SPEC["rds_provision_instances"]["options"]:
        assert f"`rds_provision_instances[].{key}`" in readme
    for key in SPEC["rds_provision_clusters"]["options"]:
        assert f"`rds_provision_clusters[].{key}`" in readme


@pytest.mark.parametrize("kind", ["instances", "clusters"])
def test_every_internal_per_declaration_default_is_a_documented_key(kind):
    documented = set(SPEC[f"rds_provision_{kind}"]["options"])
    common = set(INTERNAL["__rds_provision_common_defaults"])
    assert common - documented == set()


@pytest.mark.parametrize("kind, engine", [("instances", "postgres"), ("clusters", "aurora-postgresql")])
def test_engine_choices_match_the_filter(kind, engine):
    assert SPEC[f"rds_provision_{kind}"]["options"]["engine"]["choices"] == [engine]
    assert rds_provision.ENGINES[kind.rstrip("s")] == engine


def test_passwords_are_no_log_without_a_default():
    for kind in ("instances", "clusters"):
        option = SPEC[f"rds_provision_{kind}"]["options"]["master_user_password"]
        assert option["no_log"] is True and "default" not in option


def _validate(options, values):
    spec = {name: {key: value for key, value in item.items() if key not in ("description", "version_added")}
            for name, item in options.items()}

    def strip(spec_dict):
        for item in spec_dict.values():
            item.pop("description", None)
            if "options" in item:
                item["options"] = {k: dict(v) for k, v in item["options"].items()}
                strip(item["options"])
    strip(spec)
    return ArgumentSpecValidator(spec).validate(values)


def test_the_spec_accepts_a_full_declaration_and_refuses_another_engine():
    good = {"rds_provision_instances": [{"name": "orders", "engine_version": "15.7", "db_instance_class": "db.r6g.large",
                                         "replicas": 2, "subnet_ids": ["subnet-a", "subnet-b"],
                                         "master_user_password": "s3cret-s3cret"}],
            "rds_provision_clusters": [{"name": "ledger", "engine_version": "15.4", "db_instance_class": "db.serverless",
                                        "serverless_v2_scaling_configuration": {"min_capacity": 0.5,
                                                                                "max_capacity": 8}}]}
    assert _validate(SPEC, good).error_messages == []
    bad = {"rds_provision_instances": [{"name": "orders", "engine": "mysql", "engine_version": "8.0",
                                        "db_instance_class": "db.r6g.large"}]}
    messages = _validate(SPEC, bad).error_messages
    assert any("engine" in message and "postgres" in message for message in messages)

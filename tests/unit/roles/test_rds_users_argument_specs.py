# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rds_users role's argument spec stays in step with its defaults, README and validation filter."""

import pathlib

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.dbre.rds.plugins.module_utils import rds_users

ROLE = pathlib.Path(__file__).resolve().parents[3] / "roles" / "rds_users"
SPEC = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
README = (ROLE / "README.md").read_text()


def test_every_default_is_specified_with_the_same_value():
    assert sorted(DEFAULTS) == sorted(name for name in SPEC if name != "rds_users_login_password")
    for name, value in DEFAULTS.items():
        if isinstance(value, str) and "{{" in value:
            continue
        assert SPEC[name].get("default") == value, name


def test_every_variable_and_login_key_is_in_the_readme():
    for name in SPEC:
        assert f"`{name}`" in README, name
    for key in SPEC["rds_users_logins"]["options"]:
        assert f"`{key}`" in README, key


def test_secrets_are_no_log_and_have_no_default():
    assert SPEC["rds_users_login_password"]["no_log"] is True and "default" not in SPEC["rds_users_login_password"]
    assert SPEC["rds_users_logins"]["options"]["password"]["no_log"] is True


def test_choices_match_the_validation_filter():
    login = SPEC["rds_users_logins"]["options"]
    assert tuple(login["profile"]["choices"]) == rds_users.PROFILES
    for kind, choices in rds_users.PRIVILEGE_CHOICES.items():
        assert tuple(login["privileges"]["options"][kind]["choices"]) == choices, kind


def _validate(arguments):
    return ArgumentSpecValidator(SPEC).validate(arguments).error_messages


def test_spec_accepts_a_full_declaration():
    assert _validate({
        "rds_users_databases": [{"name": "app", "owner": "app_owner", "schemas": ["app"]}],
        "rds_users_logins": [
            {"name": "a", "profile": "readonly", "databases": ["app"], "password": "x", "conn_limit": 3,
             "valid_until": "2030-01-01", "statement_timeout": "30s", "search_path": ["app"]},
            {"name": "c", "profile": "custom", "databases": ["app"], "iam_auth": True,
             "privileges": {"tables": ["SELECT"], "functions": ["EXECUTE"]}},
            {"name": "old", "state": "absent"},
        ],
        "rds_users_update_password": "always",
    }) == []


@pytest.mark.parametrize("arguments, message", [
    ({"rds_users_logins": [{"name": "a", "profile": "superuser"}]}, "value of profile must be one of"),
    ({"rds_users_logins": [{"profile": "readonly"}]}, "missing required arguments: name"),
    ({"rds_users_logins": [{"name": "a", "colour": "red"}]}, "colour"),
    ({"rds_users_logins": [{"name": "a", "privileges": {"tables": ["DROP"]}}]}, "value of tables must be one"),
    ({"rds_users_logins": [{"name": "a", "conn_limit": "many"}]}, "conn_limit"),
    ({"rds_users_databases": [{"schemas": ["x"]}]}, "missing required arguments: name"),
    ({"rds_users_update_password": "sometimes"}, "value of rds_users_update_password must be one of"),
    ({"rds_users_ssl_mode": "maybe"}, "value of rds_users_ssl_mode must be one of"),
])
def test_spec_refuses_bad_input(arguments, message):
    errors = _validate(arguments)
    assert any(message in error for error in errors), errors

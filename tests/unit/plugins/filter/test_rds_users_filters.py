# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one filter of the rds_users role, rds_users_plan, at each step the role calls it. The decisions behind it are
tested in tests/unit/plugins/module_utils/test_rds_users.py."""

import json

from ansible_collections.dbre.rds.plugins.filter import rds_users as rds_users_filter
from ansible_collections.dbre.rds.plugins.module_utils import rds_users

plan = rds_users_filter.FilterModule().filters()["rds_users_plan"]
DATABASES = [{"name": "app", "schemas": ["app", "public"]}]
LOGINS = [
    {"name": "app_reader", "profile": "readonly", "databases": ["app"], "password": "Reader-pw-1"},
    {"name": "app_writer", "profile": "readwrite", "databases": ["app"], "password_secret": "prod/writer"},
    {"name": "old_app", "state": "absent"},
]
SETTINGS = {"login_host": "db.local", "login_port": 5432, "login_user": "master", "login_password": True,
            "connect_timeout": 10, "update_password": "on_create"}
STATE = {"roles": ["master", "app_owner", "app_readonly", "app_readwrite", "app_monitoring", "app_reader", "old_app"],
         "role_comments": {"app_reader": rds_users.MARKER, "old_app": rds_users.MARKER},
         "databases": ["postgres", "app"], "schemas": {"app": ["app", "public"]}, "db_role_settings": []}


def test_the_role_has_one_filter():
    assert list(rds_users_filter.FilterModule().filters()) == ["rds_users_plan"]


def test_validation_step_returns_problems_and_connection_only_when_something_is_wrong():
    result = plan(DATABASES, LOGINS + [{"name": "Bad", "profile": "readonly", "databases": ["app"]}],
                  settings=dict(SETTINGS, login_port=70000))
    assert sorted(result) == ["connection", "problems"]
    assert any("login name" in problem for problem in result["problems"])
    assert any("rds_users_login_port" in problem for problem in result["problems"])
    assert any("has no password source" in problem for problem in result["problems"])


def test_validation_step_with_good_declarations_plans_and_holds_no_password():
    result = plan(DATABASES, LOGINS, settings=SETTINGS)
    assert result["problems"] == []
    assert result["connection"]["host"] == "db.local"
    assert [item["name"] for item in result["logins"]] == ["app_reader", "app_writer"]
    assert "Reader-pw-1" not in json.dumps(result)


def test_master_user_declared_as_a_login_is_refused_at_validation():
    master = {"name": "master", "profile": "readonly", "databases": ["app"], "password": "x"}
    result = plan(DATABASES, LOGINS + [master], settings=SETTINGS)
    assert any("is the master user" in problem for problem in result["problems"])


def test_master_step_reads_the_secret():
    settings = dict(SETTINGS, login_user="", login_password=False, login_secret="rds!db")
    result = plan(DATABASES, LOGINS, settings=settings, master_secret='{"username": "dba", "password": "M-pw"}')
    assert result["problems"] == [] and result["master"] == {"user": "dba", "password": "M-pw"}


def test_state_step_cuts_to_existing_marked_roles_and_lists_passwords_to_set():
    result = plan(DATABASES, LOGINS, "master", settings=SETTINGS, state=STATE)
    assert result["problems"] == []
    assert [item["name"] for item in result["absent_logins"]] == ["old_app"]
    assert result["password_logins"] == [{"name": "app_writer", "password_secret": "prod/writer",
                                          "password_secret_key": None}]
    assert "verifiers" not in result
    unmarked = dict(STATE, role_comments={})
    assert any('"old_app" is declared absent but was not created' in problem
               for problem in plan(DATABASES, LOGINS, "master", settings=SETTINGS, state=unmarked)["problems"])


def test_secrets_step_returns_verifiers_only_for_passwords_this_run_sets():
    settings = dict(SETTINGS, update_password="always")
    result = plan(DATABASES, LOGINS, "master", settings=settings, state=STATE,
                  secrets={"app_writer": '{"password": "Writer-pw-2"}'})
    assert sorted(result["verifiers"]) == ["app_reader", "app_writer"]
    assert not any(secret in json.dumps(result) for secret in ("Reader-pw-1", "Writer-pw-2"))
    missing = plan(DATABASES, LOGINS, "master", settings=settings, state=STATE, secrets={})
    assert any('secret "prod/writer" of login "app_writer" was not found' in p for p in missing["problems"])


def test_check_mode_cuts_the_lists_to_what_exists():
    fresh = {"roles": ["master"], "databases": ["postgres"], "schemas": {}, "db_role_settings": []}
    result = plan(DATABASES, LOGINS, "master", settings=SETTINGS, state=fresh, check_mode=True)
    assert result["privileges"] == [] and result["groups"] == [] and result["absent_logins"] == []
    assert [item["name"] for item in result["password_logins"]] == ["app_reader", "app_writer"]

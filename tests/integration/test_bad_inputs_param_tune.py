# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_param_tune refuses bad inputs before its first mutating call, naming the problem and the fix.

Every case runs as a task of one playbook (tests/integration/bad_inputs.py) against a lab holding a tuned postgres15
group ``orders-pg15`` used by the instance ``orders``, a MySQL group ``legacy-mysql`` and an Aurora PostgreSQL
cluster ``aur`` with the member ``aur-1``. For each case the error must name the problem, the lab's call log must show
only reads, and every group must hold exactly the values it held before: no group created, none modified.
"""

import time

import pytest

from tests.integration.bad_inputs import assert_all_refused
from tests.integration.bad_inputs import run_module_cases

MODULE = "dbre.rds.rds_param_tune"
PASSWORD = "bad-Input-Secret-9"
GROUP = "orders-pg15"


def tune(**args):
    return dict({"db_parameter_group_name": GROUP, "db_instance_class": "db.t4g.micro"}, **args)


def cases():
    return [
        # the group's name, checked before any call
        {"id": "blank_group", "args": tune(db_parameter_group_name=""),
         "expect": ["db_parameter_group_name must not be empty or blank"]},
        {"id": "spaces_group", "args": tune(db_parameter_group_name="   "),
         "expect": ["db_parameter_group_name must not be empty or blank"]},
        {"id": "group_starts_with_digit", "args": tune(db_parameter_group_name="15-orders", family="postgres15"),
         "expect": ["'15-orders' is not a valid RDS identifier", "start with a letter"]},
        {"id": "group_double_hyphen", "args": tune(db_parameter_group_name="orders--pg15", family="postgres15"),
         "expect": ["two hyphens in a row"]},
        {"id": "group_trailing_hyphen", "args": tune(db_parameter_group_name="orders-", family="postgres15"),
         "expect": ["do not end with a hyphen"]},
        {"id": "group_too_long", "args": tune(db_parameter_group_name="g" * 256, family="postgres15"),
         "expect": ["256 characters long", "at most 255"]},
        {"id": "default_group", "args": tune(db_parameter_group_name="default.postgres15"),
         "expect": ["RDS default groups cannot be modified", "your own group"]},
        {"id": "both_group_kinds", "args": tune(db_cluster_parameter_group_name="aur-params"),
         "expect": ["mutually exclusive", "db_parameter_group_name", "db_cluster_parameter_group_name"]},
        # types and ranges
        {"id": "boolean_for_integer_parameter", "args": tune(overrides={"max_connections": True}),
         "expect": ["max_connections: True is a boolean", "max_connections is an integer"]},
        {"id": "boolean_for_float_parameter", "args": tune(overrides={"random_page_cost": True}),
         "expect": ["random_page_cost: True is a boolean", "is a number"]},
        {"id": "boolean_max_connections", "args": tune(max_connections=True),
         "expect": ["max_connections: True is a boolean", "give the number of connections"]},
        {"id": "max_connections_zero", "args": tune(max_connections=0),
         "expect": ["max_connections: it must be at least 1"]},
        {"id": "max_connections_too_many", "args": tune(max_connections=300000),
         "expect": ["300000 is more than PostgreSQL allows (262143)"]},
        {"id": "serverless_without_capacity", "args": tune(db_instance_class="db.serverless"),
         "expect": ["db.serverless is sized from the maximum capacity", "give max_capacity"]},
        {"id": "capacity_out_of_range", "args": tune(db_instance_class="db.serverless", max_capacity=0.25),
         "expect": ["0.25 is not an Aurora Serverless v2 capacity", "from 0.5 to 256"]},
        {"id": "class_without_db_prefix", "args": tune(db_instance_class="r6g.large"),
         "expect": ["'r6g.large' is not a DB instance class", "db.r6g.large"]},
        {"id": "unknown_class", "args": tune(db_instance_class="db.r6g.hyper", sizing_source="table"),
         "expect": ["Unknown DB instance class 'db.r6g.hyper'", "Closest known classes"]},
        {"id": "wait_timeout_zero", "args": tune(wait_timeout=0), "expect": ["wait_timeout", "at least 1 second"]},
        {"id": "blank_description", "args": tune(db_parameter_group_name="orders-new", family="postgres15",
                                                 description=" "),
         "expect": ["description: it is blank"]},
        {"id": "aws_tag", "args": tune(db_parameter_group_name="orders-new", family="postgres15",
                                       tags={"aws:owner": "dba"}),
         "expect": ["'aws:owner' is not a tag key RDS accepts"]},
        # overrides
        {"id": "override_misspelt", "args": tune(overrides={"shared_bufers": "1GB"}),
         "expect": ["shared_bufers is not a parameter", "Did you mean shared_buffers"]},
        {"id": "override_named_twice", "args": tune(overrides={"work_mem": "4MB", "WORK_MEM": "8MB"}),
         "expect": ["work_mem and WORK_MEM name the same parameter"]},
        {"id": "override_time_for_memory", "args": tune(overrides={"shared_buffers": "5min"}),
         "expect": ["shared_buffers: '5min' is a time", "8kB pages"]},
        # families and instances that make no sense for the group
        {"id": "mysql_family_given", "args": tune(db_parameter_group_name="orders-new", family="mysql8.0"),
         "expect": ["family 'mysql8.0' is not PostgreSQL"]},
        {"id": "mysql_group", "args": tune(db_parameter_group_name="legacy-mysql"),
         "expect": ["family 'mysql8.0' is not PostgreSQL"]},
        {"id": "family_mismatch", "args": tune(family="postgres16"),
         "expect": ["its family is postgres15, not postgres16"]},
        {"id": "missing_group_without_family", "args": tune(db_parameter_group_name="orders-missing"),
         "expect": ["it does not exist; give family"]},
        {"id": "blank_instance", "args": {"db_parameter_group_name": GROUP, "db_instance_identifier": ""},
         "expect": ["db_instance_identifier must not be empty or blank"]},
        {"id": "no_such_instance", "args": {"db_parameter_group_name": GROUP, "db_instance_identifier": "orderz"},
         "expect": ["orderz: no such instance"]},
        {"id": "aurora_member_for_rds_group",
         "args": {"db_parameter_group_name": GROUP, "db_instance_identifier": "aur-1"},
         "expect": ["aur-1 is a member of the Aurora cluster 'aur'", "tune an aurora-postgresqlNN group"]},
        {"id": "rds_instance_for_aurora_group",
         "args": {"db_parameter_group_name": "apg-new", "family": "aurora-postgresql15",
                  "db_instance_identifier": "orders"},
         "expect": ["orders is an RDS PostgreSQL instance, not an Aurora member"]},
        # a fleet is checked whole before any group is created or changed
        {"id": "fleet_group_twice", "args": {"db_instance_class": "db.t4g.micro", "parameter_groups": [
            {"db_parameter_group_name": GROUP}, {"db_parameter_group_name": "ORDERS-PG15"}]},
         "expect": ["ORDERS-PG15 is already parameter_groups[0]"]},
        {"id": "fleet_bad_item_option", "args": {"db_instance_class": "db.t4g.micro", "family": "postgres15",
                                                 "parameter_groups": [{"db_parameter_group_name": "fleet-new-a"},
                                                                      {"db_parameter_group_name": "fleet--b"}]},
         "expect": ["db_parameter_group_name of parameter_groups[1] 'fleet--b' is not a valid RDS identifier"]},
        {"id": "fleet_bad_value_in_last_group",
         "args": {"db_instance_class": "db.t4g.micro", "family": "postgres15", "parameter_groups": [
             {"db_parameter_group_name": "fleet-new-a"},
             {"db_parameter_group_name": GROUP, "overrides": {"checkpoint_timeout": "2d"}}]},
         "expect": ["DB parameter group orders-pg15: checkpoint_timeout: 172800 is outside the allowed range",
                    "nothing was changed"]},
    ]


@pytest.fixture(scope="module")
def sources(lab):
    lab.control.reset()
    rds = lab.client("rds")
    rds.create_db_parameter_group(DBParameterGroupName=GROUP, DBParameterGroupFamily="postgres15",
                                  Description="bad inputs")
    rds.modify_db_parameter_group(DBParameterGroupName=GROUP, Parameters=[
        {"ParameterName": "work_mem", "ParameterValue": "4096", "ApplyMethod": "immediate"}])
    rds.create_db_parameter_group(DBParameterGroupName="legacy-mysql", DBParameterGroupFamily="mysql8.0",
                                  Description="not PostgreSQL")
    rds.create_db_instance(DBInstanceIdentifier="orders", Engine="postgres", EngineVersion="15.4",
                           DBInstanceClass="db.t4g.micro", MasterUsername="app", MasterUserPassword=PASSWORD,
                           AllocatedStorage=20, DBParameterGroupName=GROUP)
    rds.create_db_cluster(DBClusterIdentifier="aur", Engine="aurora-postgresql", MasterUsername="app",
                          MasterUserPassword=PASSWORD)
    rds.create_db_instance(DBInstanceIdentifier="aur-1", DBClusterIdentifier="aur", Engine="aurora-postgresql",
                           DBInstanceClass="db.r6g.large")
    deadline = time.monotonic() + 120
    while {i["DBInstanceStatus"] for i in rds.describe_db_instances()["DBInstances"]} != {"available"}:
        assert time.monotonic() < deadline, "the sources did not become available"
        time.sleep(0.3)
    yield rds
    lab.control.reset()


def test_bad_inputs_are_refused_before_any_change(lab, sources):
    refused = cases()
    assert len(refused) >= 15
    results = assert_all_refused(lab, run_module_cases, MODULE, refused, secrets=(PASSWORD,))
    groups = sorted(g["DBParameterGroupName"] for g in sources.describe_db_parameter_groups()["DBParameterGroups"]
                    if not g["DBParameterGroupName"].startswith("default."))
    assert groups == ["legacy-mysql", GROUP]
    assert all(not r["msg"].startswith(("Unexpected", "MODULE FAILURE")) for r in results.values())


def test_every_option_problem_is_listed_at_once(lab, sources):
    """Several bad options fail once, each named, instead of one per run."""
    case = {"id": "many", "args": tune(db_parameter_group_name="orders--", max_connections=0,
                                       overrides={"work_mem": 1, "Work_Mem": 2}),
            "expect": ["found 3 problem(s); nothing was called or changed", "two hyphens in a row",
                       "must be at least 1", "name the same parameter"]}
    since = time.time()
    results = assert_all_refused(lab, run_module_cases, MODULE, [case])
    assert results["many"]["failed"]
    # Option problems are found before the first call of any kind.
    assert [c for c in lab.control.calls(since=since) if "dbre.rds/rds_param_tune" in str(c.get("user_agent", ""))] \
        == []

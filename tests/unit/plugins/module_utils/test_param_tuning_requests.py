# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rds_param_tune's decisions about its options: one request per group, every option checked before any call,
metadata shared per family, a boolean never taken for a number."""

import pytest

from ansible_collections.dbre.rds.plugins.module_utils import param_tuning as pt

from .test_param_tuning import METADATA
from .test_param_tuning import meta

TOP = {key: None for key in pt.GROUP_OPTIONS}
TOP.update(description="Tuned by dbre.rds.rds_param_tune", workload="oltp", value_style="absolute", overrides={},
           apply_recommendations=True)


def request(**options):
    return dict(TOP, **options)


GOOD = request(db_parameter_group_name="orders-pg15", db_instance_class="db.r6g.large", family="postgres15")


# ------------------------------------------------------------------------------------- booleans for numbers

@pytest.mark.parametrize("name,value,message", [
    ("max_connections", True, "max_connections: True is a boolean (YAML reads true/yes/on/false/no/off as one), "
                              "but max_connections is an integer; give an integer instead."),
    ("work_mem", False, "work_mem: False is a boolean"),
    ("random_page_cost", True, "random_page_cost: True is a boolean (YAML reads true/yes/on/false/no/off as one), "
                               "but random_page_cost is a number"),
    ("max_connections", [100, 200], "max_connections: [100, 200] is a list, but max_connections is an integer"),
    ("log_statement", {"a": 1}, "log_statement: {'a': 1} is a dict, but log_statement is a string"),
])
def test_a_boolean_list_or_dict_for_a_number_is_a_problem_never_one(name, value, message):
    problems = pt.desired_values([], {name: value}, METADATA)[3]
    assert len(problems) == 1
    assert message in problems[0]


@pytest.mark.parametrize("value,expected", [(True, "1"), (False, "0"), ("on", "1"), ("off", "0")])
def test_a_boolean_for_a_boolean_parameter_is_still_taken(value, expected):
    desired, _sources, _skipped, problems = pt.desired_values([], {"track_io_timing": value}, METADATA)
    assert problems == [] and desired == {"track_io_timing": expected}


# ----------------------------------------------------------------------------------------- option problems

def test_good_options_have_no_problem():
    assert pt.option_problems(GOOD) == []
    serverless = request(db_cluster_parameter_group_name="reports-apg15", db_instance_class="db.serverless",
                         max_capacity=64.5, family="aurora-postgresql15")
    assert pt.option_problems(serverless) == []
    assert pt.option_problems(request(db_parameter_group_name="a" * 255, db_instance_identifier="orders-db")) == []


@pytest.mark.parametrize("change,message", [
    ({"db_parameter_group_name": ""}, "db_parameter_group_name must not be empty or blank"),
    ({"db_parameter_group_name": "   "}, "db_parameter_group_name must not be empty or blank"),
    ({"db_parameter_group_name": "1orders"}, "'1orders' is not a valid RDS identifier"),
    ({"db_parameter_group_name": "orders-"}, "do not end with a hyphen"),
    ({"db_parameter_group_name": "orders--pg"}, "two hyphens in a row"),
    ({"db_parameter_group_name": "orders_pg"}, "use letters, digits and hyphens"),
    ({"db_parameter_group_name": "a" * 256}, "is 256 characters long; RDS allows at most 255"),
    ({"db_parameter_group_name": "default.postgres15"}, "RDS default groups cannot be modified"),
    ({"db_cluster_parameter_group_name": "other"}, "give exactly one of db_parameter_group_name"),
    ({"db_parameter_group_name": None}, "give exactly one of db_parameter_group_name"),
    ({"db_instance_identifier": "orders-db"}, "give exactly one of db_instance_class"),
    ({"db_instance_class": None}, "give exactly one of db_instance_class"),
    ({"db_instance_class": None, "db_instance_identifier": "orders--db"}, "db_instance_identifier 'orders--db' is not"),
    ({"db_instance_class": None, "db_instance_identifier": "a" * 64}, "RDS allows at most 63"),
    ({"db_instance_class": "r6g.large"}, "db_instance_class: 'r6g.large' is not a DB instance class"),
    ({"db_instance_class": " "}, "is not a DB instance class"),
    ({"db_instance_class": "db.serverless"}, "max_capacity: db.serverless is sized from the maximum capacity"),
    ({"db_instance_class": "db.serverless", "max_capacity": 0.25}, "give ACUs from 0.5 to 256 in steps of 0.5"),
    ({"db_instance_class": "db.serverless", "max_capacity": 300.0}, "300.0 is not an Aurora Serverless v2 capacity"),
    ({"db_instance_class": "db.serverless", "max_capacity": 8.3}, "in steps of 0.5"),
    ({"max_connections": True}, "max_connections: True is a boolean"),
    ({"max_connections": 0}, "max_connections: it must be at least 1."),
    ({"max_connections": 300000}, "300000 is more than PostgreSQL allows (262143)"),
    ({"family": "mysql8.0"}, "family: family 'mysql8.0' is not PostgreSQL"),
    ({"family": " "}, "family: family is blank"),
    ({"description": ""}, "description: it is blank"),
    ({"tags": {"aws:owner": "x"}}, "tags: 'aws:owner' is not a tag key RDS accepts"),
    ({"tags": {"": "x"}}, "is not a tag key RDS accepts"),
    ({"tags": {"owner": "x" * 257}}, "the value of owner is longer than 256 characters"),
    ({"overrides": {"work_mem": "4MB", "WORK_MEM": "8MB"}}, "work_mem and WORK_MEM name the same parameter"),
    ({"overrides": {" ": "1"}}, "overrides: a parameter name is blank"),
])
def test_each_bad_option_is_named_with_the_fix(change, message):
    problems = pt.option_problems(dict(GOOD, **change), where="")
    assert any(message in problem for problem in problems), problems


def test_where_names_the_item():
    problems = pt.option_problems(dict(GOOD, max_connections=0), where=" of parameter_groups[3]")
    assert problems == ["max_connections of parameter_groups[3]: it must be at least 1."]


# ---------------------------------------------------------------------------------------- one run, many groups

def test_without_parameter_groups_the_top_level_options_are_the_one_request():
    assert pt.group_requests(dict(GOOD, parameter_groups=None, reboot="never")) == [GOOD]


def test_items_take_the_top_level_options_they_do_not_give():
    params = dict(TOP, family="postgres15", db_instance_class="db.r6g.large", workload="web",
                  overrides={"work_mem": "8MB", "statement_timeout": "5min"},
                  parameter_groups=[
                      {"db_parameter_group_name": "a", "workload": None},
                      {"db_cluster_parameter_group_name": "b", "family": "aurora-postgresql15",
                       "db_instance_identifier": "reports-1", "overrides": {"WORK_MEM": "64MB"}},
                  ])
    first, second = pt.group_requests(params)
    assert first["db_parameter_group_name"] == "a" and first["db_cluster_parameter_group_name"] is None
    assert (first["family"], first["db_instance_class"], first["workload"]) == ("postgres15", "db.r6g.large", "web")
    assert first["overrides"] == {"work_mem": "8MB", "statement_timeout": "5min"}
    assert second["db_parameter_group_name"] is None and second["db_cluster_parameter_group_name"] == "b"
    # An item's sizing replaces both top-level sizing options, so it is never given two.
    assert (second["db_instance_class"], second["db_instance_identifier"]) == (None, "reports-1")
    assert second["overrides"] == {"statement_timeout": "5min", "WORK_MEM": "64MB"}
    assert pt.option_problems(first) == [] and pt.option_problems(second) == []


def test_a_group_named_twice_is_a_problem():
    requests = [request(db_parameter_group_name="a"), request(db_parameter_group_name="B"),
                request(db_parameter_group_name="A"), request(db_cluster_parameter_group_name="a")]
    assert pt.duplicate_group_problems(requests) == [
        "parameter_groups[2]: A is already parameter_groups[0]; give each group once, with all its settings in one "
        "item."]


@pytest.mark.parametrize("engine,cluster,family,message", [
    ("postgres", None, "postgres15", None),
    ("aurora-postgresql", "reports", "aurora-postgresql15", None),
    ("aurora-postgresql", "reports", "postgres15", "is a member of the Aurora cluster 'reports', but postgres15 is an "
                                                   "RDS PostgreSQL family"),
    ("postgres", None, "aurora-postgresql15", "is an RDS PostgreSQL instance, not an Aurora member"),
    ("mysql", None, "postgres15", "runs mysql, not PostgreSQL"),
])
def test_the_instance_must_fit_the_family(engine, cluster, family, message):
    instance = {"DBInstanceIdentifier": "db1", "Engine": engine, "DBClusterIdentifier": cluster}
    problem = pt.instance_problem("db1", instance, family)
    assert (problem is None) if message is None else (message in problem and "db_instance_class" in problem)


@pytest.mark.parametrize("groups,shared", [
    ([(False, "postgres15", True)], set()),
    ([(False, "postgres15", False)], {(False, "postgres15")}),
    ([(False, "postgres15", True), (False, "postgres15", True)], {(False, "postgres15")}),
    ([(False, "postgres15", True), (False, "postgres16", True), (True, "aurora-postgresql15", False)],
     {(True, "aurora-postgresql15")}),
])
def test_engine_defaults_are_shared_where_they_save_calls(groups, shared):
    assert pt.shared_default_families(groups) == shared


def test_a_groups_parameters_are_the_defaults_with_its_own_values_on_top():
    rds_rule = "LEAST({DBInstanceClassMemory/9531392},5000)"
    defaults = [meta("work_mem", allowed="64-2147483647", unit="kB"),
                meta("max_connections", allowed="1-262143", value=rds_rule)]
    own = [dict(meta("work_mem", allowed="64-2147483647", unit="kB", value="4096"), Source="user")]
    merged = {p["ParameterName"]: p for p in pt.group_parameters(defaults, own)}
    assert merged["work_mem"]["ParameterValue"] == "4096" and merged["work_mem"]["Source"] == "user"
    assert merged["work_mem"]["AllowedValues"] == "64-2147483647"
    assert merged["max_connections"]["ParameterValue"] == rds_rule


def test_group_users_from_one_listing():
    instances = [
        {"DBInstanceIdentifier": "a", "MultiAZ": True,
         "DBParameterGroups": [{"DBParameterGroupName": "Orders", "ParameterApplyStatus": "pending-reboot"}]},
        {"DBInstanceIdentifier": "b", "DBParameterGroups": [{"DBParameterGroupName": "orders",
                                                             "ParameterApplyStatus": "in-sync"}]},
        {"DBInstanceIdentifier": "c", "DBParameterGroups": [{"DBParameterGroupName": "billing"}]},
    ]
    clusters = [{"DBClusterParameterGroup": "apg", "DBClusterMembers": [
        {"DBInstanceIdentifier": "m1", "DBClusterParameterGroupStatus": "pending-reboot"},
        {"DBInstanceIdentifier": "m2", "DBClusterParameterGroupStatus": "in-sync"}]}]
    assert pt.group_users("orders", False, instances=instances) == [
        {"id": "a", "waits": True, "multi_az": True}, {"id": "b", "waits": False, "multi_az": False}]
    assert [u["id"] for u in pt.group_users("apg", True, clusters=clusters) if u["waits"]] == ["m1"]
    assert pt.group_users("nobody", False, instances=instances) == []

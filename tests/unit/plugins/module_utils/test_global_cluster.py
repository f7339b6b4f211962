# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rds_global_cluster's decisions: option and source checks, the comparable state, the plan and its calls."""

import pytest

from ansible_collections.dbre.rds.plugins.module_utils import global_cluster as gc

PRIMARY = "arn:aws:rds:us-east-1:123456789012:cluster:payments"
SECONDARY = "arn:aws:rds:us-west-2:123456789012:cluster:payments-dr"
MARKER = {"dbre:managed-by": "rds_global_cluster"}


def _params(**changes):
    params = dict(global_cluster_identifier="payments-global", source_db_cluster_identifier="payments",
                  state="present", deletion_protection=None, tags=None, purge_tags=True, wait=True,
                  wait_timeout=1800, poll_interval=5.0)
    params.update(changes)
    return params


def _described(members=((PRIMARY, True),), status="available", deletion_protection=False, tags=None,
               failover=None):
    found = {"GlobalClusterIdentifier": "payments-global", "Status": status, "Engine": "aurora-postgresql",
             "EngineVersion": "15.4", "StorageEncrypted": True, "DeletionProtection": deletion_protection,
             "GlobalClusterArn": "arn:aws:rds::123456789012:global-cluster:payments-global",
             "GlobalClusterMembers": [{"DBClusterArn": arn, "IsWriter": writer} for arn, writer in members]}
    if failover is not None:
        found["FailoverState"] = {"Status": failover, "FromDbClusterArn": PRIMARY, "ToDbClusterArn": SECONDARY}
    if tags is not None:
        found["TagList"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    return found


@pytest.mark.parametrize("changes, expected", [
    ({}, []),
    ({"source_db_cluster_identifier": PRIMARY}, []),
    ({"global_cluster_identifier": "1bad"}, ["global_cluster_identifier '1bad' is not a valid RDS identifier"]),
    ({"global_cluster_identifier": " "}, ["global_cluster_identifier must not be empty"]),
    ({"source_db_cluster_identifier": SECONDARY}, ["is in us-west-2, not in the module's region us-east-1"]),
    ({"source_db_cluster_identifier": "arn:aws:rds:us-east-1:1:db:x"}, ["is not a DB cluster ARN"]),
    ({"tags": {"dbre:managed-by": "someone"}}, ["tag dbre:managed-by is the marker"]),
    ({"tags": {"aws:x": "y"}}, ["the aws: prefix is reserved"]),
    ({"wait_timeout": 0, "poll_interval": -1.0}, ["wait_timeout must be above 0", "poll_interval must be above 0"]),
])
def test_option_problems_name_the_option_and_the_fix(changes, expected):
    problems = gc.option_problems(_params(**changes), "us-east-1")
    assert len(problems) == len(expected)
    for problem, start in zip(problems, expected):
        assert start in problem


@pytest.mark.parametrize("source, expected", [
    (None, "does not exist in us-east-1"),
    ({"Engine": "aurora-mysql"}, "runs 'aurora-mysql'"),
    ({"Engine": "aurora-postgresql", "GlobalClusterIdentifier": "other-global"},
     "already a member of the global cluster other-global"),
    ({"Engine": "aurora-postgresql",
      "GlobalClusterIdentifier": "arn:aws:rds::123456789012:global-cluster:other"}, "global cluster other;"),
])
def test_a_source_that_cannot_start_the_global_cluster_is_refused(source, expected):
    (problem,) = gc.source_problems("payments", source, "payments-global", "us-east-1")
    assert expected in problem


def test_a_source_already_in_this_global_cluster_is_fine():
    source = {"Engine": "aurora-postgresql", "GlobalClusterIdentifier": "payments-global"}
    assert gc.source_problems("payments", source, "payments-global") == []


def test_a_missing_global_cluster_is_created_from_the_source_with_the_marker():
    plan = gc.plan_global_cluster(gc.desired_state(_params(tags={"team": "payments"}, deletion_protection=True),
                                                   PRIMARY), None)
    assert plan["action"] == "create" and plan["changed"] and not plan["problems"]
    assert plan["create"] == {"GlobalClusterIdentifier": "payments-global", "SourceDBClusterIdentifier": PRIMARY,
                              "DeletionProtection": True, "Tags": dict(MARKER, team="payments")}
    assert gc.planned_actions(plan) == ["CreateGlobalCluster"]
    assert plan["after"]["members"] == [PRIMARY] and plan["before"] is None


def test_creating_needs_a_source():
    plan = gc.plan_global_cluster(gc.desired_state(_params(source_db_cluster_identifier=None)), None)
    assert not plan["changed"] and "source_db_cluster_identifier is not given" in plan["problems"][0]


def test_the_same_declaration_twice_changes_nothing():
    current = gc.current_state(_described(), MARKER)
    plan = gc.plan_global_cluster(gc.desired_state(_params(), PRIMARY), current)
    assert (plan["action"], plan["changed"], gc.planned_actions(plan)) == ("none", False, [])


def test_a_source_that_is_not_a_member_of_the_existing_global_cluster_is_refused():
    current = gc.current_state(_described(members=[(SECONDARY, True)]), MARKER)
    plan = gc.plan_global_cluster(gc.desired_state(_params(), PRIMARY), current)
    assert not plan["changed"] and "exists without the cluster" in plan["problems"][0]


def test_tags_and_deletion_protection_are_updated_and_the_marker_kept():
    current = gc.current_state(_described(), dict(MARKER, old="x"))
    plan = gc.plan_global_cluster(gc.desired_state(_params(tags={"team": "p"}, deletion_protection=True), PRIMARY),
                                  current)
    assert plan["modify"] == {"DeletionProtection": True}
    assert plan["add_tags"] == {"team": "p"} and plan["remove_tags"] == ["old"]
    assert gc.planned_actions(plan) == ["ModifyGlobalCluster", "AddTagsToResource", "RemoveTagsFromResource"]
    assert plan["after"]["tags"] == dict(MARKER, team="p") and plan["after"]["deletion_protection"] is True


def test_without_tags_an_existing_global_cluster_is_neither_retagged_nor_adopted():
    current = gc.current_state(_described(), {"team": "p"})
    plan = gc.plan_global_cluster(gc.desired_state(_params(), PRIMARY), current)
    assert not plan["changed"]


def test_giving_the_marker_adopts_an_existing_global_cluster():
    current = gc.current_state(_described(), {})
    plan = gc.plan_global_cluster(gc.desired_state(_params(tags=dict(MARKER)), PRIMARY), current)
    assert plan["add_tags"] == MARKER


def test_absent_detaches_secondaries_first_then_the_writer_then_deletes():
    current = gc.current_state(_described(members=[(SECONDARY, False), (PRIMARY, True)]), MARKER)
    plan = gc.plan_global_cluster(gc.desired_state(_params(state="absent")), current)
    assert plan["detach"] == [SECONDARY, PRIMARY] and plan["delete"]
    assert gc.planned_actions(plan) == ["RemoveFromGlobalCluster", "RemoveFromGlobalCluster", "DeleteGlobalCluster"]
    assert plan["after"] is None


@pytest.mark.parametrize("tags, protected, expected", [
    ({}, False, "was not created by dbre.rds.rds_global_cluster"),
    (MARKER, True, "has deletion protection on"),
])
def test_absent_refuses_what_it_did_not_make_or_what_is_protected(tags, protected, expected):
    current = gc.current_state(_described(deletion_protection=protected), tags)
    plan = gc.plan_global_cluster(gc.desired_state(_params(state="absent")), current)
    assert not plan["changed"] and expected in plan["problems"][0] and gc.planned_actions(plan) == []


@pytest.mark.parametrize("status, failover, expected", [
    ("failing-over", "failing-over", "is failing-over (a switchover or failover is in progress"),
    ("switching-over", None, "is switching-over (a switchover or failover is in progress"),
    ("available", "pending", "is pending (a switchover or failover is in progress"),
    ("modifying", None, "wait until it is available with no failover state"),
])
def test_absent_refuses_while_a_switchover_or_failover_runs(status, failover, expected):
    members = [(PRIMARY, True), (SECONDARY, False)]
    current = gc.current_state(_described(members=members, status=status, failover=failover), MARKER)
    plan = gc.plan_global_cluster(gc.desired_state(_params(state="absent")), current)
    assert not plan["changed"] and plan["detach"] == [] and not plan["delete"]
    assert expected in plan["problems"][0] and gc.planned_actions(plan) == []


def test_absent_of_nothing_changes_nothing():
    plan = gc.plan_global_cluster(None, None)
    assert (plan["changed"], plan["problems"]) == (False, [])


@pytest.mark.parametrize("described, source, ready, failed", [
    (None, None, False, False),
    (_described(status="creating"), None, False, False),
    (_described(), PRIMARY, True, False),
    (_described(), SECONDARY, False, False),
    (_described(status="inaccessible"), None, False, True),
])
def test_readiness_and_failure_while_waiting(described, source, ready, failed):
    assert gc.is_ready(described, source) is ready
    assert gc.has_failed(described) is failed


def test_the_writer_comes_first_and_arns_parse():
    assert gc.member_arns(_described(members=[(SECONDARY, False), (PRIMARY, True)])) == [PRIMARY, SECONDARY]
    assert gc.parse_cluster_arn(SECONDARY) == ("us-west-2", "payments-dr")
    assert gc.parse_cluster_arn("payments") == (None, "payments")

# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rds_alarm_thresholds_info, rds_pg_stats_info, rds_event_subscription and the rds_monitoring role refuse bad inputs
before their first mutating call, naming the problem and the fix.

Every case runs through tests/integration/bad_inputs.py (one playbook per module or role): for each, the error must
name the problem, the lab's call log must show only reads, and the lab's resources must be as before. The role's
cases also leave no SNS topic and no CloudWatch alarm behind (the shared snapshot covers RDS only).
"""

import pytest

from tests.integration.bad_inputs import assert_all_refused
from tests.integration.bad_inputs import run_module_cases
from tests.integration.bad_inputs import run_role_cases

PASSWORD = "Bad-Inputs-Monitoring-1"
INSTANCE, PENDING = "bad-mon-db", "bad-mon-pending"
PENDING_GROUP = "bad-mon-pending-pg15"
CLUSTER, MEMBER = "bad-mon-aurora", "bad-mon-aurora-1"
TOPIC = "bad-mon-topic"


@pytest.fixture(scope="module")
def resources(lab):
    """A standalone instance, one whose group's max_connections waits for a reboot, an Aurora cluster with a member,
    and an SNS topic: made before the cases, so the cases' own call log holds only what they did."""
    lab.control.reset()
    rds = lab.client("rds")
    common = dict(MasterUsername="dbadmin", MasterUserPassword=PASSWORD)
    rds.create_db_parameter_group(DBParameterGroupName=PENDING_GROUP, DBParameterGroupFamily="postgres15",
                                  Description="max_connections waiting for a reboot")
    rds.modify_db_parameter_group(DBParameterGroupName=PENDING_GROUP, Parameters=[
        {"ParameterName": "max_connections", "ParameterValue": "100", "ApplyMethod": "pending-reboot"}])
    rds.create_db_instance(DBInstanceIdentifier=INSTANCE, DBInstanceClass="db.t4g.micro", AllocatedStorage=20,
                           Engine="postgres", EngineVersion="15.5", **common)
    rds.create_db_instance(DBInstanceIdentifier=PENDING, DBInstanceClass="db.t4g.micro", AllocatedStorage=20,
                           Engine="postgres", EngineVersion="15.5", DBParameterGroupName=PENDING_GROUP, **common)
    rds.create_db_cluster(DBClusterIdentifier=CLUSTER, Engine="aurora-postgresql", **common)
    rds.create_db_instance(DBInstanceIdentifier=MEMBER, DBClusterIdentifier=CLUSTER, Engine="aurora-postgresql",
                           DBInstanceClass="db.r6g.large")
    waiter = rds.get_waiter("db_instance_available")
    for identifier in (INSTANCE, PENDING, MEMBER):
        waiter.wait(DBInstanceIdentifier=identifier, WaiterConfig={"Delay": 1, "MaxAttempts": 300})
    rds.modify_db_parameter_group(DBParameterGroupName=PENDING_GROUP, Parameters=[
        {"ParameterName": "max_connections", "ParameterValue": "90", "ApplyMethod": "pending-reboot"}])
    (group,) = rds.describe_db_instances(DBInstanceIdentifier=PENDING)["DBInstances"][0]["DBParameterGroups"]
    assert group["ParameterApplyStatus"] == "pending-reboot"
    topic_arn = lab.client("sns").create_topic(Name=TOPIC)["TopicArn"]
    yield dict(topic_arn=topic_arn)
    lab.control.reset()


THRESHOLDS_CASES = [
    {"id": "no_instance", "args": {"db_instance_identifiers": []},
     "expect": ["db_instance_identifiers is empty", "name at least one DB instance"]},
    {"id": "empty_identifier", "args": {"db_instance_identifiers": [""]},
     "expect": ["db_instance_identifiers item must not be empty or blank"]},
    {"id": "identifier_with_underscore", "args": {"db_instance_identifiers": ["bad_mon_db"]},
     "expect": ["'bad_mon_db' is not a valid RDS identifier", "use letters, digits and hyphens"]},
    {"id": "instance_twice", "args": {"db_instance_identifiers": [INSTANCE, INSTANCE]},
     "expect": [f"names {INSTANCE} more than once"]},
    {"id": "unknown_alarm", "args": {"db_instance_identifiers": [INSTANCE], "alarms": {"cpu": {"threshold": 90}}},
     "expect": ["unknown alarm 'cpu'", "choose from", "cpu_utilization"]},
    {"id": "share_as_percent",
     "args": {"db_instance_identifiers": [INSTANCE], "alarms": {"database_connections": {"share": 80}}},
     "expect": ["share must be above 0 and at most 1", "0.8 for 80 %"]},
    {"id": "period_not_a_minute_multiple",
     "args": {"db_instance_identifiers": [INSTANCE], "alarms": {"cpu_utilization": {"period": 45}}},
     "expect": ["'cpu_utilization': period must be 10, 30 or a multiple of 60 seconds, got 45"]},
    {"id": "more_datapoints_than_periods",
     "args": {"db_instance_identifiers": [INSTANCE],
              "alarms": {"cpu_utilization": {"evaluation_periods": 2, "datapoints_to_alarm": 5}}},
     "expect": ["datapoints_to_alarm must be a whole number from 1 to evaluation_periods (2), got 5"]},
    {"id": "action_not_an_arn", "args": {"db_instance_identifiers": [INSTANCE], "alarm_actions": [TOPIC]},
     "expect": [f"alarm_actions item '{TOPIC}' is not an ARN"]},
    {"id": "password_without_user", "args": {"db_instance_identifiers": [INSTANCE], "login_password": PASSWORD},
     "expect": ["login_password or iam_auth needs login_user"]},
    {"id": "login_host_for_two_instances",
     "args": {"db_instance_identifiers": [INSTANCE, PENDING], "login_host": "127.0.0.1",
              "login_user": "dbadmin", "login_password": PASSWORD},
     "expect": ["login_host names one server", "drop login_host"]},
    {"id": "instance_missing", "args": {"db_instance_identifiers": ["bad-mon-nowhere"]},
     "expect": ["DB instance bad-mon-nowhere does not exist", "check the identifier and the region"]},
    {"id": "pending_max_connections_without_login", "args": {"db_instance_identifiers": [PENDING]},
     "expect": [f"{PENDING}: cannot derive the database_connections threshold", "(90)", "pending-reboot",
                "give login_user"]},
]

PG_STATS_CASES = [
    {"id": "limit_zero", "args": {"db_instance_identifier": INSTANCE, "login_user": "dbadmin",
                                  "login_password": PASSWORD, "limit": 0},
     "expect": ["limit must be from 1 to 1000", "got 0"]},
    {"id": "connection_use_as_percent", "args": {"db_instance_identifier": INSTANCE, "login_user": "dbadmin",
                                                 "login_password": PASSWORD, "connection_use_max": 80},
     "expect": ["connection_use_max is a share above 0 and at most 1", "got 80"]},
    {"id": "no_login_user", "args": {"db_instance_identifier": INSTANCE, "login_password": PASSWORD},
     "expect": ["login_user is required"]},
    {"id": "blank_identifier", "args": {"db_instance_identifier": " ", "login_user": "dbadmin",
                                        "login_password": PASSWORD},
     "expect": ["db_instance_identifier must not be empty or blank"]},
    {"id": "report_name_with_path", "args": {"db_instance_identifier": INSTANCE, "login_user": "dbadmin",
                                             "login_password": PASSWORD, "report_dir": "/tmp",
                                             "report_name": "../etc/stats"},
     "expect": ["report_name '../etc/stats' must be a plain file name stem"]},
    {"id": "verify_full_without_ca", "args": {"db_instance_identifier": INSTANCE, "login_user": "dbadmin",
                                              "login_password": PASSWORD, "ssl_mode": "verify-full"},
     "expect": ["ssl_mode=verify-full needs ca_cert"]},
    {"id": "stats_instance_missing", "args": {"db_instance_identifier": "bad-mon-nowhere", "login_user": "dbadmin",
                                              "login_password": PASSWORD},
     "expect": ["DB instance bad-mon-nowhere does not exist"]},
]


def subscription_cases(topic_arn):
    base = dict(name="bad-mon-events", sns_topic_arn=topic_arn, source_type="db-instance")
    return [
        {"id": "blank_name", "args": dict(base, name=" "), "expect": ["name must not be empty or blank"]},
        {"id": "topic_not_an_arn", "args": dict(base, sns_topic_arn=TOPIC),
         "expect": [f"sns_topic_arn '{TOPIC}' is not an ARN", "pass the topic's ARN"]},
        {"id": "queue_instead_of_topic",
         "args": dict(base, sns_topic_arn="arn:aws:sqs:us-east-1:123456789012:bad-mon-queue"),
         "expect": ["is not an SNS topic ARN"]},
        {"id": "create_without_topic", "args": {"name": "bad-mon-events", "source_type": "db-instance"},
         "expect": ["sns_topic_arn is required to create RDS event subscription bad-mon-events"]},
        {"id": "unknown_category", "args": dict(base, event_categories=["failover", "explosion"]),
         "expect": ["'explosion' do not exist for source_type db-instance", "choose from", "low storage"]},
        {"id": "unknown_source_type", "args": dict(base, source_type="db-instances"),
         "expect": ["unknown source_type 'db-instances'", "db-instance"]},
        {"id": "cluster_as_instance_source", "args": dict(base, source_ids=[CLUSTER]),
         "expect": [f"'{CLUSTER}' is an Aurora DB cluster, not a DB instance", "use source_type db-cluster"]},
        {"id": "member_as_cluster_source", "args": dict(base, source_type="db-cluster", source_ids=[MEMBER]),
         "expect": [f"'{MEMBER}' is a DB instance, not a DB cluster", f"give its cluster '{CLUSTER}'"]},
        {"id": "source_missing", "args": dict(base, source_ids=[INSTANCE, "bad-mon-nowhere"]),
         "expect": ["'bad-mon-nowhere': no db-instance of that name exists"]},
        {"id": "reserved_tag", "args": dict(base, tags={"aws:team": "dbre"}),
         "expect": ["tag key 'aws:team': the aws: prefix is reserved"]},
    ]


ROLE_CASES = [
    {"id": "role_no_instances", "vars": {"rds_monitoring_instances": []},
     "expect": ["rds_monitoring_instances is empty"]},
    {"id": "role_bad_identifier", "vars": {"rds_monitoring_instances": [INSTANCE, "orders_db"]},
     "expect": ["rds_monitoring_instances holds orders_db, not a valid RDS identifier"]},
    {"id": "role_instance_twice", "vars": {"rds_monitoring_instances": [INSTANCE, INSTANCE]},
     "expect": ["names an instance more than once"]},
    {"id": "role_topic_name", "vars": {"rds_monitoring_instances": [INSTANCE],
                                       "rds_monitoring_topic_name": "rds monitoring"},
     "expect": ['rds_monitoring_topic_name "rds monitoring" must be 1 to 256 letters']},
    {"id": "role_retention", "vars": {"rds_monitoring_instances": [INSTANCE],
                                      "rds_monitoring_performance_insights": True,
                                      "rds_monitoring_performance_insights_retention_days": 30},
     "expect": ["retention_days 30 is not a retention RDS accepts", "a multiple of 31"]},
    {"id": "role_monitoring_without_role_arn", "vars": {"rds_monitoring_instances": [INSTANCE],
                                                        "rds_monitoring_enhanced_monitoring_interval": 60},
     "expect": ["needs rds_monitoring_enhanced_monitoring_role_arn"]},
    {"id": "role_pg_stat_statements_without_password",
     "vars": {"rds_monitoring_instances": [INSTANCE], "rds_monitoring_pg_stat_statements": True},
     "expect": ["rds_monitoring_pg_stat_statements needs rds_monitoring_login_password"]},
    {"id": "role_unknown_alarm", "vars": {"rds_monitoring_instances": [INSTANCE],
                                          "rds_monitoring_alarms": {"connections": {"share": 0.5}}},
     "expect": ["unknown alarm 'connections'", "database_connections"]},
    {"id": "role_instance_missing", "vars": {"rds_monitoring_instances": [INSTANCE, "bad-mon-nowhere"]},
     "expect": ["DB instance bad-mon-nowhere does not exist"]},
    {"id": "role_pending_max_connections", "vars": {"rds_monitoring_instances": [PENDING]},
     "expect": ["cannot derive the database_connections threshold", "pending-reboot"]},
    {"id": "role_unknown_event_category", "vars": {"rds_monitoring_instances": [INSTANCE],
                                                   "rds_monitoring_event_categories": ["failover", "explosion"]},
     "expect": ["'explosion' do not exist for source_type db-instance"]},
]


def _no_monitoring_left(lab):
    """The role made no topic besides the fixture's and no alarm."""
    topics = [t["TopicArn"] for t in lab.client("sns").list_topics()["Topics"]]
    assert [t for t in topics if not t.endswith(f":{TOPIC}")] == []
    assert lab.client("cloudwatch").describe_alarms()["MetricAlarms"] == []


def test_alarm_thresholds_info_refuses_bad_inputs(lab, resources):
    assert_all_refused(lab, run_module_cases, "dbre.rds.rds_alarm_thresholds_info", THRESHOLDS_CASES,
                       secrets=[PASSWORD])


def test_pg_stats_info_refuses_bad_inputs(lab, resources):
    assert_all_refused(lab, run_module_cases, "dbre.rds.rds_pg_stats_info", PG_STATS_CASES, secrets=[PASSWORD])


def test_event_subscription_refuses_bad_inputs(lab, resources):
    assert_all_refused(lab, run_module_cases, "dbre.rds.rds_event_subscription",
                       subscription_cases(resources["topic_arn"]))
    assert lab.client("rds").describe_event_subscriptions()["EventSubscriptionsList"] == []


def test_monitoring_role_refuses_bad_inputs(lab, resources):
    assert_all_refused(lab, run_role_cases, "dbre.rds.rds_monitoring", ROLE_CASES)
    _no_monitoring_left(lab)

# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
import pytest

from ansible_collections.dbre.rds.plugins.module_utils import alarm_thresholds as at
from ansible_collections.dbre.rds.plugins.module_utils.instance_classes import sizing_from_table

GIB = 1024 ** 3


def _instance(identifier="db1", klass="db.t4g.micro", storage=20, storage_type="gp3", engine="postgres", **extra):
    described = dict(DBInstanceIdentifier=identifier, DBInstanceClass=klass, AllocatedStorage=storage,
                     StorageType=storage_type, Engine=engine)
    described.update(extra)
    return described


def _plan_alarms(instance, max_value=None, overrides=None, writer=None):
    return _plan(instance, max_value, overrides, writer)[0]


def _plan(instance, max_value=None, overrides=None, writer=None):
    sizing = sizing_from_table(instance["DBInstanceClass"])
    max_connections, source = at.max_connections_in_effect(max_value, sizing["memory_bytes"], sizing["vcpus"])
    facts = at.instance_facts(instance, sizing["memory_gib"], sizing["vcpus"], max_connections, source, writer)
    settings, problems = at.merge_alarm_settings(overrides)
    assert problems == []
    alarms, problems = at.plan_alarms(instance, facts, settings, actions=["arn:aws:sns:us-east-1:1:t"],
                                      aurora_writer=writer)
    assert problems == []
    return {a["key"]: a for a in alarms}, facts


@pytest.mark.parametrize("value, expected, source", [
    # DBInstanceClassMemory is estimated as 90 % of the nominal 1 GiB: 966367642 // 9531392 = 101.
    (None, 101, "rds-default-formula"),
    ("", 101, "rds-default-formula"),
    ("400", 400, "parameter-group"),
    (" 250 ", 250, "parameter-group"),
    ("LEAST({DBInstanceClassMemory/9531392},5000)", 101, "parameter-group-formula"),
    ("LEAST({DBInstanceClassMemory/9531392},60)", 60, "parameter-group-formula"),
    ("GREATEST({DBInstanceClassMemory/9531392},500)", 500, "parameter-group-formula"),
])
def test_max_connections_in_effect(value, expected, source):
    assert at.max_connections_in_effect(value, GIB) == (expected, source)


@pytest.mark.parametrize("bad", ["lots", "{Unknown/2}", "LEAST(1,"])
def test_unreadable_max_connections_is_an_error(bad):
    with pytest.raises(ValueError):
        at.max_connections_in_effect(bad, GIB)


@pytest.mark.parametrize("klass, storage, connections_threshold, storage_threshold, memory_threshold", [
    # 80 % of LEAST(DBInstanceClassMemory/9531392, 5000); 10 % of allocated storage; 25 % of nominal memory.
    ("db.t4g.micro", 20, 80.0, 2 * GIB, 256 * 1024 ** 2),
    ("db.r6g.xlarge", 500, 2595.0, 50 * GIB, 8 * GIB),
    ("db.m6g.large", 100, 648.0, 10 * GIB, 2 * GIB),
])
def test_thresholds_follow_the_instance(klass, storage, connections_threshold, storage_threshold, memory_threshold):
    alarms = _plan_alarms(_instance(klass=klass, storage=storage))
    assert alarms["database_connections"]["threshold"] == connections_threshold
    assert alarms["free_storage_space"]["threshold"] == float(storage_threshold)
    assert alarms["freeable_memory"]["threshold"] == float(memory_threshold)
    assert alarms["cpu_utilization"]["threshold"] == 80.0
    assert alarms["database_connections"]["alarm_actions"] == ["arn:aws:sns:us-east-1:1:t"]
    assert alarms["database_connections"]["dimensions"] == {"DBInstanceIdentifier": "db1"}


def test_parameter_group_value_wins_over_formula():
    alarms, facts = _plan(_instance(klass="db.r6g.xlarge"), max_value="1000")
    assert facts["max_connections"] == 1000
    assert alarms["database_connections"]["threshold"] == 800.0


@pytest.mark.parametrize("instance, present, absent", [
    (_instance(klass="db.t4g.micro", storage_type="gp2"), {"cpu_credit_balance", "burst_balance"},
     {"replica_lag", "aurora_replica_lag", "db_load"}),
    (_instance(klass="db.r6g.xlarge", storage_type="gp3"), set(),
     {"cpu_credit_balance", "burst_balance", "replica_lag", "aurora_replica_lag", "db_load"}),
    (_instance(klass="db.r6g.xlarge", storage_type="gp2", storage=1000), set(), {"burst_balance"}),
    (_instance(klass="db.m6g.large", ReadReplicaSourceDBInstanceIdentifier="db0"), {"replica_lag"}, {"db_load"}),
])
def test_conditional_alarms(instance, present, absent):
    alarms = _plan_alarms(instance)
    assert {k for k in present if alarms[k]["state"] == "present"} == present
    assert {k for k in absent if alarms[k]["state"] == "absent"} == absent


def test_aurora_reader_and_writer():
    reader = _instance(klass="db.r6g.xlarge", engine="aurora-postgresql", storage=1, DBClusterIdentifier="c1")
    alarms = _plan_alarms(reader, writer=False)
    assert alarms["aurora_replica_lag"]["state"] == "present"
    assert alarms["aurora_replica_lag"]["unit"] == "Milliseconds"
    assert alarms["db_load"]["threshold"] == 4.0
    assert alarms["free_storage_space"]["state"] == "absent"
    writer_alarms = _plan_alarms(reader, writer=True)
    assert writer_alarms["aurora_replica_lag"]["state"] == "absent"


def test_overrides_tune_and_turn_off():
    alarms = _plan_alarms(_instance(klass="db.r6g.xlarge", storage=200), overrides={
        "database_connections": {"share": 0.5},
        "free_storage_space": {"threshold": 5 * GIB},
        "read_latency": {"enabled": False},
        "cpu_utilization": {"threshold": 90, "evaluation_periods": 5},
    })
    assert alarms["database_connections"]["threshold"] == 1622.0
    assert alarms["free_storage_space"]["threshold"] == float(5 * GIB)
    assert alarms["free_storage_space"]["description"] == "db1: FreeStorageSpace below 5368709120 Bytes"
    assert alarms["read_latency"]["state"] == "absent"
    assert alarms["read_latency"]["reason"] == "turned off"
    assert alarms["cpu_utilization"]["threshold"] == 90.0
    assert alarms["cpu_utilization"]["evaluation_periods"] == 5


@pytest.mark.parametrize("overrides, fragment", [
    ({"cpu": {"threshold": 1}}, "unknown alarm 'cpu'"),
    ({"cpu_utilization": {"treshold": 1}}, "unknown setting 'treshold'"),
    ({"database_connections": {"share": 80}}, "share must be above 0 and at most 1"),
    ({"cpu_utilization": 90}, "must be a dict"),
])
def test_bad_overrides_are_named(overrides, fragment):
    problems = at.merge_alarm_settings(overrides)[1]
    assert any(fragment in p for p in problems), problems


def test_underivable_threshold_is_a_problem():
    instance = _instance(klass="db.t4g.micro")
    facts = at.instance_facts(instance, None, None, None)
    settings = at.merge_alarm_settings({})[0]
    problems = at.plan_alarms(instance, facts, settings)[1]
    assert any("database_connections" in p for p in problems)


# db.t4g.micro: RDS's default formula gives 101 with the collection's estimate of DBInstanceClassMemory.
@pytest.mark.parametrize("running, group, status, expected", [
    # The running value wins whatever the group says.
    (128, "300", "in-sync", dict(max_connections=128, max_connections_source="running-value",
                                 max_connections_parameter_group=300, max_connections_pending=None)),
    (300, "300", "in-sync", dict(max_connections=300, max_connections_source="running-value",
                                 max_connections_parameter_group=300, max_connections_pending=None)),
    # A value waiting for a reboot is reported as pending, the alarm follows what runs.
    (300, "200", "pending-reboot", dict(max_connections=300, max_connections_source="running-value",
                                        max_connections_parameter_group=200, max_connections_pending=200)),
    # Pending for another parameter of the group: max_connections itself is what runs.
    (300, "300", "pending-reboot", dict(max_connections=300, max_connections_source="running-value",
                                        max_connections_pending=None)),
    (101, None, "applying", dict(max_connections=101, max_connections_source="running-value",
                                 max_connections_pending=None)),
    # No connection: the group's value only while in-sync.
    (None, "300", "in-sync", dict(max_connections=300, max_connections_source="parameter-group",
                                  max_connections_pending=None, reason=None)),
    (None, None, "in-sync", dict(max_connections=101, max_connections_source="rds-default-formula")),
    (None, "LEAST({DBInstanceClassMemory/9531392},60)", "in-sync",
     dict(max_connections=60, max_connections_source="parameter-group-formula")),
    (None, "200", "pending-reboot", dict(max_connections=None, max_connections_source="unknown",
                                         max_connections_pending=200)),
    (None, "200", "applying", dict(max_connections=None, max_connections_source="unknown",
                                   max_connections_pending=200)),
    (None, "200", None, dict(max_connections=None, max_connections_source="unknown", max_connections_pending=200)),
    # An unreadable group value does not matter when the database answers.
    (90, "lots", "in-sync", dict(max_connections=90, max_connections_source="running-value",
                                 max_connections_parameter_group=None)),
])
def test_decide_max_connections(running, group, status, expected):
    decision = at.decide_max_connections(running, group, status, GIB)
    assert {key: decision[key] for key in expected} == expected
    assert decision["parameter_apply_status"] == status
    assert (decision["reason"] is None) == (decision["max_connections"] is not None)


def test_unknown_max_connections_says_why_and_what_to_do():
    reason = at.decide_max_connections(None, "200", "pending-reboot", GIB)["reason"]
    assert "(200)" in reason and "pending-reboot" in reason
    assert "login_user" in reason and "reboot" in reason
    with pytest.raises(ValueError):
        at.decide_max_connections(None, "lots", "in-sync", GIB)


def test_pending_max_connections_without_running_value_is_a_problem_unless_absolute():
    instance = _instance(klass="db.t4g.micro")
    decision = at.decide_max_connections(None, "200", "pending-reboot", GIB)
    facts = at.instance_facts(instance, 1, 2, decision["max_connections"], decision["max_connections_source"])
    facts["max_connections_reason"] = decision["reason"]
    problems = at.plan_alarms(instance, facts, at.merge_alarm_settings({})[0])[1]
    assert len(problems) == 1 and "db1: cannot derive the database_connections threshold" in problems[0]
    assert "pending-reboot" in problems[0]
    settings = at.merge_alarm_settings({"database_connections": {"threshold": 50}})[0]
    alarms, problems = at.plan_alarms(instance, facts, settings)
    assert problems == []
    assert {a["key"]: a for a in alarms}["database_connections"]["threshold"] == 50.0


@pytest.mark.parametrize("overrides, fragment", [
    ({"cpu_utilization": {"period": 45}}, "period must be 10, 30 or a multiple of 60"),
    ({"cpu_utilization": {"period": 0}}, "period must be 10, 30 or a multiple of 60"),
    ({"cpu_utilization": {"evaluation_periods": 0}}, "evaluation_periods must be a whole number of at least 1"),
    ({"cpu_utilization": {"evaluation_periods": 2, "datapoints_to_alarm": 3}}, "datapoints_to_alarm must be"),
    ({"cpu_utilization": {"statistic": "Mean"}}, "statistic 'Mean' is not a CloudWatch statistic"),
    ({"cpu_utilization": {"treat_missing_data": "zero"}}, "treat_missing_data 'zero'"),
    ({"cpu_utilization": {"threshold": "high"}}, "threshold must be a number"),
    ({"database_connections": {"share": "most"}}, "share must be above 0 and at most 1"),
    ({"database_connections": {"share": 0}}, "share must be above 0 and at most 1"),
    ({"db_load": {"per_vcpu": -1}}, "per_vcpu must be above 0"),
    ({"read_latency": {"enabled": "no way"}}, "enabled must be true or false"),
])
def test_out_of_range_settings_are_named(overrides, fragment):
    problems = at.merge_alarm_settings(overrides)[1]
    assert any(fragment in p for p in problems), problems


def test_valid_settings_have_no_problems():
    assert at.merge_alarm_settings({"cpu_utilization": {"period": 60, "evaluation_periods": 5,
                                                        "datapoints_to_alarm": 3, "statistic": "Maximum",
                                                        "treat_missing_data": "breaching"},
                                    "db_load": {"per_vcpu": 1.5}, "read_latency": {"enabled": False}})[1] == []


def _options(**changes):
    params = dict(db_instance_identifiers=["orders-db"], alarm_name_prefix="rds-", alarm_actions=[],
                  login_host=None, login_user=None, login_password=None, iam_auth=False)
    params.update(changes)
    return params


@pytest.mark.parametrize("changes, fragment", [
    (dict(db_instance_identifiers=[]), "db_instance_identifiers is empty"),
    (dict(db_instance_identifiers=[""]), "must not be empty or blank"),
    (dict(db_instance_identifiers=["orders--db"]), "is not a valid RDS identifier"),
    (dict(db_instance_identifiers=["1db"]), "is not a valid RDS identifier"),
    (dict(db_instance_identifiers=["a", "b", "a"]), "names a more than once"),
    (dict(alarm_name_prefix="x" * 230), "CloudWatch allows at most 255"),
    (dict(alarm_name_prefix="rds\n"), "must be printable ASCII"),
    (dict(alarm_actions=["my-topic"]), "alarm_actions item 'my-topic' is not an ARN"),
    (dict(login_password="secret"), "login_password or iam_auth needs login_user"),
    (dict(iam_auth=True), "login_password or iam_auth needs login_user"),
    (dict(db_instance_identifiers=["a", "b"], login_host="127.0.0.1"), "login_host names one server"),
])
def test_option_problems(changes, fragment):
    problems = at.option_problems(_options(**changes))
    assert any(fragment in p for p in problems), problems
    assert not any("secret" in p for p in problems)


def test_valid_options_have_no_problems():
    assert at.option_problems(_options()) == []
    assert at.option_problems(_options(login_user="monitoring", login_password="x", login_host="h",
                                       alarm_actions=["arn:aws:sns:us-east-1:1:t"])) == []

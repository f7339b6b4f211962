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

# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Behaviour 2: modify calls are validated as RDS does and applied all or nothing; missing groups are errors."""

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.lab


@pytest.fixture
def rds(lab_clean):
    client = lab_clean.client()
    client.create_db_parameter_group(DBParameterGroupName="strict", DBParameterGroupFamily="postgres15",
                                     Description="validation")
    return client


def _error(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(ClientError) as error:
        call(**kwargs)
    return error.value.response["Error"]["Code"], error.value.response["Error"]["Message"]


def _user_values(rds):
    return rds.describe_db_parameters(DBParameterGroupName="strict", Source="user")["Parameters"]


@pytest.mark.parametrize("parameters, code, words", [
    ([{"ParameterName": "log_min_duration_statement", "ParameterValue": str(i), "ApplyMethod": "immediate"}
      for i in range(21)], "InvalidParameterValue", "20"),
    ([{"ParameterName": "no_such_setting", "ParameterValue": "1", "ApplyMethod": "immediate"}],
     "InvalidParameterValue", "no_such_setting"),
    ([{"ParameterName": "work_mem", "ParameterValue": "1", "ApplyMethod": "immediate"}],
     "InvalidParameterValue", "64-2147483647"),
    ([{"ParameterName": "log_connections", "ParameterValue": "on", "ApplyMethod": "immediate"}],
     "InvalidParameterValue", "0,1"),
    ([{"ParameterName": "wal_level", "ParameterValue": "logical", "ApplyMethod": "pending-reboot"}],
     "InvalidParameterValue", "wal_level"),
    ([{"ParameterName": "shared_buffers", "ParameterValue": "16384", "ApplyMethod": "immediate"}],
     "InvalidParameterCombination", "static"),
])
def test_rejected_modifications(rds, parameters, code, words):
    error_code, message = _error(rds.modify_db_parameter_group, DBParameterGroupName="strict", Parameters=parameters)
    assert error_code == code
    assert words in message
    assert _user_values(rds) == []


def test_nothing_of_a_rejected_call_is_applied(rds):
    code = _error(rds.modify_db_parameter_group, DBParameterGroupName="strict", Parameters=[
        {"ParameterName": "work_mem", "ParameterValue": "8192", "ApplyMethod": "immediate"},
        {"ParameterName": "max_connections", "ParameterValue": "200", "ApplyMethod": "immediate"}])[0]
    assert code == "InvalidParameterCombination"
    assert _user_values(rds) == []
    rds.modify_db_parameter_group(DBParameterGroupName="strict", Parameters=[
        {"ParameterName": "work_mem", "ParameterValue": "8192", "ApplyMethod": "immediate"},
        {"ParameterName": "max_connections", "ParameterValue": "LEAST({DBInstanceClassMemory/9531392},300)",
         "ApplyMethod": "pending-reboot"}])
    assert {p["ParameterName"] for p in _user_values(rds)} == {"work_mem", "max_connections"}


def test_missing_group_is_not_found(rds):
    assert _error(rds.describe_db_parameter_groups, DBParameterGroupName="nope")[0] == "DBParameterGroupNotFound"
    assert _error(rds.describe_db_parameters, DBParameterGroupName="nope")[0] == "DBParameterGroupNotFound"
    assert _error(rds.modify_db_parameter_group, DBParameterGroupName="nope", Parameters=[
        {"ParameterName": "work_mem", "ParameterValue": "8192", "ApplyMethod": "immediate"}])[0] == \
        "DBParameterGroupNotFound"
    assert _error(rds.describe_db_cluster_parameters, DBClusterParameterGroupName="nope")[0] == \
        "DBParameterGroupNotFound"


def test_default_groups_exist_and_cannot_be_modified(rds):
    group = rds.describe_db_parameter_groups(DBParameterGroupName="default.postgres15")["DBParameterGroups"][0]
    assert group["DBParameterGroupFamily"] == "postgres15"
    code = _error(rds.modify_db_parameter_group, DBParameterGroupName="default.postgres15", Parameters=[
        {"ParameterName": "work_mem", "ParameterValue": "8192", "ApplyMethod": "immediate"}])[0]
    assert code == "InvalidParameterValue"


def test_a_mysql_group_can_exist(rds):
    rds.create_db_parameter_group(DBParameterGroupName="mysql", DBParameterGroupFamily="mysql8.0",
                                  Description="not postgres")
    group = rds.describe_db_parameter_groups(DBParameterGroupName="mysql")["DBParameterGroups"][0]
    assert group["DBParameterGroupFamily"] == "mysql8.0"
    names = {p["ParameterName"] for p in rds.describe_db_parameters(DBParameterGroupName="mysql")["Parameters"]}
    assert "innodb_buffer_pool_size" in names and "shared_buffers" not in names

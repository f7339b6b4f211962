# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""DB instance classes: the lab knows the collection's classes (one table), sizes DBInstanceClassMemory from them with
the collection's reserve share, and rejects an unknown class as RDS does."""

import pytest
from botocore.exceptions import ClientError

from ansible_collections.dbre.rds.plugins.module_utils.instance_classes import sizing_from_table
from ansible_collections.dbre.rds.plugins.module_utils.instance_classes import RDS_RESERVED_MEMORY_SHARE
from ansible_collections.dbre.rds.plugins.module_utils.param_tuning import RDS_CONNECTION_BYTES
from tests.lab.clients import connect_instance, create_postgres, query

pytestmark = pytest.mark.lab

COMMON = dict(Engine="mysql", MasterUsername="admin", MasterUserPassword="lab-password-1", AllocatedStorage=20)


def test_unknown_instance_class_is_rejected(lab_clean):
    rds = lab_clean.client()
    with pytest.raises(ClientError) as error:
        rds.create_db_instance(DBInstanceIdentifier="typo", DBInstanceClass="db.t4g.mirco", **COMMON)
    assert error.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert rds.describe_db_instances()["DBInstances"] == []

    rds.create_db_instance(DBInstanceIdentifier="known", DBInstanceClass="db.t4g.micro", **COMMON)
    with pytest.raises(ClientError) as error:
        rds.modify_db_instance(DBInstanceIdentifier="known", DBInstanceClass="db.r6g.larg", ApplyImmediately=True)
    assert error.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert rds.describe_db_instances(DBInstanceIdentifier="known")["DBInstances"][0]["DBInstanceClass"] == "db.t4g.micro"


def test_class_memory_comes_from_the_collection_table(lab_clean):
    rds = lab_clean.client()
    instance = create_postgres(rds, "sized", DBInstanceClass="db.t3.micro")
    nominal = sizing_from_table("db.t3.micro")["memory_bytes"]
    class_memory = nominal - int(nominal * RDS_RESERVED_MEMORY_SHARE)
    conn = connect_instance(instance)
    # The default group's max_connections is RDS's LEAST({DBInstanceClassMemory/9531392},5000).
    assert query(conn, "SHOW max_connections")[0][0] == str(min(class_memory // RDS_CONNECTION_BYTES, 5000))
    conn.close()

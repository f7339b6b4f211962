# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Behaviour 9: faults on demand: Throttling and 5xx answers, latency, refused connections, lossy failover."""

import threading
import time

import psycopg2
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.lab.clients import connect_instance, create_postgres, query, wait_instance

pytestmark = pytest.mark.lab


def test_throttling_errors_and_latency(lab_clean):
    control = lab_clean.control
    patient = lab_clean.client(config=Config(retries={"mode": "standard", "max_attempts": 3}))
    hasty = lab_clean.client(config=Config(retries={"mode": "standard", "max_attempts": 1}))

    control.set_fault("throttle", share=1.0, actions=["DescribeDBInstances"], count=2)
    patient.describe_db_instances()
    answers = [c["fault"] for c in control.calls(action="DescribeDBInstances")]
    assert answers == ["throttle", "throttle", None], "boto3 retried the two throttled calls"

    control.clear_faults()
    control.set_fault("error", share=1.0, status=503, actions=["DescribeDBParameterGroups"])
    with pytest.raises(ClientError) as error:
        hasty.describe_db_parameter_groups()
    assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    control.clear_faults()

    control.set_fault("latency", share=1.0, seconds=0.4, actions=["DescribeDBClusters"])
    started = time.monotonic()
    hasty.describe_db_clusters()
    assert time.monotonic() - started >= 0.4
    control.clear_faults()
    assert control.faults() == []


def test_refused_connections_and_lossy_failover(lab_clean):
    rds, control = lab_clean.client(), lab_clean.control
    control.set_timing(failover=1.0)
    instance = create_postgres(rds, "writer", MultiAZ=True)

    control.refuse_connections("writer", 1.5)
    time.sleep(0.5)
    with pytest.raises(psycopg2.OperationalError):
        connect_instance(instance, timeout=1)
    time.sleep(1.5)
    connect_instance(instance).close()

    conn = connect_instance(instance)
    query(conn, "CREATE TABLE ticks (id int PRIMARY KEY)")
    conn.close()
    control.arm_lossy_failover("writer", freeze_seconds=1.0)

    acknowledged, stop = [], threading.Event()

    def write():
        next_id, conn = 1, None
        while not stop.is_set():
            try:
                conn = conn or connect_instance(instance, timeout=1)
                query(conn, "INSERT INTO ticks VALUES (%s)", (next_id,))
                acknowledged.append(next_id)
                next_id += 1
            except psycopg2.Error:
                conn = None
                next_id += 1  # never reuse an id whose fate is unknown
            time.sleep(0.02)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(0.5)
        rds.reboot_db_instance(DBInstanceIdentifier="writer", ForceFailover=True)
        wait_instance(rds, "writer", "available", timeout=60)
        time.sleep(0.5)
    finally:
        stop.set()
        writer.join()
    conn = connect_instance(instance)
    present = {row[0] for row in query(conn, "SELECT id FROM ticks")}
    conn.close()
    lost = [i for i in acknowledged if i not in present]
    entry = control.failover_log()[-1]
    assert entry["lossy"] is True
    assert lost, "a lossy failover loses acknowledged writes"
    assert entry["dropped_total"] == len(lost)
    assert entry["dropped_rows"]["public.ticks"] == len(lost)

# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the lab's tests do as a client would: create instances, poll statuses, connect to the endpoint."""

from __future__ import annotations

import time

import psycopg2

MASTER_USER = "master"
MASTER_PASSWORD = "lab-secret-1"


def create_postgres(rds, identifier: str, **kwargs) -> dict:
    params = dict(DBInstanceIdentifier=identifier, Engine="postgres", EngineVersion="15.7",
                  DBInstanceClass="db.t3.micro", MasterUsername=MASTER_USER, MasterUserPassword=MASTER_PASSWORD,
                  DBName="app", AllocatedStorage=20)
    params.update(kwargs)
    rds.create_db_instance(**params)
    return wait_instance(rds, identifier, "available")


def describe_instance(rds, identifier: str) -> dict:
    return rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]


def wait_instance(rds, identifier: str, status: str, timeout: float = 60, interval: float = 0.1) -> dict:
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        instance = describe_instance(rds, identifier)
        if not seen or seen[-1] != instance["DBInstanceStatus"]:
            seen.append(instance["DBInstanceStatus"])
        if instance["DBInstanceStatus"] == status:
            instance["_seen"] = seen
            return instance
        if time.monotonic() > deadline:
            raise AssertionError(f"{identifier} not {status} after {timeout}s; statuses seen: {seen}")
        time.sleep(interval)


def wait_cluster(rds, identifier: str, status: str = "available", timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        cluster = rds.describe_db_clusters(DBClusterIdentifier=identifier)["DBClusters"][0]
        if cluster["Status"] == status:
            return cluster
        if time.monotonic() > deadline:
            raise AssertionError(f"cluster {identifier} not {status} after {timeout}s (is {cluster['Status']})")
        time.sleep(0.1)


def connect(host: str, port: int, dbname: str = "app", user: str = MASTER_USER, password: str = MASTER_PASSWORD,
            timeout: int = 3):
    conn = psycopg2.connect(host=host, port=port, user=user, password=password, dbname=dbname,
                            connect_timeout=timeout)
    conn.autocommit = True
    return conn


def connect_instance(instance: dict, **kwargs):
    return connect(instance["Endpoint"]["Address"], instance["Endpoint"]["Port"], **kwargs)


def query(conn, sql: str, params=None):
    with conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else None

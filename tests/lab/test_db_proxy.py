# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RDS Proxy: the API with AWS's statuses and errors, and a real PgBouncer behind each proxy endpoint (TLS, secrets,
IAM auth tokens, a pool sized by MaxConnectionsPercent, client requests held over a failover).

One instance and one proxy for the whole file (module fixture); each test uses them and leaves them as it found them.
"""

import json
import threading
import time
from datetime import datetime, timedelta, timezone

import psycopg2
import pytest
from botocore.exceptions import ClientError

from tests.lab.clients import MASTER_PASSWORD, MASTER_USER, connect_instance, create_postgres, query

pytestmark = pytest.mark.lab

PROXY = "orders-proxy"
APP_USER, APP_PASSWORD = "app_user", "app-secret-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/rds-proxy-secrets"
PROXY_SECONDS = 1.5


def _wait(describe, status, timeout=30):
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        current = describe()
        if not seen or seen[-1] != current["Status"]:
            seen.append(current["Status"])
        if current["Status"] == status:
            return current, seen
        if time.monotonic() > deadline:
            raise AssertionError(f"not {status} after {timeout}s; statuses seen: {seen}")
        time.sleep(0.1)


def _proxy(rds, name=PROXY):
    return rds.describe_db_proxies(DBProxyName=name)["DBProxies"][0]


def _code(excinfo):
    return excinfo.value.response["Error"]["Code"]


@pytest.fixture(scope="module")
def env(lab):
    lab.control.reset()
    rds, secrets, ec2 = lab.client(), lab.client("secretsmanager"), lab.client("ec2")
    if lab.fidelity:
        lab.control.set_timing(proxy=PROXY_SECONDS, failover=1.5)
    instance = create_postgres(rds, "orders", MultiAZ=True)
    if lab.fidelity:  # plain moto has no database behind the endpoint: the tests that need one fail connecting
        conn = connect_instance(instance)
        query(conn, f"CREATE ROLE {APP_USER} LOGIN PASSWORD '{APP_PASSWORD}'")
        query(conn, f"GRANT ALL ON SCHEMA public TO {APP_USER}")
        conn.close()
    master = secrets.create_secret(Name="orders/master", SecretString=json.dumps(
        {"username": MASTER_USER, "password": MASTER_PASSWORD}))["ARN"]
    app = secrets.create_secret(Name="orders/app", SecretString=json.dumps(
        {"username": APP_USER, "password": APP_PASSWORD}))["ARN"]
    subnets = [s["SubnetId"] for s in ec2.describe_subnets()["Subnets"] if s["DefaultForAz"]][:2]
    created = rds.create_db_proxy(
        DBProxyName=PROXY, EngineFamily="POSTGRESQL", RoleArn=ROLE_ARN, VpcSubnetIds=subnets, RequireTLS=True,
        Auth=[{"AuthScheme": "SECRETS", "SecretArn": master, "IAMAuth": "REQUIRED"},
              {"AuthScheme": "SECRETS", "SecretArn": app, "IAMAuth": "DISABLED"}],
        Tags=[{"Key": "team", "Value": "dbre"}])["DBProxy"]
    proxy, seen = _wait(lambda: _proxy(rds), "available")
    registered = rds.register_db_proxy_targets(DBProxyName=PROXY, DBInstanceIdentifiers=["orders"])
    yield {"lab": lab, "rds": rds, "instance": instance, "created": created, "proxy": proxy, "seen": seen,
           "registered": registered["DBProxyTargets"], "subnets": subnets, "secrets": {"master": master, "app": app}}
    lab.control.reset()


def _connect(env, host, user=APP_USER, password=APP_PASSWORD, **ssl):
    if not ssl:
        ssl = {"sslmode": "verify-full", "sslrootcert": env["lab"].control.ca_cert()}
    conn = psycopg2.connect(host=host, port=5432, user=user, password=password, dbname="app", connect_timeout=5,
                            **ssl)
    conn.autocommit = True
    return conn


def test_create_register_modify_delete_take_time(env):
    rds = env["rds"]
    assert env["created"]["Status"] == "creating"
    assert env["seen"][0] == "creating" and env["proxy"]["Status"] == "available"
    assert env["proxy"]["RequireTLS"] is True and env["proxy"]["EngineFamily"] == "POSTGRESQL"
    assert [a["IAMAuth"] for a in env["proxy"]["Auth"]] == ["REQUIRED", "DISABLED"]
    assert [(t["Type"], t["RdsResourceId"], t["TargetHealth"]["State"]) for t in env["registered"]] == [
        ("RDS_INSTANCE", "orders", "REGISTERING")]
    targets = rds.describe_db_proxy_targets(DBProxyName=PROXY)["Targets"]
    deadline = time.monotonic() + 30
    while targets[0]["TargetHealth"]["State"] == "REGISTERING" and time.monotonic() < deadline:
        time.sleep(0.1)
        targets = rds.describe_db_proxy_targets(DBProxyName=PROXY)["Targets"]
    assert targets[0]["TargetHealth"] == {"State": "AVAILABLE"}
    assert targets[0]["Port"] == env["instance"]["Endpoint"]["Port"]
    group = rds.describe_db_proxy_target_groups(DBProxyName=PROXY)["TargetGroups"][0]
    assert group["ConnectionPoolConfig"]["MaxConnectionsPercent"] == 100
    assert group["ConnectionPoolConfig"]["MaxIdleConnectionsPercent"] == 50
    assert group["ConnectionPoolConfig"]["ConnectionBorrowTimeout"] == 120
    assert rds.list_tags_for_resource(ResourceName=env["proxy"]["DBProxyArn"])["TagList"] == [
        {"Key": "team", "Value": "dbre"}]

    rds.modify_db_proxy(DBProxyName=PROXY, IdleClientTimeout=900)
    assert _proxy(rds)["Status"] == "modifying"
    with pytest.raises(ClientError) as busy:
        rds.modify_db_proxy(DBProxyName=PROXY, DebugLogging=True)
    assert _code(busy) == "InvalidDBProxyStateFault"
    modified, unused = _wait(lambda: _proxy(rds), "available")
    assert modified["IdleClientTimeout"] == 900 and modified["DebugLogging"] is False

    other = rds.create_db_proxy(DBProxyName="short-lived", EngineFamily="POSTGRESQL", RoleArn=ROLE_ARN,
                                VpcSubnetIds=env["subnets"], Auth=[{"SecretArn": env["secrets"]["app"]}])["DBProxy"]
    _wait(lambda: _proxy(rds, "short-lived"), "available")
    deleted = rds.delete_db_proxy(DBProxyName="short-lived")["DBProxy"]
    assert deleted["Status"] == "deleting"
    assert _proxy(rds, "short-lived")["Status"] == "deleting"
    with pytest.raises(psycopg2.OperationalError):  # its PgBouncer is gone at once
        _connect(env, other["Endpoint"], sslmode="require")
    deadline = time.monotonic() + 30
    while any(p["DBProxyName"] == "short-lived" for p in rds.describe_db_proxies()["DBProxies"]):
        assert time.monotonic() < deadline, "short-lived was never deleted"
        time.sleep(0.1)


def test_tls_secrets_and_iam_tokens_through_the_proxy(env):
    rds, host = env["rds"], env["proxy"]["Endpoint"]
    with _connect(env, host) as conn:  # secret password, verify-full with the lab CA
        # The pool reaches the instance's PostgreSQL over its unix socket, not its endpoint (see dns_propagation).
        assert query(conn, "SELECT current_user, current_setting('port')::int, inet_server_addr()") == [
            (APP_USER, env["instance"]["Endpoint"]["Port"], None)]
    conn.close()
    token = rds.generate_db_auth_token(DBHostname=host, Port=5432, DBUsername=MASTER_USER)
    conn = _connect(env, host, MASTER_USER, token)
    assert query(conn, "SELECT current_user")[0][0] == MASTER_USER
    conn.close()

    refused = {
        "no TLS": dict(user=APP_USER, password=APP_PASSWORD, sslmode="disable"),
        "wrong password": dict(user=APP_USER, password="not-it", sslmode="require"),
        "password where IAM is required": dict(user=MASTER_USER, password=MASTER_PASSWORD, sslmode="require"),
        "token for another host": dict(user=MASTER_USER, sslmode="require", password=rds.generate_db_auth_token(
            DBHostname="127.0.0.1", Port=5432, DBUsername=MASTER_USER)),
        "token for another user": dict(user=MASTER_USER, sslmode="require", password=rds.generate_db_auth_token(
            DBHostname=host, Port=5432, DBUsername=APP_USER)),
        "tampered token": dict(user=MASTER_USER, sslmode="require", password=token[:-4] + (
            "0000" if not token.endswith("0000") else "1111")),
        "user without a secret": dict(user="nobody", password="x", sslmode="require"),
    }
    messages = {}
    for case, kwargs in refused.items():
        with pytest.raises(psycopg2.OperationalError) as failed:
            _connect(env, host, **kwargs)
        messages[case] = str(failed.value)
    assert "This RDS Proxy requires TLS connections" in messages["no TLS"]
    assert "password authentication failed" in messages["wrong password"]
    assert "requires IAM authentication" in messages["password where IAM is required"]
    assert "not this endpoint" in messages["token for another host"]
    assert "not a connect token for this user" in messages["token for another user"]
    assert "signature does not match" in messages["tampered token"]
    assert "no credentials for the role nobody" in messages["user without a secret"]


def test_pool_never_opens_more_than_max_connections_percent(env):
    rds, lab = env["rds"], env["lab"]
    admin = connect_instance(env["instance"])
    max_connections = int(query(admin, "SHOW max_connections")[0][0])
    rds.modify_db_proxy_target_group(DBProxyName=PROXY, TargetGroupName="default",
                                     ConnectionPoolConfig={"MaxConnectionsPercent": 5, "MaxIdleConnectionsPercent": 2,
                                                           "ConnectionBorrowTimeout": 60})
    allowed = max_connections * 5 // 100
    clients = allowed * 3
    ca = lab.control.ca_cert()
    results, ready = [], threading.Barrier(clients)

    def client():
        try:
            conn = psycopg2.connect(host=env["proxy"]["Endpoint"], port=5432, user=APP_USER, password=APP_PASSWORD,
                                    dbname="app", sslmode="verify-full", sslrootcert=ca, connect_timeout=10)
            conn.autocommit = True
            ready.wait(30)
            query(conn, "SELECT pg_sleep(0.5)")
            conn.close()
            results.append("ok")
        except Exception as exc:  # pylint: disable=broad-except  # every client's outcome is asserted below
            results.append(str(exc))

    threads = [threading.Thread(target=client) for unused in range(clients)]
    for thread in threads:
        thread.start()
    peak = 0
    while any(t.is_alive() for t in threads):
        peak = max(peak, query(admin, "SELECT count(*) FROM pg_stat_activity WHERE usename = %s",
                               (APP_USER,))[0][0])
        time.sleep(0.02)
    admin.close()
    rds.modify_db_proxy_target_group(DBProxyName=PROXY, TargetGroupName="default",
                                     ConnectionPoolConfig={"MaxConnectionsPercent": 100,
                                                           "MaxIdleConnectionsPercent": 50})
    assert results == ["ok"] * clients  # every client served, by turns
    assert peak == allowed  # the pool was used in full and never beyond
    assert allowed < clients


def test_proxy_endpoints_read_write_and_read_only(env):
    rds = env["rds"]
    created = rds.create_db_proxy_endpoint(DBProxyName=PROXY, DBProxyEndpointName="orders-ro",
                                           VpcSubnetIds=env["subnets"], TargetRole="READ_ONLY",
                                           Tags=[{"Key": "use", "Value": "reports"}])["DBProxyEndpoint"]
    assert created["Status"] == "creating" and created["TargetRole"] == "READ_ONLY"
    rds.add_tags_to_resource(ResourceName=created["DBProxyEndpointArn"], Tags=[{"Key": "team", "Value": "dbre"}])
    assert rds.list_tags_for_resource(ResourceName=created["DBProxyEndpointArn"])["TagList"] == [
        {"Key": "use", "Value": "reports"}, {"Key": "team", "Value": "dbre"}]
    endpoint, unused = _wait(lambda: rds.describe_db_proxy_endpoints(
        DBProxyEndpointName="orders-ro")["DBProxyEndpoints"][0], "available")
    listed = rds.describe_db_proxy_endpoints(DBProxyName=PROXY)["DBProxyEndpoints"]
    assert sorted((e["DBProxyEndpointName"], e["IsDefault"], e["TargetRole"]) for e in listed) == [
        ("default", True, "READ_WRITE"), ("orders-ro", False, "READ_ONLY")]
    assert endpoint["Endpoint"] != env["proxy"]["Endpoint"]
    conn = _connect(env, endpoint["Endpoint"])  # verify-full: the certificate names the new endpoint too
    assert query(conn, "SELECT 1") == [(1,)]
    conn.close()
    with pytest.raises(ClientError) as exists:
        rds.create_db_proxy_endpoint(DBProxyName=PROXY, DBProxyEndpointName="orders-ro", VpcSubnetIds=env["subnets"])
    assert _code(exists) == "DBProxyEndpointAlreadyExistsFault"
    rds.modify_db_proxy_endpoint(DBProxyEndpointName="orders-ro", NewDBProxyEndpointName="orders-reports")
    _wait(lambda: rds.describe_db_proxy_endpoints(DBProxyEndpointName="orders-reports")["DBProxyEndpoints"][0],
          "available")
    assert rds.delete_db_proxy_endpoint(DBProxyEndpointName="orders-reports")["DBProxyEndpoint"]["Status"] == \
        "deleting"
    with pytest.raises(psycopg2.OperationalError):
        _connect(env, endpoint["Endpoint"])
    with pytest.raises(ClientError) as gone:
        rds.describe_db_proxy_endpoints(DBProxyEndpointName="orders-reports")
    assert _code(gone) == "DBProxyEndpointNotFoundFault"


def _writer(connect, outcomes, stop):
    """Write every 50 ms on one connection, reconnecting after an error, as an application would."""
    conn, n = None, 0
    while not stop.is_set():
        n += 1
        try:
            if conn is None:
                conn = connect()
            query(conn, "INSERT INTO writes VALUES (%s)", (n,))
            outcomes.append("ok")
        except psycopg2.Error as exc:
            outcomes.append(str(exc).strip().splitlines()[0])
            conn = None
        time.sleep(0.05)


def test_failover_holds_requests_and_reaches_the_new_writer(env):
    rds, lab = env["rds"], env["lab"]
    conn = _connect(env, env["proxy"]["Endpoint"])
    query(conn, "CREATE TABLE IF NOT EXISTS writes (n int)")
    started_before = query(conn, "SELECT pg_postmaster_start_time()")[0][0]
    proxied, direct, stop = [], [], threading.Event()
    threads = [threading.Thread(target=_writer, args=(lambda: conn, proxied, stop)),
               threading.Thread(target=_writer, args=(lambda: connect_instance(
                   env["instance"], user=APP_USER, password=APP_PASSWORD, timeout=2), direct, stop))]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    rds.reboot_db_instance(DBInstanceIdentifier="orders", ForceFailover=True)
    lab.control.wait_jobs(60)
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join(30)
    (failover,) = [f for f in lab.control.failover_log() if f["identifier"] == "orders"]
    assert failover["proxies_paused"] == {PROXY: True}
    assert failover["proxies_resumed_at"][PROXY] >= failover["pg_ready_at"]
    # The proxy's client kept its one connection and every write went through: requests waited in the proxy.
    assert proxied.count("ok") == len(proxied) and len(proxied) > 10
    # A direct client of the same instance saw the outage: writes, then connection errors, then writes again.
    failed = [i for i, outcome in enumerate(direct) if outcome != "ok"]
    assert failed and 0 < failed[0] and failed[-1] < len(direct) - 1, direct
    assert all("connect" in direct[i] or "closed" in direct[i] or "terminat" in direct[i] for i in failed), direct
    assert query(conn, "SELECT pg_postmaster_start_time()")[0][0] > started_before  # the new writer's server
    conn.close()


def _timed_writer(connect, outcomes, stop):
    """Write every 50 ms, reconnecting after an error; record (sent, done, outcome) with UTC datetimes."""
    conn, n = None, 0
    while not stop.is_set():
        n += 1
        sent = datetime.now(timezone.utc)
        try:
            if conn is None:
                conn = connect()
            query(conn, "INSERT INTO writes VALUES (%s)", (n,))
            outcomes.append((sent, datetime.now(timezone.utc), "ok"))
        except psycopg2.Error as exc:
            outcomes.append((sent, datetime.now(timezone.utc), str(exc).strip().splitlines()[0]))
            conn = None
        time.sleep(0.05)


def test_dns_propagation_delays_direct_clients_not_the_proxy(env):
    """With dns_propagation, the instance's endpoint refuses logins that much longer after a failover than its new
    writer's PostgreSQL; the proxy, which tracks the writer itself, lets its clients through as soon as it is up."""
    rds, lab = env["rds"], env["lab"]
    if lab.fidelity:
        lab.control.set_timing(dns_propagation=3)
    conn = _connect(env, env["proxy"]["Endpoint"])
    query(conn, "CREATE TABLE IF NOT EXISTS writes (n int)")
    proxied, direct, stop = [], [], threading.Event()
    threads = [threading.Thread(target=_timed_writer, args=(lambda: conn, proxied, stop)),
               threading.Thread(target=_timed_writer, args=(lambda: connect_instance(
                   env["instance"], user=APP_USER, password=APP_PASSWORD, timeout=2), direct, stop))]
    try:
        for thread in threads:
            thread.start()
        time.sleep(0.5)
        rds.reboot_db_instance(DBInstanceIdentifier="orders", ForceFailover=True)
        lab.control.wait_jobs(60)
        time.sleep(0.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        lab.control.set_timing(dns_propagation=0)
    failover = [f for f in lab.control.failover_log() if f["identifier"] == "orders"][-1]
    stopped, pg_ready, endpoint_ready = (datetime.fromisoformat(failover[key]) for key in (
        "pg_stopped_at", "pg_ready_at", "endpoint_ready_at"))
    assert 3.0 <= (endpoint_ready - pg_ready).total_seconds() < 4.5, failover
    margin = timedelta(seconds=1)
    resumed = datetime.fromisoformat(failover["proxies_resumed_at"][PROXY])
    assert pg_ready <= resumed <= pg_ready + margin
    # Through the proxy: every write acknowledged on one connection, and going again right after PostgreSQL was up.
    assert [outcome for unused, unused_done, outcome in proxied] == ["ok"] * len(proxied) and len(proxied) > 10
    first_after = min(done for unused, done, unused_outcome in proxied if done > stopped)
    assert pg_ready <= first_after <= pg_ready + margin
    assert sum(1 for sent, unused, unused_outcome in proxied if pg_ready + margin <= sent < endpoint_ready) >= 5
    # Directly: refused while the endpoint still pointed at the old primary, writing again once it moved.
    refused = [(sent, outcome) for sent, unused, outcome in direct if outcome != "ok" and sent > pg_ready]
    assert refused and all("pg_hba.conf rejects connection" in outcome for unused, outcome in refused), direct
    assert max(sent for sent, unused in refused) >= endpoint_ready - margin
    acked = [done for sent, done, outcome in direct if outcome == "ok" and sent > stopped]
    assert acked and min(acked) >= endpoint_ready - timedelta(seconds=0.2), (failover, direct)
    assert min(acked) <= endpoint_ready + margin
    assert query(conn, "SELECT count(*) FROM writes")[0][0] > 0
    conn.close()


def test_bad_inputs_get_aws_errors_and_create_nothing(env):
    rds = env["rds"]
    before = sorted(p["DBProxyName"] for p in rds.describe_db_proxies()["DBProxies"])
    base = dict(DBProxyName="bad-proxy", EngineFamily="POSTGRESQL", RoleArn=ROLE_ARN, VpcSubnetIds=env["subnets"],
                Auth=[{"SecretArn": env["secrets"]["app"]}])
    missing_secret = "arn:aws:secretsmanager:us-east-1:123456789012:secret:no-such-secret-AbCdEf"
    cases = {
        "engine family": (rds.create_db_proxy, dict(base, EngineFamily="ORACLE"), "InvalidParameterValue"),
        "unknown secret": (rds.create_db_proxy, dict(base, Auth=[{"SecretArn": missing_secret}]),
                           "InvalidParameterValue"),
        "existing name": (rds.create_db_proxy, dict(base, DBProxyName=PROXY), "DBProxyAlreadyExistsFault"),
        "unknown proxy": (rds.describe_db_proxies, dict(DBProxyName="no-such-proxy"), "DBProxyNotFoundFault"),
        "modify unknown proxy": (rds.modify_db_proxy, dict(DBProxyName="no-such-proxy", RequireTLS=False),
                                 "DBProxyNotFoundFault"),
        "unknown instance": (rds.register_db_proxy_targets, dict(DBProxyName=PROXY, DBInstanceIdentifiers=["nope"]),
                             "DBInstanceNotFound"),
        "unknown cluster": (rds.register_db_proxy_targets, dict(DBProxyName=PROXY, DBClusterIdentifiers=["nope"]),
                            "DBClusterNotFoundFault"),
        "second target": (rds.register_db_proxy_targets, dict(DBProxyName=PROXY, DBInstanceIdentifiers=["orders"]),
                          "DBProxyTargetAlreadyRegisteredFault"),
        "unknown target group": (rds.describe_db_proxy_target_groups, dict(DBProxyName=PROXY,
                                                                           TargetGroupName="other"),
                                 "DBProxyTargetGroupNotFoundFault"),
        "unknown endpoint": (rds.delete_db_proxy_endpoint, dict(DBProxyEndpointName="nope"),
                             "DBProxyEndpointNotFoundFault"),
        "tags of an unknown proxy": (rds.list_tags_for_resource, dict(
            ResourceName="arn:aws:rds:us-east-1:123456789012:db-proxy:prx-0123456789abcdefg"), "DBProxyNotFoundFault"),
    }
    for percent, idle in ((0, 0), (101, 50), (40, 60)):
        cases[f"percentages {percent}/{idle}"] = (
            rds.modify_db_proxy_target_group,
            dict(DBProxyName=PROXY, TargetGroupName="default",
                 ConnectionPoolConfig={"MaxConnectionsPercent": percent, "MaxIdleConnectionsPercent": idle}),
            "InvalidParameterValue")
    codes = {}
    for case, (call, kwargs, unused) in cases.items():
        try:
            call(**kwargs)
            codes[case] = None
        except ClientError as exc:
            codes[case] = exc.response["Error"]["Code"]
    assert codes == {case: code for case, (unused, unused_kwargs, code) in cases.items()}
    assert sorted(p["DBProxyName"] for p in rds.describe_db_proxies()["DBProxies"]) == before
    group = rds.describe_db_proxy_target_groups(DBProxyName=PROXY)["TargetGroups"][0]
    assert group["ConnectionPoolConfig"]["MaxConnectionsPercent"] == 100


def test_iam_token_checks_time_scope_and_key():
    """The token checks that need a clock or another signer (no lab needed: pgbouncer.verify_iam_token itself)."""
    import boto3

    from tests.lab.pgbouncer import AuthFailed, verify_iam_token

    def token(region="us-east-1", key="testing"):
        rds = boto3.client("rds", region_name=region, aws_access_key_id=key, aws_secret_access_key="testing")
        return rds.generate_db_auth_token(DBHostname="127.9.9.9", Port=5432, DBUsername="app")

    def check(value, now=None, keys=None):
        secret_for_key = (keys or {"testing": "testing"}).get
        try:
            verify_iam_token(value, "app", "127.9.9.9", 5432, secret_for_key, now=now)
            return "accepted"
        except AuthFailed as exc:
            return str(exc).split(": ", 1)[1]

    now = datetime.now(timezone.utc)
    assert check(token()) == "accepted"
    assert check(token(), now=now + timedelta(minutes=16)) == "the IAM token has expired"
    assert check(token(), now=now - timedelta(minutes=10)) == "the IAM token is dated in the future"
    assert check(token(region="eu-west-1")) == "the IAM token's scope is not us-east-1/rds-db"
    assert check(token(key="AKIAOTHER")) == "unknown access key in the IAM token"
    assert check(token(), keys={"testing": "another-secret"}) == "the IAM token's signature does not match"

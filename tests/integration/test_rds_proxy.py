# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rds_proxy against the lab, as a user runs it: ``ansible -m dbre.rds.rds_proxy`` with and without --check/--diff.

One converge sequence for the whole file (module-scoped fixture ``runs``, three ansible-playbook runs): check mode,
create (an Aurora PostgreSQL cluster as target, a read-only endpoint, a pool, tags), the same again, connections
through both endpoints with TLS the way a client makes them, check mode of a change with its diff, the change (pool,
tags, IAM authentication, an RDS PostgreSQL instance as target, a read-write endpoint instead of the read-only one),
the same again, a connection with an IAM token to the new target, removal and removal again. An endpoint made by
hand (boto3, without the module's dbre:managed-by tag) before the change survives it, and a proxy made by hand is
refused removal in the removal run.
The lab's proxy statuses take a second (``proxy`` timing), so the module's waiting is exercised. Every test reads
what the lab holds and what its call log shows, not only what the module said.
"""

import datetime
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import psycopg2
import pytest
import yaml

from tests.integration.bad_inputs import mutating_calls
from tests.lab.clients import MASTER_PASSWORD, MASTER_USER, create_postgres, wait_instance

pytestmark = pytest.mark.lab

ROOT = pathlib.Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = pathlib.Path(sys.executable).parent / "ansible-playbook"
PROXY, READER, WRITER, HANDMADE = "it-proxy", "it-proxy-ro", "it-proxy-rw", "it-proxy-byhand"
FOREIGN = "it-proxy-foreign"
MARKER = {"dbre:managed-by": "rds_proxy"}
CLUSTER, MEMBER, INSTANCE = "it-proxy-aurora", "it-proxy-aurora-1", "it-proxy-db"
PROXY_PORT = 5432


def run_tasks(lab, tasks):
    """Run ``[(key, module args, check mode)]`` as the tasks of one ansible-playbook run (one start-up for several
    module runs), each in check and diff mode when asked; returns {key: {"rc", "result", "start", "end"}} with the
    epoch seconds each task started and ended (to pick its calls from the lab's call log)."""
    play = [{"name": "rds_proxy", "hosts": "localhost", "connection": "local", "gather_facts": False,
             "tasks": [{"name": key, "dbre.rds.rds_proxy": args, "check_mode": check, "diff": check,
                        "ignore_errors": True} for key, args, check in tasks]}]
    env = dict(os.environ, **lab.env)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build"), ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json",
               ANSIBLE_DEPRECATION_WARNINGS="1")
    with tempfile.TemporaryDirectory(prefix="dbre-rds-proxy-") as tmp:
        playbook = pathlib.Path(tmp) / "play.yml"
        playbook.write_text(yaml.safe_dump(play, sort_keys=False))
        done = subprocess.run([str(ANSIBLE_PLAYBOOK), "-i", "localhost,", str(playbook)], env=env, cwd=ROOT,
                              capture_output=True, text=True, timeout=600, check=False)
    try:
        ran = json.loads(done.stdout)["plays"][0]["tasks"]
    except (ValueError, KeyError, IndexError):
        raise AssertionError(f"no results from ansible-playbook:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}") \
            from None
    runs = {}
    for task in ran:
        result = task["hosts"]["localhost"]
        runs[task["task"]["name"]] = dict(rc=1 if result.get("failed") else 0, result=result,
                                          **{k: _epoch(v) for k, v in task["task"]["duration"].items()})
    return runs


def _epoch(iso):
    return datetime.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc).timestamp()


def observe(lab):
    """What the lab holds for the proxy: its describes, tags and endpoints, or None when it does not exist."""
    rds = lab.client("rds")
    proxies = [p for p in rds.describe_db_proxies()["DBProxies"] if p["DBProxyName"] == PROXY]
    if not proxies:
        return None
    proxy = proxies[0]
    return dict(
        proxy=proxy,
        tags={t["Key"]: t["Value"] for t in rds.list_tags_for_resource(ResourceName=proxy["DBProxyArn"])["TagList"]},
        pool=rds.describe_db_proxy_target_groups(DBProxyName=PROXY)["TargetGroups"][0]["ConnectionPoolConfig"],
        targets=rds.describe_db_proxy_targets(DBProxyName=PROXY)["Targets"],
        endpoints={e["DBProxyEndpointName"]: e
                   for e in rds.describe_db_proxy_endpoints(DBProxyName=PROXY)["DBProxyEndpoints"]},
    )


def connect(host, password, ca_cert, sslmode="verify-full", dbname="postgres", attempts=None):
    """Connect as an application would: one retry after a second for a connection the server dropped (``attempts``,
    a list, receives how many it took)."""
    for attempt in (1, 2):
        try:
            conn = psycopg2.connect(host=host, port=PROXY_PORT, user=MASTER_USER, password=password, dbname=dbname,
                                    sslmode=sslmode, sslrootcert=ca_cert, connect_timeout=10)
            break
        except psycopg2.OperationalError as exc:
            if attempt == 2 or "closed unexpectedly" not in str(exc):
                raise
            time.sleep(1)
    if attempts is not None:
        attempts.append(attempt)
    conn.autocommit = True
    return conn


def server_port_and_tls(conn):
    """The port of the PostgreSQL server behind the proxy, and whether the client's own connection uses TLS (the
    server's own setting: the lab's pool reaches PostgreSQL over its unix socket, where inet_server_port() is null)."""
    with conn.cursor() as cur:
        cur.execute("SELECT current_setting('port')::int")
        port = cur.fetchone()[0]
    return port, conn.info.ssl_in_use


def converge(lab, record, tasks):
    """Run the tasks in one playbook; record each one's result and the mutating calls the lab saw during it."""
    since = time.time()
    runs = run_tasks(lab, tasks)
    mutating = mutating_calls(lab, since)
    for key, run in runs.items():
        run["mutating"] = sorted({c["action"] for c in mutating if run["start"] <= c["epoch"] <= run["end"]})
        record[key] = run
    record["unattributed"] = [c["action"] for c in mutating
                              if not any(r["start"] <= c["epoch"] <= r["end"] for r in runs.values())]
    return observe(lab)


@pytest.fixture(scope="module")
def runs(lab):
    lab.control.reset()
    rds, iam = lab.client("rds"), lab.client("iam")
    rds.create_db_cluster(DBClusterIdentifier=CLUSTER, Engine="aurora-postgresql", MasterUsername=MASTER_USER,
                          MasterUserPassword=MASTER_PASSWORD)
    rds.create_db_instance(DBInstanceIdentifier=MEMBER, DBClusterIdentifier=CLUSTER, Engine="aurora-postgresql",
                           DBInstanceClass="db.r6g.large")
    member, instance = wait_instance(rds, MEMBER, "available"), create_postgres(rds, INSTANCE)
    subnets = [s["SubnetId"] for s in lab.client("ec2").describe_subnets()["Subnets"]
               if s.get("DefaultForAz")][:2]
    secret_arn = lab.client("secretsmanager").create_secret(
        Name="it-proxy-master", SecretString=json.dumps({"username": MASTER_USER, "password": MASTER_PASSWORD}))["ARN"]
    role_arn = iam.create_role(RoleName="it-proxy-secrets", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "rds.amazonaws.com"}}]}))["Role"]["Arn"]
    lab.control.set_timing(proxy=1)
    ca_cert = lab.env["LAB_CA_CERT"]
    base = dict(name=PROXY, role_arn=role_arn, auth=[{"secret_arn": secret_arn}], vpc_subnet_ids=subnets,
                db_cluster_identifier=CLUSTER, endpoints=[{"name": READER}], tags={"team": "dbre", "env": "lab"},
                target_group={"max_connections_percent": 60, "max_idle_connections_percent": 20,
                              "connection_borrow_timeout": 30},
                wait_timeout=120, poll_interval=0.3)
    changed = dict({k: v for k, v in base.items() if k != "db_cluster_identifier"}, db_instance_identifier=INSTANCE,
                   endpoints=[{"name": WRITER, "target_role": "READ_WRITE"}], tags={"team": "platform"},
                   auth=[{"secret_arn": secret_arn, "iam_auth": "REQUIRED"}],
                   target_group={"max_connections_percent": 40, "max_idle_connections_percent": 10,
                                 "connection_borrow_timeout": 5, "init_query": "SET application_name = 'via-proxy'"})
    record = dict(member=member, instance=instance, secret_arn=secret_arn, role_arn=role_arn, subnets=subnets,
                  attempts=[])

    record["created"] = converge(lab, record, [("check_create", base, True), ("create", base, False),
                                               ("create_again", base, False)])
    proxy, reader = record["created"]["proxy"], record["created"]["endpoints"][READER]
    record["tls"] = {}
    for what, host in (("default", proxy["Endpoint"]), ("reader", reader["Endpoint"])):
        conn = connect(host, MASTER_PASSWORD, ca_cert, attempts=record["attempts"])
        record["tls"][what] = server_port_and_tls(conn)
        conn.close()
    try:
        connect(proxy["Endpoint"], MASTER_PASSWORD, ca_cert, sslmode="disable").close()
        record["plain_refused"] = None
    except psycopg2.OperationalError as exc:
        record["plain_refused"] = str(exc)

    # an endpoint someone added by hand: the change's endpoints do not list it, and it has no marker
    rds.create_db_proxy_endpoint(DBProxyName=PROXY, DBProxyEndpointName=HANDMADE, VpcSubnetIds=subnets,
                                 TargetRole="READ_WRITE")
    record["changed"] = converge(lab, record, [("check_change", changed, True), ("change", changed, False),
                                               ("change_again", changed, False)])
    record["lab_tags"] = {
        e["DBProxyEndpointName"]: {t["Key"]: t["Value"] for t in rds.list_tags_for_resource(
            ResourceName=e["DBProxyEndpointArn"])["TagList"]}
        for e in rds.describe_db_proxy_endpoints(DBProxyName=PROXY)["DBProxyEndpoints"] if not e.get("IsDefault")}
    token = rds.generate_db_auth_token(DBHostname=proxy["Endpoint"], Port=PROXY_PORT, DBUsername=MASTER_USER)
    conn = connect(proxy["Endpoint"], token, ca_cert, attempts=record["attempts"])
    record["iam"] = server_port_and_tls(conn)
    conn.close()

    rds.delete_db_proxy_endpoint(DBProxyEndpointName=HANDMADE)  # its owner removes it: the proxy can go
    deadline = time.time() + 60
    while HANDMADE in observe(lab)["endpoints"] and time.time() < deadline:
        time.sleep(0.3)
    rds.create_db_proxy(DBProxyName=FOREIGN, EngineFamily="POSTGRESQL", RoleArn=role_arn, VpcSubnetIds=subnets,
                        Auth=[{"AuthScheme": "SECRETS", "SecretArn": secret_arn, "IAMAuth": "DISABLED"}],
                        Tags=[{"Key": "team", "Value": "other"}])
    absent = dict(name=PROXY, state="absent", poll_interval=0.3)
    record["removed"] = converge(lab, record, [("remove_foreign", dict(absent, name=FOREIGN), False),
                                               ("remove", absent, False), ("remove_again", absent, False)])
    record["foreign"] = [p["DBProxyName"] for p in rds.describe_db_proxies()["DBProxies"]]
    yield record
    lab.control.reset()


def _ok(run):
    assert run["rc"] == 0, run["result"].get("msg") or run["result"]
    assert not run["result"].get("deprecations"), run["result"]["deprecations"]
    return run["result"]


def test_check_mode_creates_nothing_and_shows_the_plan(runs):
    run = runs["check_create"]
    result = _ok(run)
    assert result["changed"] is True and run["mutating"] == []
    assert result["actions"] == ["CreateDBProxy", "ModifyDBProxyTargetGroup", "RegisterDBProxyTargets",
                                 "CreateDBProxyEndpoint"]
    assert result["diff"]["before"] == {}
    after = result["diff"]["after"]
    assert after["target"] == {"db_cluster_identifier": CLUSTER} and after["require_tls"] is True
    assert after["target_group"]["max_connections_percent"] == 60
    assert [(e["name"], e["target_role"]) for e in after["endpoints"]] == [(READER, "READ_ONLY")]
    assert result["proxy"]["status"] == "creating" and result["targets"][0]["rds_resource_id"] == CLUSTER


def test_create_builds_the_declared_proxy_and_waits_for_it(runs):
    run = runs["create"]
    result = _ok(run)
    assert result["changed"] is True
    assert result["actions"] == ["CreateDBProxy", "ModifyDBProxyTargetGroup", "RegisterDBProxyTargets",
                                 "CreateDBProxyEndpoint"]
    assert run["mutating"] == ["CreateDBProxy", "CreateDBProxyEndpoint", "ModifyDBProxyTargetGroup",
                               "RegisterDBProxyTargets"]
    held = runs["created"]
    assert held["proxy"]["Status"] == "available" and held["proxy"]["EngineFamily"] == "POSTGRESQL"
    assert held["proxy"]["RequireTLS"] is True and held["proxy"]["DebugLogging"] is False
    assert held["proxy"]["IdleClientTimeout"] == 1800 and held["proxy"]["RoleArn"] == runs["role_arn"]
    assert sorted(held["proxy"]["VpcSubnetIds"]) == sorted(runs["subnets"])
    assert [(a["SecretArn"], a["IAMAuth"]) for a in held["proxy"]["Auth"]] == [(runs["secret_arn"], "DISABLED")]
    assert held["tags"] == dict(MARKER, team="dbre", env="lab")
    assert (held["pool"]["MaxConnectionsPercent"], held["pool"]["MaxIdleConnectionsPercent"],
            held["pool"]["ConnectionBorrowTimeout"]) == (60, 20, 30)
    assert [(t["RdsResourceId"], t["Type"], t.get("TargetHealth", {}).get("State")) for t in held["targets"]] == [
        (CLUSTER, "TRACKED_CLUSTER", None), (MEMBER, "RDS_INSTANCE", "AVAILABLE")]
    assert held["endpoints"][READER]["TargetRole"] == "READ_ONLY"
    assert held["endpoints"][READER]["Status"] == "available"
    assert held["endpoints"]["default"]["IsDefault"] is True
    # the module returned what the lab holds, after waiting through creating / REGISTERING
    assert result["proxy"]["endpoint"] == held["proxy"]["Endpoint"] and result["proxy"]["status"] == "available"
    assert result["proxy"]["tags"] == held["tags"]
    assert result["target_group"]["connection_pool_config"]["max_connections_percent"] == 60
    assert result["targets"][1]["target_health"]["state"] == "AVAILABLE"
    assert {e["db_proxy_endpoint_name"] for e in result["endpoints"]} == {"default", READER}
    states = " ".join(t["state"] for t in result["waited"]["transitions"])
    assert "proxy creating" in states and result["waited"]["seconds"] >= 1.0


def test_second_run_changes_nothing(runs):
    for key in ("create_again", "change_again", "remove_again"):
        run = runs[key]
        result = _ok(run)
        assert result["changed"] is False and result["actions"] == [], key
        assert run["mutating"] == [], key


def test_clients_connect_through_the_proxy_with_tls_only(runs):
    port = runs["member"]["Endpoint"]["Port"]
    assert runs["tls"]["default"] == (port, True)
    assert runs["tls"]["reader"] == (port, True)  # the lab's Aurora readers are no servers of their own
    assert runs["plain_refused"] and "requires TLS" in runs["plain_refused"]
    assert len(runs["attempts"]) == 3 and max(runs["attempts"]) <= 2  # at most one retry of a dropped connection


def test_check_mode_of_a_change_shows_the_diff_and_changes_nothing(runs):
    run = runs["check_change"]
    result = _ok(run)
    assert result["changed"] is True and run["mutating"] == []
    assert result["actions"] == ["ModifyDBProxy", "AddTagsToResource", "RemoveTagsFromResource",
                                 "ModifyDBProxyTargetGroup", "DeregisterDBProxyTargets", "RegisterDBProxyTargets",
                                 "DeleteDBProxyEndpoint", "CreateDBProxyEndpoint"]
    before, after = result["diff"]["before"], result["diff"]["after"]
    assert before["target"] == {"db_cluster_identifier": CLUSTER}
    assert after["target"] == {"db_instance_identifier": INSTANCE}
    assert (before["tags"], after["tags"]) == (dict(MARKER, team="dbre", env="lab"), dict(MARKER, team="platform"))
    assert before["target_group"]["max_connections_percent"] == 60
    assert after["target_group"]["max_connections_percent"] == 40
    assert after["auth"][0]["iam_auth"] == "REQUIRED" and before["auth"][0]["iam_auth"] == "DISABLED"
    assert [e["name"] for e in before["endpoints"]] == [HANDMADE, READER]
    assert [(e["name"], e["target_role"]) for e in after["endpoints"]] == [(HANDMADE, "READ_WRITE"),
                                                                           (WRITER, "READ_WRITE")]
    assert [item["endpoint"] for item in result["skipped_endpoints"]] == [HANDMADE]


def test_change_applies_pool_tags_auth_target_and_endpoints(runs):
    run = runs["change"]
    result = _ok(run)
    assert result["changed"] is True
    assert run["mutating"] == ["AddTagsToResource", "CreateDBProxyEndpoint", "DeleteDBProxyEndpoint",
                               "DeregisterDBProxyTargets", "ModifyDBProxy", "ModifyDBProxyTargetGroup",
                               "RegisterDBProxyTargets", "RemoveTagsFromResource"]
    held = runs["changed"]
    assert held["tags"] == dict(MARKER, team="platform")  # purge_tags kept the marker
    assert (held["pool"]["MaxConnectionsPercent"], held["pool"]["MaxIdleConnectionsPercent"],
            held["pool"]["ConnectionBorrowTimeout"], held["pool"]["InitQuery"]) == (
        40, 10, 5, "SET application_name = 'via-proxy'")
    assert [a["IAMAuth"] for a in held["proxy"]["Auth"]] == ["REQUIRED"]
    assert [(t["RdsResourceId"], t["TargetHealth"]["State"]) for t in held["targets"]] == [(INSTANCE, "AVAILABLE")]
    # the read-only endpoint, useless in front of an instance, is gone; the default one was left alone, and so was
    # the one made by hand (not listed, but without the module's marker): reported as skipped, with a warning
    roles = {name: endpoint["TargetRole"] for name, endpoint in held["endpoints"].items()}
    assert roles == {"default": "READ_WRITE", WRITER: "READ_WRITE", HANDMADE: "READ_WRITE"}
    assert [item["endpoint"] for item in result["skipped_endpoints"]] == [HANDMADE]
    assert "not created by dbre.rds.rds_proxy" in result["skipped_endpoints"][0]["reason"]
    assert any(HANDMADE in w for w in result.get("warnings") or []), result.get("warnings")
    assert runs["change_again"]["result"]["skipped_endpoints"] == result["skipped_endpoints"]
    assert runs["lab_tags"][WRITER] == MARKER and runs["lab_tags"][HANDMADE] == {}


def test_iam_token_reaches_the_new_target(runs):
    assert runs["iam"] == (runs["instance"]["Endpoint"]["Port"], True)


def test_removal_deletes_endpoints_then_the_proxy_and_waits(runs):
    run = runs["remove"]
    result = _ok(run)
    assert result["changed"] is True and result["actions"] == ["DeleteDBProxyEndpoint", "DeleteDBProxy"]
    assert run["mutating"] == ["DeleteDBProxy", "DeleteDBProxyEndpoint"]
    assert runs["removed"] is None and result["proxy"] == {} and result["endpoints"] == []
    assert "deleting" in " ".join(t["state"] for t in result["waited"]["transitions"])


def test_removal_of_a_proxy_made_by_hand_is_refused_and_changes_nothing(runs):
    run = runs["remove_foreign"]
    assert run["rc"] != 0 and run["mutating"] == []
    assert (f"RDS proxy {FOREIGN} was not created by dbre.rds.rds_proxy (no dbre:managed-by tag); add the tag"
            in run["result"]["msg"])
    assert runs["foreign"] == [FOREIGN]  # still there, after the removal of the module's own proxy


def test_every_mutating_call_came_from_a_task(runs):
    assert runs["unattributed"] == []

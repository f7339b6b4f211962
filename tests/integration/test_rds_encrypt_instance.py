# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_encrypt_instance against the lab: a real copy, a real rename of the endpoint, writes measured.

One lab, one source instance. A client of the test writes through the endpoint the whole time, independently of the
module's own probes, and afterwards every write the server acknowledged must be on the instance the endpoint reaches.
Order matters and is part of the story: check mode, a cutover stopped by a failing check (nothing swapped), the real
cutover, and a second run that finds nothing to do; then, on a second instance (``ledger``, with
rds.logical_replication=1) while the client writes rows and uses a sequence, a logical cutover that fails while the
subscription is active (rolled back) and one that succeeds.
"""

import json
import os
import pathlib
import subprocess
import sys
import threading
import time

import psycopg2
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
ANSIBLE = str(pathlib.Path(sys.executable).parent / "ansible")
PASSWORD = "encrypt-Secret-1"
READ_ONLY_PREFIXES = ("Describe", "List")


def module_env(lab):
    env = dict(os.environ)
    env.update(lab.env)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build"), ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_NOCOLOR="1")
    return env


def run_module(lab, args, check=False, timeout=240):
    command = [ANSIBLE, "localhost", "-i", "localhost,", "-c", "local", "-m", "dbre.rds.rds_encrypt_instance",
               "-a", json.dumps(args)] + (["--check"] if check else [])
    done = subprocess.run(command, env=module_env(lab), cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          check=False)
    try:
        return json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError):
        raise AssertionError(f"no module result:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}") from None


def describe(rds, identifier):
    found = rds.describe_db_instances(Filters=[{"Name": "db-instance-id", "Values": [identifier]}])["DBInstances"]
    return found[0] if found else None


def connect(endpoint, **options):
    conn = psycopg2.connect(host=endpoint[0], port=endpoint[1], user="master", password=PASSWORD, dbname="shop",
                            connect_timeout=2, **options)
    conn.autocommit = True
    return conn


def scalar(conn, sql):
    with conn.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


class Writer:
    """An application: one row every 50 ms through the endpoint it was given, reconnecting after any error."""

    def __init__(self, endpoint, events=False):
        self.endpoint = endpoint
        self.events = events  # also insert into events (a bigserial): the sequence moves during the cutover
        self.acknowledged, self.failed = [], 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        conn, seq = None, 0
        while not self._stop.is_set():
            seq += 1
            try:
                conn = conn or connect(self.endpoint)
                with conn.cursor() as cursor:
                    cursor.execute("INSERT INTO app_writes (seq) VALUES (%s)", (seq,))
                    if self.events:
                        cursor.execute("INSERT INTO events (note) VALUES ('written')")
                self.acknowledged.append(seq)
            except psycopg2.Error:
                self.failed += 1
                if conn is not None:
                    conn.close()
                conn = None
            self._stop.wait(0.05)
        if conn is not None:
            conn.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(10)


@pytest.fixture(scope="module")
def shop(lab):
    lab.control.reset()
    # Copies and restores as quick as the lab allows: what is measured here is the module, not the lab's waiting.
    lab.control.set_timing(snapshot_copy=0.2, restore=0.2)
    rds = lab.client("rds")
    key = lab.client("kms").create_key(Description="orders encryption")["KeyMetadata"]
    rds.create_db_instance(DBInstanceIdentifier="shop", Engine="postgres", DBInstanceClass="db.t3.micro",
                           MasterUsername="master", MasterUserPassword=PASSWORD, DBName="shop", AllocatedStorage=20,
                           BackupRetentionPeriod=3, DeletionProtection=True, CopyTagsToSnapshot=True,
                           Tags=[{"Key": "team", "Value": "orders"}])
    deadline = time.monotonic() + 60
    while describe(rds, "shop")["DBInstanceStatus"] != "available":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    source = describe(rds, "shop")
    endpoint = (source["Endpoint"]["Address"], source["Endpoint"]["Port"])
    conn = connect(endpoint)
    with conn.cursor() as cursor:
        cursor.execute("CREATE TABLE orders (id int PRIMARY KEY, note text)")
        cursor.execute("INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(1, 500) g")
        cursor.execute("CREATE TABLE app_writes (seq int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())")
    conn.close()
    yield {"rds": rds, "key": key, "endpoint": endpoint, "source": source}
    lab.control.reset()


def args(shop, **extra):
    base = {"db_instance_identifier": "shop", "kms_key_id": shop["key"]["KeyId"], "login_password": PASSWORD,
            "login_db": "shop", "poll_interval": 0.2, "probe_interval": 0.1, "probe_settle_seconds": 1,
            "wait_timeout": 120, "compare_row_counts": ["orders", "public.app_writes"],
            "checks": [{"name": "newest order", "sql": "SELECT max(id) FROM orders"}]}
    base.update(extra)
    return base


def created_leftovers(rds):
    instances = [i["DBInstanceIdentifier"] for i in rds.describe_db_instances()["DBInstances"]]
    snapshots = [s["DBSnapshotIdentifier"] for s in rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]]
    return instances, snapshots


def test_check_mode_plans_and_changes_nothing(lab, shop):
    lab.control.clear_calls()
    result = run_module(lab, args(shop), check=True)
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True and result["encrypted"] is False
    plan = result["plan"]
    assert plan["kms_key_arn"] == shop["key"]["Arn"]
    assert plan["names"]["old"].startswith("shop-old-")
    assert plan["write_stop"]["databases"] == ["postgres", "shop"]
    settings = plan["settings"]
    assert settings["db_instance_class"] == "db.t3.micro"
    assert settings["backup_retention_period"] == 3 and settings["deletion_protection"] is True
    assert settings["tags"] == {"team": "orders"}
    not_carried = " ".join(plan["not_carried"])
    assert "master user secret" in not_carried and "AssociatedRoles" in not_carried and "CA certificate" in not_carried
    # A check that writes fails in its read-only session and changes nothing on the source.
    writing = run_module(lab, args(shop, checks=[{"name": "cleanup", "sql": "DELETE FROM orders WHERE id = 1 "
                                                  "RETURNING id"}]), check=True)
    assert writing["failed"] is True and writing["changed"] is False
    assert "check cleanup fails on the source" in writing["msg"] and "read-only" in writing["msg"], writing["msg"]
    conn = connect(shop["endpoint"])
    assert scalar(conn, "SELECT count(*) FROM orders WHERE id = 1") == 1
    conn.close()
    assert [c["action"] for c in lab.control.calls(service="rds")
            if not c["action"].startswith(READ_ONLY_PREFIXES)] == []


def test_a_failing_check_swaps_nothing_and_the_source_stays_writable(lab, shop):
    rds = shop["rds"]
    failing = args(shop, checks=[{"name": "server port", "sql": "SELECT inet_server_port()"}])
    with Writer(shop["endpoint"]) as writer:
        result = run_module(lab, failing)
        time.sleep(0.5)
    assert result["failed"] is True
    assert "nothing was swapped" in result["msg"] and "server port" in result["msg"]
    assert result["encrypted"] is False
    assert [c["name"] for c in result["checks"] if not c["passed"]] == ["server port"]
    source = describe(rds, "shop")
    assert source["StorageEncrypted"] is False and source["DBInstanceStatus"] == "available"
    assert (source["Endpoint"]["Address"], source["Endpoint"]["Port"]) == shop["endpoint"]
    instances, snapshots = created_leftovers(rds)
    assert instances == ["shop"] and snapshots == []
    conn = connect(shop["endpoint"])
    assert scalar(conn, "SHOW default_transaction_read_only") == "off"
    assert scalar(conn, "SELECT count(*) FROM app_writes WHERE seq = ANY(%s)" % (
        "ARRAY[" + ",".join(map(str, writer.acknowledged)) + "]::int[]")) == len(writer.acknowledged)
    scalar(conn, "SELECT 1")
    with conn.cursor() as cursor:
        cursor.execute("TRUNCATE app_writes")
    assert scalar(conn, "SELECT to_regclass('dbre_rds_encrypt_probe') IS NULL") is True
    conn.close()
    assert writer.failed > 0  # the write stop was real while it lasted


def test_snapshot_cutover_encrypts_under_the_same_name_and_endpoint(lab, shop):
    rds = shop["rds"]
    with Writer(shop["endpoint"]) as writer:
        time.sleep(0.5)
        result = run_module(lab, args(shop, keep_old_hours=48))
        time.sleep(1.0)
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True and result["passed"] is True and result["encrypted"] is True
    measured = result["measurements"]
    assert measured["endpoint_unchanged"] is True
    assert measured["lost_writes"] == 0 and measured["acknowledged_writes"] > 0
    assert measured["write_downtime_seconds"] > 0
    assert measured["settings_differences"] == {}
    assert all(check["passed"] for check in result["checks"])
    assert {c["name"] for c in result["checks"]} == {"newest order", "rows in orders", "rows in public.app_writes"}

    target = describe(rds, "shop")
    assert target["StorageEncrypted"] is True and target["KmsKeyId"] == shop["key"]["Arn"]
    assert target["DbiResourceId"] != shop["source"]["DbiResourceId"]
    assert (target["Endpoint"]["Address"], target["Endpoint"]["Port"]) == shop["endpoint"]
    assert target["DeletionProtection"] is True and target["BackupRetentionPeriod"] == 3
    assert {t["Key"]: t["Value"] for t in target["TagList"]} == {"team": "orders"}

    old_id = result["plan"]["names"]["old"]
    old = describe(rds, old_id)
    assert old["DbiResourceId"] == shop["source"]["DbiResourceId"] and old["StorageEncrypted"] is False
    assert old["DBInstanceStatus"] in ("stopping", "stopped")
    old_tags = {t["Key"]: t["Value"] for t in old["TagList"]}
    assert old_tags["dbre:encrypt-replaced-by"] == "shop" and "dbre:encrypt-old-expires" in old_tags
    instances, snapshots = created_leftovers(rds)
    assert sorted(instances) == sorted(["shop", old_id])
    assert snapshots == [result["plan"]["names"]["encrypted_snapshot"]]

    # The test's own client: every write the server acknowledged is on the instance the endpoint reaches now.
    conn = connect(shop["endpoint"])
    present = {row[0] for row in _rows(conn, "SELECT seq FROM app_writes")}
    assert set(writer.acknowledged) <= present
    assert scalar(conn, "SELECT count(*) FROM orders") == 500
    assert scalar(conn, "SHOW default_transaction_read_only") == "off"
    assert scalar(conn, "SELECT to_regclass('dbre_rds_encrypt_probe') IS NULL") is True
    conn.close()
    assert writer.failed > 0

    again = run_module(lab, args(shop))
    assert again.get("failed") is not True, again.get("msg")
    assert again["changed"] is False and again["encrypted"] is True


def _rows(conn, sql):
    with conn.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def test_logical_cutover_keeps_writes_going_until_a_short_stop(lab, shop):
    rds = shop["rds"]
    rds.create_db_parameter_group(DBParameterGroupName="ledger-logical", DBParameterGroupFamily="postgres15",
                                  Description="logical replication")
    rds.modify_db_parameter_group(DBParameterGroupName="ledger-logical", Parameters=[
        {"ParameterName": "rds.logical_replication", "ParameterValue": "1", "ApplyMethod": "pending-reboot"},
        # DDL (CREATE ROLE, CREATE SUBSCRIPTION) reaches the server logs: a password in its text would show.
        {"ParameterName": "log_statement", "ParameterValue": "ddl", "ApplyMethod": "immediate"}])
    rds.create_db_instance(DBInstanceIdentifier="ledger", Engine="postgres", DBInstanceClass="db.t3.micro",
                           MasterUsername="master", MasterUserPassword=PASSWORD, DBName="shop", AllocatedStorage=20,
                           DBParameterGroupName="ledger-logical")
    deadline = time.monotonic() + 60
    while describe(rds, "ledger")["DBInstanceStatus"] != "available":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    source = describe(rds, "ledger")
    endpoint = (source["Endpoint"]["Address"], source["Endpoint"]["Port"])
    conn = connect(endpoint)
    with conn.cursor() as cursor:
        cursor.execute("CREATE TABLE orders (id int PRIMARY KEY, note text)")
        cursor.execute("INSERT INTO orders SELECT g, 'order ' || g FROM generate_series(1, 500) g")
        cursor.execute("CREATE TABLE app_writes (seq int PRIMARY KEY, at timestamptz DEFAULT clock_timestamp())")
        cursor.execute("CREATE TABLE events (id bigserial PRIMARY KEY, note text)")
        # A trigger that fires only where changes are applied by replication: the copy cannot load orders.
        cursor.execute("CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE 'refused'; END$$")
        cursor.execute("CREATE TRIGGER refuse BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION refuse()")
        cursor.execute("ALTER TABLE orders ENABLE REPLICA TRIGGER refuse")
    conn.close()

    # First a run that fails while the subscription is active: nothing swapped, nothing of the replication left.
    with Writer(endpoint) as writer:
        failed = run_module(lab, args(shop, db_instance_identifier="ledger", cutover="logical"))
        time.sleep(0.5)
    assert failed["failed"] is True and "reports 1 error(s)" in failed["msg"]
    assert [(p["name"], p["outcome"]) for p in failed["measurements"]["phases"]][-2:] == \
        [("subscription", "failed"), ("rollback", "ok")]
    assert describe(rds, "ledger")["DbiResourceId"] == source["DbiResourceId"]
    instances, snapshots = created_leftovers(rds)
    assert [i for i in instances if i.startswith("ledger")] == ["ledger"]
    assert [s for s in snapshots if s.startswith("ledger")] == []
    conn = connect(endpoint)
    assert scalar(conn, "SHOW default_transaction_read_only") == "off"
    assert scalar(conn, "SELECT count(*) FROM pg_publication") == 0
    assert scalar(conn, "SELECT count(*) FROM pg_replication_slots") == 0
    assert set(writer.acknowledged) <= {row[0] for row in _rows(conn, "SELECT seq FROM app_writes")}
    assert writer.failed == 0  # writes never stopped: the failure came before the write stop
    # The run's replication login was dropped by the rollback too.
    assert scalar(conn, "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'dbre\\_encrypt\\_%'") == 0
    with conn.cursor() as cursor:
        cursor.execute("DROP TRIGGER refuse ON orders")
        cursor.execute("TRUNCATE app_writes")
    conn.close()

    with Writer(endpoint, events=True) as writer:
        time.sleep(0.5)
        result = run_module(lab, args(shop, db_instance_identifier="ledger", cutover="logical",
                                      compare_row_counts=["orders", "app_writes", "events"]))
        time.sleep(1.0)
    assert result.get("failed") is not True, result.get("msg")
    assert result["passed"] is True and result["encrypted"] is True
    assert result["plan"]["cutover"] == "logical"
    measured = result["measurements"]
    assert measured["endpoint_unchanged"] is True
    assert measured["lost_writes"] == 0 and measured["acknowledged_writes"] > 0
    phases = {p["name"]: p for p in measured["phases"]}
    assert {"publication", "final snapshot", "encrypted copy", "restore", "subscription", "write stop", "catch-up",
            "replication removed", "swap"} <= set(phases)
    # The write stop came after the snapshot, the copy, the restore and the reload, and writes went on through them.
    assert phases["write stop"]["started_at"] >= phases["subscription"]["finished_at"]
    assert measured["write_downtime_seconds"] > 0
    copying = (phases["final snapshot"]["started_at"], phases["subscription"]["finished_at"])
    assert all(check["passed"] for check in result["checks"]) and len(result["checks"]) == 4

    target = describe(rds, "ledger")
    assert target["StorageEncrypted"] is True and target["KmsKeyId"] == shop["key"]["Arn"]
    assert target["DbiResourceId"] != source["DbiResourceId"]
    assert (target["Endpoint"]["Address"], target["Endpoint"]["Port"]) == endpoint
    name = result["plan"]["replication"]
    conn = connect(endpoint)
    present = {row[0] for row in _rows(conn, "SELECT seq FROM app_writes")}
    assert set(writer.acknowledged) <= present and len(writer.acknowledged) > 0
    assert scalar(conn, "SELECT count(*) FROM orders") == 500
    assert scalar(conn, "SELECT count(*) FROM app_writes WHERE at BETWEEN '%s' AND '%s'" % copying) > 0
    # The sequence was carried over: the next id follows the last one written during the cutover.
    written = scalar(conn, "SELECT max(id) FROM events")
    assert written > 0 and scalar(conn, "INSERT INTO events (note) VALUES ('after') RETURNING id") > written
    assert scalar(conn, "SELECT count(*) FROM pg_subscription") == 0
    assert scalar(conn, "SELECT count(*) FROM pg_publication") == 0
    assert scalar(conn, "SELECT count(*) FROM pg_replication_slots") == 0
    assert scalar(conn, "SHOW default_transaction_read_only") == "off"
    conn.close()

    # The old instance kept nothing of the replication either (started again only to look).
    old_id = result["plan"]["names"]["old"]
    deadline = time.monotonic() + 60
    while describe(rds, old_id)["DBInstanceStatus"] != "stopped":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    rds.start_db_instance(DBInstanceIdentifier=old_id)
    while describe(rds, old_id)["DBInstanceStatus"] != "available":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    old = describe(rds, old_id)
    conn = connect((old["Endpoint"]["Address"], old["Endpoint"]["Port"]))
    assert scalar(conn, "SELECT count(*) FROM pg_publication WHERE pubname = %s" % f"'{name}'") == 0
    assert scalar(conn, "SELECT count(*) FROM pg_replication_slots") == 0
    # The subscription used a login of the run's own, gone from the source; the master password reached no log.
    assert scalar(conn, "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'dbre\\_encrypt\\_%'") == 0
    conn.close()
    source_log, copy_log = lab.control.server_log(old_id), lab.control.server_log("ledger")
    role = name  # the run's login has the replication objects' name
    assert f'CREATE ROLE "{role}" LOGIN PASSWORD \'SCRAM-SHA-256$' in source_log
    assert f'DROP ROLE "{role}"' in source_log
    subscribed = [line for line in copy_log.splitlines() if "CREATE SUBSCRIPTION" in line]
    assert subscribed and all(role in line for line in subscribed)
    assert PASSWORD not in source_log and PASSWORD not in copy_log

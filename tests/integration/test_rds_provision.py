# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_provision against the lab: check mode creates nothing; a converge builds what the declarations say,
with DR keys it adds the DR copies in a second region, and a second converge makes no AWS change;
destroy removes only what carries the role's marker tag, the DR copies with their primaries.

This file is the role's only converge (the molecule scenario extensions/molecule/provision and the former
test_provision_dr.py converged the same role): one converge with the DR keys, one rerun and one destroy,
the checks reading the lab between them. The declarations hold an instance with a read replica and an Aurora cluster
with a proxy; their DR keys add a cross-region replica in us-west-2 and make the cluster the primary of a global
database with a secondary cluster there. Bad declarations, DR ones included, are in test_bad_inputs_provision.py.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import psycopg2
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
READ_ONLY = ("Describe", "List", "Get")
PRIMARY, DR = "us-east-1", "us-west-2"

VALID_INSTANCE = {"name": "orders", "engine_version": "15.7", "db_instance_class": "db.t4g.medium"}

CHECK_PLAY = """---
- name: Check mode on an empty lab
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Plan an instance with a replica and an Aurora cluster
      ansible.builtin.include_role:
        name: dbre.rds.rds_provision
    - name: Write the endpoints the role reports
      ansible.builtin.copy:
        content: "{{ rds_provision_endpoints | to_json }}"
        dest: "%s"
        mode: "0600"
      check_mode: false
"""


def run_playbook(lab, playbook, *extra):
    env = dict(os.environ)
    env.update(lab.env)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build"), ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_CALLBACK_RESULT_FORMAT="yaml")
    command = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), str(playbook), "-i", "localhost,",
               "-c", "local", *extra]
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600,
                            check=False)
    sys.stdout.write(result.stdout[-15000:])
    sys.stderr.write(result.stderr[-3000:])
    return result


def network(lab):
    """Two private subnets in two zones and an application security group, made before the call log is cleared."""
    ec2 = lab.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.77.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.77.{i}.0/24", AvailabilityZone=f"us-east-1{zone}")
               ["Subnet"]["SubnetId"] for i, zone in enumerate("ab")]
    app = ec2.create_security_group(GroupName="app", Description="application", VpcId=vpc)["GroupId"]
    return {"rds_provision_subnet_ids": subnets, "rds_provision_allowed_security_group_ids": [app]}


def mutating_calls(lab):
    return [call["action"] for call in lab.control.calls() if not call["action"].startswith(READ_ONLY)]


def nothing_was_created(lab):
    rds = lab.client("rds")
    return {
        "instances": rds.describe_db_instances()["DBInstances"],
        "clusters": rds.describe_db_clusters()["DBClusters"],
        "subnet_groups": rds.describe_db_subnet_groups()["DBSubnetGroups"],
        "parameter_groups": [group["DBParameterGroupName"] for group in rds.describe_db_parameter_groups()[
            "DBParameterGroups"] if not group["DBParameterGroupName"].startswith("default.")],
        "secrets": lab.client("secretsmanager").list_secrets()["SecretList"],
        "roles": lab.client("iam").list_roles()["Roles"],
        "security_groups": [group["GroupName"] for group in lab.client("ec2").describe_security_groups()[
            "SecurityGroups"] if group["GroupName"] not in ("default", "app")],
    }


EMPTY = {"instances": [], "clusters": [], "subnet_groups": [], "parameter_groups": [], "secrets": [], "roles": [],
         "security_groups": []}


def test_check_mode_on_an_empty_lab_creates_nothing(lab, tmp_path):
    lab.control.reset()
    try:
        variables = dict(network(lab), rds_provision_instances=[dict(VALID_INSTANCE, replicas=1)],
                         rds_provision_clusters=[{"name": "ledger", "engine_version": "15.4",
                                                  "db_instance_class": "db.r6g.large",
                                                  "proxy": {"enabled": True, "read_only_endpoint": True}}])
        (tmp_path / "vars.yml").write_text(yaml.safe_dump(variables))
        out = tmp_path / "endpoints.json"
        playbook = tmp_path / "check.yml"
        playbook.write_text(CHECK_PLAY % out)
        lab.control.clear_calls()
        result = run_playbook(lab, playbook, "--check", "-e", f"@{tmp_path / 'vars.yml'}")
        assert result.returncode == 0, "check mode failed; see the output above"
        assert "changed=" in result.stdout and "changed=0 " not in result.stdout, "check mode planned no change"
        assert mutating_calls(lab) == []
        assert nothing_was_created(lab) == EMPTY
        endpoints = json.loads(out.read_text())
        assert sorted(endpoints) == ["ledger", "orders"]
        assert not endpoints["orders"]["exists"] and endpoints["orders"]["writer_endpoint"] is None
        assert endpoints["ledger"]["proxy_endpoint"] is None
    finally:
        lab.control.reset()


CONVERGE_PLAY = """---
- name: Converge dbre.rds.rds_provision
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Provision the declared instance and cluster
      ansible.builtin.include_role:
        name: dbre.rds.rds_provision
    - name: Write the endpoints the role reports
      ansible.builtin.copy:
        content: "{{ rds_provision_endpoints | to_json }}"
        dest: "%s"
        mode: "0600"
"""
MARKER = "dbre.rds:rds_provision"
DECLARATIONS = {
    "rds_provision_instances": [dict(VALID_INSTANCE, allocated_storage=400, iops=12000, storage_throughput=500,
                                     replicas=1, db_name="orders", workload="oltp", tags={"team": "payments"})],
    "rds_provision_clusters": [{"name": "ledger", "engine_version": "15.4", "db_instance_class": "db.r6g.large",
                                "instances": 2, "workload": "web",
                                "cluster_parameter_overrides": {"log_min_duration_statement": 1000},
                                "proxy": {"enabled": True, "read_only_endpoint": True,
                                          "max_connections_percent": 80}}],
    "rds_provision_confirm_destroy": ["orders", "ledger"],
    # The lab's replicas are available in about a second: describe them every second, not every 15.
    "rds_provision_poll_interval": 1,
}
# The DR keys of the same declarations: a protected cross-region replica of orders, and ledger as the primary of a
# global database with a one-instance secondary (unprotected, as the cluster's DR copy was in test_provision_dr.py).
DR_KEYS = {"orders": {"region": DR, "deletion_protection": True, "tags": {"tier": "dr"}},
           "ledger": {"region": DR, "instances": 1, "deletion_protection": False}}


def with_dr(declarations):
    return dict(declarations, **{key: [dict(item, dr=DR_KEYS[item["name"]]) for item in declarations[key]]
                                 for key in ("rds_provision_instances", "rds_provision_clusters")})


def recap_changed(stdout):
    found = re.search(r"localhost\s*:\s*ok=\d+\s+changed=(\d+)", stdout)
    assert found, "no play recap in the output"
    return int(found.group(1))


def user_parameters(rds, group, cluster=False):
    call, key = (("describe_db_cluster_parameters", "DBClusterParameterGroupName") if cluster else
                 ("describe_db_parameters", "DBParameterGroupName"))
    pages = rds.get_paginator(call).paginate(**{key: group, "Source": "user"})
    return {p["ParameterName"]: p.get("ParameterValue") for page in pages for p in page["Parameters"]}


DESTROY = ROOT / "playbooks" / "destroy_rds.yml"


def tags_of(rds, arn):
    return {tag["Key"]: tag["Value"] for tag in rds.list_tags_for_resource(ResourceName=arn)["TagList"]}


@pytest.fixture(scope="module")
def converged(lab, tmp_path_factory):
    """The role converged once with the DR keys, then once more with the call log cleared:
    (variables file, endpoints, rerun)."""
    lab.control.reset()
    folder = tmp_path_factory.mktemp("converge")
    variables = folder / "vars-dr.yml"
    variables.write_text(yaml.safe_dump(dict(network(lab), **with_dr(DECLARATIONS))))
    out = folder / "endpoints.json"
    playbook = folder / "converge.yml"
    playbook.write_text(CONVERGE_PLAY % out)
    first = run_playbook(lab, playbook, "-e", f"@{variables}")
    assert first.returncode == 0, "the first converge failed; see the output above"
    assert recap_changed(first.stdout) > 0
    lab.control.clear_calls()
    # The rerun includes the DR copies: the secondary cluster's port is sent only at creation, as the primary's
    # (amazon.aws otherwise compares it with the lab's real port and sends ModifyDBCluster on every run).
    second = run_playbook(lab, playbook, "-e", f"@{variables}")
    assert second.returncode == 0, "the second converge failed; see the output above"
    rerun = {"changed": recap_changed(second.stdout), "mutating": mutating_calls(lab)}
    yield variables, json.loads(out.read_text()), rerun
    lab.control.reset()


def test_a_second_converge_changes_nothing(converged):
    rerun = converged[2]
    assert rerun == {"changed": 0, "mutating": []}


def test_the_instance_has_the_secure_defaults_and_its_tuned_group(lab, converged):
    rds = lab.client("rds")
    db = rds.describe_db_instances(DBInstanceIdentifier="orders")["DBInstances"][0]
    assert db["StorageEncrypted"] and db["MultiAZ"] and db["DeletionProtection"] and db["CopyTagsToSnapshot"]
    assert (db["BackupRetentionPeriod"], db["PreferredBackupWindow"], db["PreferredMaintenanceWindow"]) == (
        30, "03:00-04:00", "sun:04:30-sun:05:30")
    assert db["PerformanceInsightsEnabled"] and db["PerformanceInsightsRetentionPeriod"] == 7
    assert db["MonitoringInterval"] == 60
    assert db["MonitoringRoleArn"].endswith(":role/rds-provision-enhanced-monitoring")
    assert sorted(db["EnabledCloudwatchLogsExports"]) == ["postgresql", "upgrade"]
    assert db["AutoMinorVersionUpgrade"] and not db["PubliclyAccessible"]
    assert (db["StorageType"], db["Iops"], db["StorageThroughput"], db["MaxAllocatedStorage"]) == (
        "gp3", 12000, 500, 500)
    assert db["DBSubnetGroup"]["DBSubnetGroupName"] == "orders-subnets"
    assert [g["DBParameterGroupName"] for g in db["DBParameterGroups"]] == ["orders-postgres15"]
    values = user_parameters(rds, "orders-postgres15")
    assert values["rds.force_ssl"] == "1" and values["log_statement"] == "ddl"
    assert len(values) >= 10, "the group is not tuned"
    replica = rds.describe_db_instances(DBInstanceIdentifier="orders-replica-1")["DBInstances"][0]
    assert replica["ReadReplicaSourceDBInstanceIdentifier"] == "orders"
    assert converged[1]["orders"]["reader_endpoints"] == [replica["Endpoint"]["Address"]]


def test_the_security_groups_admit_the_port_from_the_application_group_only(lab, converged):
    variables = yaml.safe_load(converged[0].read_text())
    groups = lab.client("ec2").describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["orders-db", "ledger-db"]}])["SecurityGroups"]
    assert sorted(group["GroupName"] for group in groups) == ["ledger-db", "orders-db"]
    for group in groups:
        (rule,) = group["IpPermissions"]
        assert (rule["FromPort"], rule["ToPort"], rule.get("IpRanges"), rule.get("Ipv6Ranges") or []) == (
            5432, 5432, [], [])
        # ledger's RDS Proxy sits in its database's group, which admits the group itself for it.
        itself = [group["GroupId"]] if group["GroupName"] == "ledger-db" else []
        assert sorted(pair["GroupId"] for pair in rule["UserIdGroupPairs"]) == \
            sorted(variables["rds_provision_allowed_security_group_ids"] + itself)
        assert {tag["Key"]: tag["Value"] for tag in group["Tags"]}[MARKER] == group["GroupName"][:-3]


def test_the_cluster_has_its_own_cluster_parameter_group_and_members_keep_their_instance_group(lab, converged):
    rds = lab.client("rds")
    cluster = rds.describe_db_clusters(DBClusterIdentifier="ledger")["DBClusters"][0]
    assert cluster["DBClusterParameterGroup"] == "ledger-aurora-postgresql15"
    assert cluster["StorageEncrypted"] and cluster["DeletionProtection"] and cluster["BackupRetentionPeriod"] == 30
    assert cluster["DBSubnetGroup"] == "ledger-subnets"
    assert [m["DBInstanceIdentifier"] for m in cluster["DBClusterMembers"] if m["IsClusterWriter"]] == ["ledger-1"]
    cluster_values = user_parameters(rds, "ledger-aurora-postgresql15", cluster=True)
    assert cluster_values == {"rds.force_ssl": "1", "log_statement": "ddl", "log_min_duration_statement": "1000"}
    members = [db for db in rds.describe_db_instances()["DBInstances"] if db.get("DBClusterIdentifier") == "ledger"]
    assert sorted(db["DBInstanceIdentifier"] for db in members) == ["ledger-1", "ledger-2"]
    assert len({db["AvailabilityZone"] for db in members}) == 2
    assert {db["DBParameterGroups"][0]["DBParameterGroupName"] for db in members} == {"ledger-aurora-postgresql15"}
    member_values = user_parameters(rds, "ledger-aurora-postgresql15")
    assert "rds.force_ssl" not in member_values and len(member_values) >= 10, "the members' group is not tuned"
    group = rds.describe_db_cluster_parameter_groups(DBClusterParameterGroupName="ledger-aurora-postgresql15")
    assert tags_of(rds, group["DBClusterParameterGroups"][0]["DBClusterParameterGroupArn"])[MARKER] == "ledger"
    assert tags_of(rds, cluster["DBClusterArn"])[MARKER] == "ledger"


def test_clients_reach_each_writer_with_the_master_secret_over_tls_only(lab, converged):
    endpoints = converged[1]
    secrets = lab.client("secretsmanager")
    ca_cert = lab.env.get("LAB_CA_CERT")
    for name in ("orders", "ledger"):
        secret = json.loads(secrets.get_secret_value(SecretId=endpoints[name]["secret_arn"])["SecretString"])
        where = dict(host=endpoints[name]["writer_endpoint"], port=endpoints[name]["port"], dbname="postgres",
                     user=secret["username"], password=secret["password"], connect_timeout=10)
        tls = dict(sslmode="verify-full", sslrootcert=ca_cert) if ca_cert else dict(sslmode="require")
        with psycopg2.connect(**where, **tls) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT current_user, pg_is_in_recovery(), ssl FROM pg_stat_ssl "
                           "WHERE pid = pg_backend_pid()")
            assert cursor.fetchone() == (endpoints[name]["master_username"], False, True)
        connection.close()
        with pytest.raises(psycopg2.OperationalError):
            psycopg2.connect(**where, sslmode="disable").close()


def test_the_cluster_has_a_proxy_that_reads_only_its_master_secret_and_takes_tls_clients(lab, converged):
    rds, iam = lab.client("rds"), lab.client("iam")
    endpoints = converged[1]
    (proxy,) = rds.describe_db_proxies()["DBProxies"]
    (group,) = lab.client("ec2").describe_security_groups(
        Filters=[{"Name": "group-name", "Values": ["ledger-db"]}])["SecurityGroups"]
    assert (proxy["DBProxyName"], proxy["EngineFamily"], proxy["RequireTLS"], proxy["IdleClientTimeout"]) == (
        "ledger-proxy", "POSTGRESQL", True, 1800)
    assert [(a["SecretArn"], a["IAMAuth"]) for a in proxy["Auth"]] == [(endpoints["ledger"]["secret_arn"], "DISABLED")]
    assert proxy["RoleArn"].endswith(":role/ledger-proxy") and proxy["VpcSecurityGroupIds"] == [group["GroupId"]]
    assert tags_of(rds, proxy["DBProxyArn"])[MARKER] == "ledger"
    (target_group,) = rds.describe_db_proxy_target_groups(DBProxyName="ledger-proxy")["TargetGroups"]
    assert target_group["ConnectionPoolConfig"]["MaxConnectionsPercent"] == 80
    targets = rds.describe_db_proxy_targets(DBProxyName="ledger-proxy")["Targets"]
    assert ("TRACKED_CLUSTER", "ledger") in [(t["Type"], t["RdsResourceId"]) for t in targets]
    (read_only,) = [e for e in rds.describe_db_proxy_endpoints(DBProxyName="ledger-proxy")["DBProxyEndpoints"]
                    if not e.get("IsDefault")]
    assert (read_only["DBProxyEndpointName"], read_only["TargetRole"]) == ("ledger-proxy-ro", "READ_ONLY")
    assert {key: endpoints["ledger"][key] for key in ("proxy_endpoint", "proxy_read_only_endpoint", "proxy_port")} == {
        "proxy_endpoint": proxy["Endpoint"], "proxy_read_only_endpoint": read_only["Endpoint"], "proxy_port": 5432}
    assert endpoints["orders"]["proxy_endpoint"] is None

    role = iam.get_role(RoleName="ledger-proxy")["Role"]
    assert {tag["Key"]: tag["Value"] for tag in role["Tags"]}[MARKER] == "ledger"
    assert [s["Principal"] for s in role["AssumeRolePolicyDocument"]["Statement"]] == [
        {"Service": "rds.amazonaws.com"}]
    assert iam.list_role_policies(RoleName="ledger-proxy")["PolicyNames"] == ["dbre-rds-proxy-master-secret"]
    assert iam.list_attached_role_policies(RoleName="ledger-proxy")["AttachedPolicies"] == []
    document = iam.get_role_policy(RoleName="ledger-proxy", PolicyName="dbre-rds-proxy-master-secret")[
        "PolicyDocument"]
    assert [(s["Effect"], s["Action"], s["Resource"]) for s in document["Statement"]] == [
        ("Allow", "secretsmanager:GetSecretValue", endpoints["ledger"]["secret_arn"])]

    secret = json.loads(lab.client("secretsmanager").get_secret_value(
        SecretId=endpoints["ledger"]["secret_arn"])["SecretString"])
    ca_cert = lab.env.get("LAB_CA_CERT")
    tls = dict(sslmode="verify-full", sslrootcert=ca_cert) if ca_cert else dict(sslmode="require")
    for address in (endpoints["ledger"]["proxy_endpoint"], endpoints["ledger"]["proxy_read_only_endpoint"]):
        where = dict(host=address, port=5432, dbname="postgres", user=secret["username"],
                     password=secret["password"], connect_timeout=10)
        with psycopg2.connect(**where, **tls) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT current_user")
            assert cursor.fetchone() == (endpoints["ledger"]["master_username"],)
        connection.close()
        with pytest.raises(psycopg2.OperationalError, match="requires TLS"):
            psycopg2.connect(**where, sslmode="disable").close()


def test_the_instance_has_an_encrypted_cross_region_replica_in_the_dr_region(lab, converged):
    east, west = lab.client("rds", region=PRIMARY), lab.client("rds", region=DR)
    primary = east.describe_db_instances(DBInstanceIdentifier="orders")["DBInstances"][0]
    (replica,) = west.describe_db_instances(DBInstanceIdentifier="orders-dr")["DBInstances"]
    assert replica["ReadReplicaSourceDBInstanceIdentifier"] == primary["DBInstanceArn"]
    assert replica["StorageEncrypted"] and replica["DeletionProtection"]
    assert replica["DBInstanceClass"] == "db.t4g.medium" and replica["DBInstanceStatus"] == "available"
    assert [g["DBParameterGroupName"] for g in replica["DBParameterGroups"]] == ["orders-postgres15"]
    assert tags_of(west, replica["DBInstanceArn"])[MARKER] == "orders"
    assert tags_of(west, replica["DBInstanceArn"])["dbre.rds:dr_of"] == "orders"
    assert tags_of(west, replica["DBInstanceArn"])["tier"] == "dr"
    # the DR region's parameter group is tuned as the primary's
    values = user_parameters(west, "orders-postgres15")
    assert values["rds.force_ssl"] == "1" and len(values) >= 10
    dr = converged[1]["orders"]["dr"]
    assert dr == {"kind": "replica", "region": DR, "identifier": "orders-dr", "global_cluster_identifier": None,
                  "exists": True, "writer_endpoint": None, "reader_endpoint": replica["Endpoint"]["Address"],
                  "port": replica["Endpoint"]["Port"], "arn": replica["DBInstanceArn"], "members": []}


def test_the_cluster_is_the_writer_of_a_global_database_with_a_secondary_in_the_dr_region(lab, converged):
    east, west = lab.client("rds", region=PRIMARY), lab.client("rds", region=DR)
    primary = east.describe_db_clusters(DBClusterIdentifier="ledger")["DBClusters"][0]
    secondary = west.describe_db_clusters(DBClusterIdentifier="ledger-dr")["DBClusters"][0]
    (found,) = east.describe_global_clusters(GlobalClusterIdentifier="ledger-global")["GlobalClusters"]
    members = {m["DBClusterArn"]: m["IsWriter"] for m in found["GlobalClusterMembers"]}
    assert members == {primary["DBClusterArn"]: True, secondary["DBClusterArn"]: False}
    assert found["Engine"] == "aurora-postgresql"
    assert {tag["Key"]: tag["Value"] for tag in found.get("TagList") or []} == {
        "dbre:managed-by": "rds_global_cluster", MARKER: "ledger", "managed_by": "dbre.rds.rds_provision",
        "dbre.rds:dr_of": "ledger"}
    assert secondary["StorageEncrypted"] and secondary["DBClusterParameterGroup"] == "ledger-aurora-postgresql15"
    assert [m["DBInstanceIdentifier"] for m in secondary["DBClusterMembers"]] == ["ledger-dr-1"]
    assert tags_of(west, secondary["DBClusterArn"])[MARKER] == "ledger"
    dr = converged[1]["ledger"]["dr"]
    assert (dr["kind"], dr["region"], dr["identifier"], dr["global_cluster_identifier"], dr["exists"],
            dr["members"]) == ("global_secondary", DR, "ledger-dr", "ledger-global", True, ["ledger-dr-1"])
    assert dr["reader_endpoint"] == secondary["ReaderEndpoint"] and dr["arn"] == secondary["DBClusterArn"]


def test_destroy_refuses_what_the_role_did_not_mark_removing_nothing(lab, converged):
    rds = lab.client("rds")
    variables = converged[0]
    orders_arn = rds.describe_db_instances(DBInstanceIdentifier="orders")["DBInstances"][0]["DBInstanceArn"]
    proxy_arn = rds.describe_db_proxies(DBProxyName="ledger-proxy")["DBProxies"][0]["DBProxyArn"]
    rds.remove_tags_from_resource(ResourceName=orders_arn, TagKeys=[MARKER])
    rds.remove_tags_from_resource(ResourceName=proxy_arn, TagKeys=[MARKER])
    lab.control.clear_calls()
    refused = run_playbook(lab, DESTROY, "-e", f"@{variables}")
    assert refused.returncode != 0
    assert f"DB instance orders has no tag {MARKER}=orders" in refused.stdout
    assert f"RDS Proxy ledger-proxy has no tag {MARKER}=ledger" in refused.stdout
    assert "Nothing was removed." in refused.stdout
    assert mutating_calls(lab) == []
    assert len(rds.describe_db_instances()["DBInstances"]) == 4
    assert [p["DBProxyName"] for p in rds.describe_db_proxies()["DBProxies"]] == ["ledger-proxy"]
    rds.add_tags_to_resource(ResourceName=orders_arn, Tags=[{"Key": MARKER, "Value": "orders"}])
    rds.add_tags_to_resource(ResourceName=proxy_arn, Tags=[{"Key": MARKER, "Value": "ledger"}])


def test_destroy_refuses_a_global_member_or_a_group_user_it_did_not_make_removing_nothing(lab, converged):
    variables = converged[0]
    east, west = lab.client("rds", region=PRIMARY), lab.client("rds", region=DR)
    # Made by hand: a third region's cluster joined to the global database, and an instance in the DR region using
    # the DR replica's parameter group. Destroy must refuse before any change, naming both.
    (replica,) = west.describe_db_instances(DBInstanceIdentifier="orders-dr")["DBInstances"]
    group = replica["DBParameterGroups"][0]["DBParameterGroupName"]
    west.create_db_instance(DBInstanceIdentifier="stray", Engine="postgres", DBInstanceClass="db.t4g.micro",
                            MasterUsername="stray", MasterUserPassword="stray-password-1", AllocatedStorage=20,
                            DBParameterGroupName=group)
    third = lab.client("rds", region="eu-west-1")
    third_arn = third.create_db_cluster(DBClusterIdentifier="ledger-eu", Engine="aurora-postgresql",
                                        EngineVersion="15.4", GlobalClusterIdentifier="ledger-global",
                                        StorageEncrypted=True)["DBCluster"]["DBClusterArn"]
    lab.control.clear_calls()
    refused = run_playbook(lab, DESTROY, "-e", f"@{variables}")
    assert refused.returncode != 0 and mutating_calls(lab) == []
    assert (f"Global cluster ledger-global has the member {third_arn}, which is neither ledger nor its DR copy "
            "ledger-dr in us-west-2") in refused.stdout
    assert (f"Parameter group {group} in us-west-2 is still used by DB instance stray, which is not a DR copy of "
            "orders") in refused.stdout
    global_arn = east.describe_global_clusters(GlobalClusterIdentifier="ledger-global")["GlobalClusters"][0][
        "GlobalClusterArn"]
    third.remove_from_global_cluster(GlobalClusterIdentifier=global_arn, DbClusterIdentifier=third_arn)
    third.delete_db_cluster(DBClusterIdentifier="ledger-eu", SkipFinalSnapshot=True)
    west.delete_db_instance(DBInstanceIdentifier="stray", SkipFinalSnapshot=True)


def test_destroy_removes_what_it_made_the_dr_copies_with_their_primaries(lab, converged):
    variables = converged[0]
    east, west = lab.client("rds", region=PRIMARY), lab.client("rds", region=DR)
    lab.control.clear_calls()
    removed = run_playbook(lab, DESTROY, "-e", f"@{variables}")
    assert removed.returncode == 0, "destroy failed; see the output above"
    assert "DeleteGlobalCluster" in mutating_calls(lab)
    assert east.describe_global_clusters()["GlobalClusters"] == []
    assert east.describe_db_proxies()["DBProxies"] == []
    for rds in (east, west):
        assert rds.describe_db_instances()["DBInstances"] == [] and rds.describe_db_clusters()["DBClusters"] == []
        assert [g["DBParameterGroupName"] for g in rds.describe_db_parameter_groups()["DBParameterGroups"]
                if not g["DBParameterGroupName"].startswith("default.")] == []
        assert [g for g in rds.describe_db_cluster_parameter_groups()["DBClusterParameterGroups"]
                if not g["DBClusterParameterGroupName"].startswith("default.")] == []
    assert nothing_was_created(lab) == EMPTY
    snapshots = [s["DBSnapshotIdentifier"] for s in east.describe_db_snapshots()["DBSnapshots"]]
    assert [s for s in snapshots if s.startswith("orders-final-")], snapshots
    cluster_snapshots = [s["DBClusterSnapshotIdentifier"] for s in
                         east.describe_db_cluster_snapshots()["DBClusterSnapshots"]]
    assert [s for s in cluster_snapshots if s.startswith("ledger-final-")], cluster_snapshots

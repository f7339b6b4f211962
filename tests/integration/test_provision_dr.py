# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_provision's DR declarations against the lab (us-east-1 primary, us-west-2 DR region).

Bad DR declarations are refused before any change, all in one run (tests/integration/bad_inputs.py). Then one converge
builds an instance with a cross-region read replica and an Aurora cluster that becomes the primary of a global
database with a secondary cluster; the checks read both regions. Destroy then removes the DR copies with the primaries.
"""

import json

import pytest
import yaml

from tests.integration.bad_inputs import assert_all_refused
from tests.integration.bad_inputs import run_role_cases
from tests.integration.test_rds_provision import mutating_calls
from tests.integration.test_rds_provision import network
from tests.integration.test_rds_provision import recap_changed
from tests.integration.test_rds_provision import run_playbook

pytestmark = pytest.mark.lab

MARKER = "dbre.rds:rds_provision"
PRIMARY, DR = "us-east-1", "us-west-2"
INSTANCE = {"name": "orders", "engine_version": "15.7", "db_instance_class": "db.t4g.medium", "multi_az": False,
            "deletion_protection": False, "monitoring_interval": 0, "enable_performance_insights": False,
            "dr": {"region": DR, "deletion_protection": True, "tags": {"tier": "dr"}}}
CLUSTER = {"name": "ledger", "engine_version": "15.4", "db_instance_class": "db.r6g.large", "instances": 1,
           "deletion_protection": False, "monitoring_interval": 0, "enable_performance_insights": False,
           "dr": {"region": DR, "instances": 1}}
PLAY = """---
- name: %s
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Run dbre.rds.rds_provision
      ansible.builtin.include_role:
        name: dbre.rds.rds_provision
        tasks_from: %s
    - name: Write the endpoints the role reports
      ansible.builtin.copy:
        content: "{{ rds_provision_endpoints | default({}) | to_json }}"
        dest: "%s"
        mode: "0600"
"""


def test_bad_dr_declarations_are_refused_before_any_change(lab):
    lab.control.reset()
    try:
        base = dict(network(lab), rds_provision_clusters=[])
        cases = [
            {"id": "same_region", "vars": dict(base, rds_provision_instances=[dict(INSTANCE, dr={"region": PRIMARY})]),
             "expect": ["rds_provision_instances[orders].dr.region: us-east-1 is the primary's own region",
                        "choose another region"]},
            {"id": "unknown_region_and_bad_names",
             "vars": dict(base, rds_provision_instances=[dict(INSTANCE, dr={"region": "us-mars-1",
                                                                            "identifier": "orders--dr"})],
                          rds_provision_clusters=[dict(CLUSTER, dr={"region": DR, "instances": 0})]),
             "expect": ['rds_provision_instances[orders].dr.region: "us-mars-1" is not a region this account offers',
                        "choose one of", "us-west-2",
                        'rds_provision_instances[orders].dr.identifier: "orders--dr" is not a valid RDS identifier',
                        "rds_provision_clusters[ledger].dr.instances: 0 is not 1 to 16"]},
            {"id": "cluster_key_on_an_instance",
             "vars": dict(base, rds_provision_instances=[dict(INSTANCE, dr={"region": DR, "instances": 2})]),
             "expect": ["rds_provision_instances", "dr", "instances"]},
            {"id": "no_region",
             "vars": dict(base, rds_provision_clusters=[dict(CLUSTER, dr={"instances": 1})]),
             "expect": ["missing required arguments: region", "rds_provision_clusters", "dr"]},
            {"id": "dr_identifier_taken_by_a_resource_the_role_did_not_make",
             "vars": dict(base, rds_provision_instances=[INSTANCE, dict(INSTANCE, name="billing")]),
             "expect": ["rds_provision_instances[orders].dr: DB instance orders-dr already exists in us-west-2 "
                        f"without the tag {MARKER}=orders", "will not take it over",
                        "rename the declaration's dr.identifier, or remove the resource",
                        "rds_provision_instances[billing].dr: DB instance billing-dr in us-west-2 is not a read "
                        "replica of billing (it copies nothing; billing does not exist yet)"]},
        ]
        # Made by hand in the DR region under the names the declarations' DR copies would take: orders-dr untagged,
        # billing-dr carrying the marker but copying nothing. The role must refuse both, not adopt and modify them.
        west = lab.client("rds", region=DR)
        for name, tagged in (("orders-dr", []), ("billing-dr", [{"Key": MARKER, "Value": "billing"}])):
            west.create_db_instance(DBInstanceIdentifier=name, Engine="postgres", DBInstanceClass="db.t4g.micro",
                                    MasterUsername="stray", MasterUserPassword="stray-password-1",
                                    AllocatedStorage=20, Tags=tagged)
        assert_all_refused(lab, run_role_cases, "dbre.rds.rds_provision", cases)
    finally:
        lab.control.reset()


def tags(rds, arn):
    return {tag["Key"]: tag["Value"] for tag in rds.list_tags_for_resource(ResourceName=arn)["TagList"]}


@pytest.fixture(scope="module")
def converged(lab, tmp_path_factory):
    """The role converged once with both DR declarations: (variables file, endpoints, folder)."""
    lab.control.reset()
    folder = tmp_path_factory.mktemp("dr")
    variables = folder / "vars.yml"
    variables.write_text(yaml.safe_dump(dict(network(lab), rds_provision_instances=[INSTANCE],
                                             rds_provision_clusters=[CLUSTER],
                                             rds_provision_confirm_destroy=["orders", "ledger"],
                                             rds_provision_poll_interval=1)))
    out = folder / "endpoints.json"
    playbook = folder / "converge.yml"
    playbook.write_text(PLAY % ("Converge with DR copies", "main", out))
    first = run_playbook(lab, playbook, "-e", f"@{variables}")
    assert first.returncode == 0, "the converge failed; see the output above"
    assert recap_changed(first.stdout) > 0
    yield variables, json.loads(out.read_text()), folder
    lab.control.reset()


def test_the_instance_has_an_encrypted_cross_region_replica_in_the_dr_region(lab, converged):
    east, west = lab.client("rds", region=PRIMARY), lab.client("rds", region=DR)
    primary = east.describe_db_instances(DBInstanceIdentifier="orders")["DBInstances"][0]
    (replica,) = west.describe_db_instances(DBInstanceIdentifier="orders-dr")["DBInstances"]
    assert replica["ReadReplicaSourceDBInstanceIdentifier"] == primary["DBInstanceArn"]
    assert replica["StorageEncrypted"] and replica["DeletionProtection"]
    assert replica["DBInstanceClass"] == "db.t4g.medium" and replica["DBInstanceStatus"] == "available"
    assert [g["DBParameterGroupName"] for g in replica["DBParameterGroups"]] == ["orders-postgres15"]
    assert tags(west, replica["DBInstanceArn"])[MARKER] == "orders"
    assert tags(west, replica["DBInstanceArn"])["dbre.rds:dr_of"] == "orders"
    assert tags(west, replica["DBInstanceArn"])["tier"] == "dr"
    # the DR region's parameter group is tuned as the primary's
    values = {p["ParameterName"]: p.get("ParameterValue") for p in west.describe_db_parameters(
        DBParameterGroupName="orders-postgres15", Source="user")["Parameters"]}
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
    assert tags(west, secondary["DBClusterArn"])[MARKER] == "ledger"
    dr = converged[1]["ledger"]["dr"]
    assert (dr["kind"], dr["region"], dr["identifier"], dr["global_cluster_identifier"], dr["exists"],
            dr["members"]) == ("global_secondary", DR, "ledger-dr", "ledger-global", True, ["ledger-dr-1"])
    assert dr["reader_endpoint"] == secondary["ReaderEndpoint"] and dr["arn"] == secondary["DBClusterArn"]


def test_destroy_removes_the_dr_copies_with_the_primaries(lab, converged):
    variables, _unused, folder = converged
    playbook = folder / "destroy.yml"
    playbook.write_text(PLAY % ("Destroy with DR copies", "destroy", folder / "after.json"))
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
    refused = run_playbook(lab, playbook, "-e", f"@{variables}", "-e", "rds_provision_final_snapshot=false")
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
    lab.control.clear_calls()
    result = run_playbook(lab, playbook, "-e", f"@{variables}", "-e", "rds_provision_final_snapshot=false")
    assert result.returncode == 0, "destroy failed; see the output above"
    assert "DeleteGlobalCluster" in mutating_calls(lab)
    assert east.describe_global_clusters()["GlobalClusters"] == []
    for rds in (east, west):
        assert rds.describe_db_instances()["DBInstances"] == []
        assert rds.describe_db_clusters()["DBClusters"] == []
        assert [g["DBParameterGroupName"] for g in rds.describe_db_parameter_groups()["DBParameterGroups"]
                if not g["DBParameterGroupName"].startswith("default.")] == []

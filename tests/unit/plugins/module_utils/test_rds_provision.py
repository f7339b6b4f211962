# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rds_provision role's decisions: merged declarations, validation messages, member layout, endpoints, group
parameters, offerings and what destroy may remove."""

import pytest

from ansible_collections.dbre.rds.plugins.module_utils.rds_provision import MARKER_TAG
from ansible_collections.dbre.rds.plugins.module_utils.rds_provision import WindowError
from ansible_collections.dbre.rds.plugins.module_utils.rds_provision import destroy_plan
from ansible_collections.dbre.rds.plugins.module_utils.rds_provision import endpoints
from ansible_collections.dbre.rds.plugins.module_utils.rds_provision import members
from ansible_collections.dbre.rds.plugins.module_utils.rds_provision import normalize
from ansible_collections.dbre.rds.plugins.module_utils.rds_provision import offering_problems
from ansible_collections.dbre.rds.plugins.module_utils.rds_provision import parse_daily_window
from ansible_collections.dbre.rds.plugins.module_utils.rds_provision import parse_weekly_window
from ansible_collections.dbre.rds.plugins.module_utils.rds_provision import placement
from ansible_collections.dbre.rds.plugins.module_utils.rds_provision import placement_problems
from ansible_collections.dbre.rds.plugins.module_utils.rds_provision import plan
from ansible_collections.dbre.rds.plugins.module_utils.rds_provision import problems
from ansible_collections.dbre.rds.plugins.module_utils.rds_provision import security_parameters
from ansible_collections.dbre.rds.plugins.module_utils.rds_provision import windows_overlap

DEFAULTS = {
    "port": 5432, "subnet_ids": ["subnet-a", "subnet-b"], "allowed_security_group_ids": ["sg-app"], "kms_key_id": "",
    "backup_retention_period": 30, "preferred_backup_window": "03:00-04:00",
    "preferred_maintenance_window": "sun:04:30-sun:05:30", "deletion_protection": True, "copy_tags_to_snapshot": True,
    "auto_minor_version_upgrade": True, "enable_performance_insights": True, "performance_insights_retention_period": 7,
    "monitoring_interval": 60, "master_username": "dbadmin", "workload": "oltp", "parameter_value_style": "formula",
    "parameter_overrides": {}, "tags": {}, "multi_az": True, "storage_type": "gp3", "allocated_storage": 100,
    "max_allocated_storage": 500, "replicas": 0, "instances": 2,
}
SUBNETS = [
    {"subnet_id": "subnet-a", "vpc_id": "vpc-1", "availability_zone": "us-east-1a"},
    {"subnet_id": "subnet-b", "vpc_id": "vpc-1", "availability_zone": "us-east-1b"},
    {"subnet_id": "subnet-c", "vpc_id": "vpc-1", "availability_zone": "us-east-1a"},
    {"subnet_id": "subnet-x", "vpc_id": "vpc-2", "availability_zone": "us-east-1c"},
]


def instance(**changes):
    return normalize([dict({"name": "orders", "engine_version": "15.7", "db_instance_class": "db.r6g.large"},
                           **changes)], DEFAULTS, "instance")[0]


def cluster(**changes):
    return normalize([dict({"name": "ledger", "engine_version": "15.4", "db_instance_class": "db.r6g.large"},
                           **changes)], DEFAULTS, "cluster")[0]


def test_a_declaration_takes_the_defaults_and_names_what_the_role_makes():
    item = instance(replicas=None, tags={"team": "payments"})
    assert item["backup_retention_period"] == 30 and item["replicas"] == 0 and item["tags"] == {"team": "payments"}
    assert item["engine"] == "postgres" and item["family"] == "postgres15"
    assert (item["db_parameter_group_name"], item["db_subnet_group_name"], item["security_group_name"]) == (
        "orders-postgres15", "orders-subnets", "orders-db")
    assert item["managed_secret"] is True and item["master_secret_name"] == "rds-provision/orders/master"
    assert item["ingress_rules"] == [{"proto": "tcp", "ports": [5432], "group_id": "sg-app",
                                      "rule_desc": "PostgreSQL from sg-app"}]
    assert cluster()["family"] == "aurora-postgresql15"
    assert instance(master_user_password="given-one")["managed_secret"] is False


def test_ingress_never_opens_a_cidr():
    assert instance(allowed_security_group_ids=[])["ingress_rules"] == []
    assert all("cidr_ip" not in rule for rule in instance()["ingress_rules"])


def test_valid_declarations_have_no_problems():
    serverless = cluster(db_instance_class="db.serverless",
                         serverless_v2_scaling_configuration={"min_capacity": 0.5, "max_capacity": 8})
    assert problems([instance(replicas=2)], [cluster(), serverless | {"name": "ledger2"}]) == []


@pytest.mark.parametrize(
    "changes, key, fix",
    [
        ({"backup_retention_period": 0}, "backup_retention_period", "between 1 and 35"),
        ({"backup_retention_period": 36}, "backup_retention_period", "between 1 and 35"),
        ({"backup_retention_period": 0, "replicas": 2}, "replicas",
         "backup_retention_period between 1 and 35, or replicas: 0"),
        ({"preferred_backup_window": "04:00-05:00", "preferred_maintenance_window": "sun:04:30-sun:05:30"},
         "preferred_backup_window", "move one of them"),
        ({"preferred_backup_window": "23:30-00:30", "preferred_maintenance_window": "mon:00:00-mon:01:00"},
         "preferred_backup_window", "move one of them"),
        ({"preferred_backup_window": "3am"}, "preferred_backup_window", "for example 03:00-04:00"),
        ({"preferred_maintenance_window": "sun:04:30-sun:04:45"}, "preferred_maintenance_window", "at least 30"),
        ({"engine": "mysql"}, "engine", "set engine: postgres"),
        ({"db_instance_class": "db.r6g.larg"}, "db_instance_class", "did you mean db.r6g.large"),
        ({"subnet_ids": []}, "subnet_ids", "at least two private subnets"),
        ({"name": "1orders"}, "name", "starting with a letter"),
        ({"iops": 3000, "storage_type": "gp2"}, "iops", "storage_type gp3, io1 or io2"),
        ({"max_allocated_storage": 100}, "max_allocated_storage", "raise it"),
        ({"performance_insights_retention_period": 30}, "performance_insights_retention_period", "multiple of 31"),
        ({"name": "a" * 60, "replicas": 1}, "name", "shorten the name to 53 characters"),
        ({"name": "orders-"}, "name", "hyphen at the end"),
        ({"replicas": 16}, "replicas", "between 0 and 15"),
        ({"allocated_storage": 10}, "allocated_storage", "20-65536 GiB"),
        ({"allocated_storage": 70000}, "allocated_storage", "20-65536 GiB"),
        ({"storage_type": "io1", "allocated_storage": 100}, "iops is missing", "needs provisioned IOPS"),
        ({"storage_type": "io1", "iops": 500}, "iops", "1000-256000"),
        ({"storage_type": "ssd"}, "storage_type", "gp3 recommended"),
        ({"iops": 12000, "allocated_storage": 100}, "fixed baseline", "allocate 400 GiB or more"),
        ({"iops": 3000, "allocated_storage": 400}, "iops", "12000-64000"),
        ({"storage_throughput": 5000, "allocated_storage": 400}, "storage_throughput", "500-4000"),
        ({"max_allocated_storage": 70000}, "max_allocated_storage", "lower it"),
        ({"db_parameter_group_name": "my_group"}, "db_parameter_group_name", "letters, digits or hyphens"),
        ({"db_parameter_group_name": "default.postgres15"}, "db_parameter_group_name", "cannot be modified"),
        ({"backup_retention_period": "30"}, "backup_retention_period", "between 1 and 35"),
    ],
)
def test_each_bad_declaration_names_the_key_and_the_fix(changes, key, fix):
    found = problems([instance(**changes)], [])
    assert found, changes
    assert any("rds_provision_instances[0] (" in message and key in message and fix in message
               for message in found), found


def test_cluster_problems_name_the_cluster_list():
    found = problems([], [cluster(engine="aurora-mysql", db_instance_class="db.serverless")])
    assert any("rds_provision_clusters[0] (ledger).engine" in message for message in found)
    assert any("serverless_v2_scaling_configuration needs min_capacity and max_capacity" in message
               for message in found)


def test_the_same_name_twice_is_refused():
    found = problems([instance()], [cluster(name="orders")])
    assert any("declared twice" in message for message in found)


@pytest.mark.parametrize(
    "backup, maintenance, overlap",
    [
        ("03:00-04:00", "sun:04:30-sun:05:30", False),
        ("03:00-04:00", "sun:04:00-sun:05:00", False),
        ("03:00-04:00", "sun:03:59-sun:05:00", True),
        ("03:00-04:00", "wed:02:00-wed:03:30", True),
        ("23:30-00:30", "mon:00:00-mon:01:00", True),
        ("23:30-00:30", "sun:23:00-mon:00:10", True),
        ("22:00-23:00", "sun:23:30-mon:00:30", False),
        ("01:00-02:00", "sun:23:30-mon:01:30", True),
    ],
)
def test_backup_and_maintenance_windows_overlap_on_any_day(backup, maintenance, overlap):
    assert windows_overlap(backup, maintenance) is overlap


def test_windows_parse_to_minutes_and_reject_nonsense():
    assert parse_daily_window("23:30-00:30") == (1410, 1470)
    assert parse_weekly_window("Sun:23:30-Mon:00:30") == (6 * 1440 + 1410, 7 * 1440 + 30)
    for bad in ("25:00-26:00", "03:00"):
        with pytest.raises(WindowError):
            parse_daily_window(bad)
    with pytest.raises(WindowError):
        parse_weekly_window("sat:03:00-sax:04:00")


def test_placement_and_its_problems():
    items = [instance(), instance(name="one-zone", subnet_ids=["subnet-a", "subnet-c"]),
             instance(name="two-vpcs", subnet_ids=["subnet-a", "subnet-x"]),
             instance(name="ghost", subnet_ids=["subnet-a", "subnet-404"])]
    assert placement(items, SUBNETS)["orders"] == {"vpc_id": "vpc-1",
                                                   "availability_zones": ["us-east-1a", "us-east-1b"]}
    found = placement_problems(items, SUBNETS)
    assert len(found) == 3
    assert "(one-zone).subnet_ids cover only us-east-1a" in found[0]
    assert "(two-vpcs).subnet_ids span several VPCs" in found[1]
    assert "(ghost).subnet_ids: subnet-404 not found" in found[2]


def test_replicas_and_cluster_members_are_spread_over_the_zones():
    places = placement([instance(), cluster()], SUBNETS)
    replicas = members([instance(replicas=3, replica_instance_class="db.r6g.xlarge")], places)
    assert [(m["identifier"], m["availability_zone"], m["db_instance_class"]) for m in replicas] == [
        ("orders-replica-1", "us-east-1b", "db.r6g.xlarge"), ("orders-replica-2", "us-east-1a", "db.r6g.xlarge"),
        ("orders-replica-3", "us-east-1b", "db.r6g.xlarge")]
    nodes = members([cluster(instances=3)], places)
    assert [(m["identifier"], m["availability_zone"], m["promotion_tier"]) for m in nodes] == [
        ("ledger-1", "us-east-1a", 0), ("ledger-2", "us-east-1b", 1), ("ledger-3", "us-east-1a", 1)]
    assert members([instance()], {}) == []


def test_endpoints_per_name_for_instances_replicas_and_clusters():
    instances_info = [
        {"db_instance_identifier": "orders", "endpoint": {"address": "127.0.0.1", "port": 40001},
         "db_instance_arn": "arn:aws:rds:us-east-1:123456789012:db:orders", "master_username": "dbadmin"},
        {"db_instance_identifier": "orders-replica-1", "endpoint": {"address": "127.0.0.2", "port": 40002},
         "read_replica_source_db_instance_identifier": "orders"},
    ]
    clusters_info = [{"db_cluster_identifier": "ledger", "endpoint": "ledger.cluster", "reader_endpoint": "ledger.ro",
                      "port": 40003, "db_cluster_arn": "arn:cluster", "master_username": "dbadmin",
                      "master_user_secret": {"secret_arn": "arn:managed"},
                      "db_cluster_members": [{"db_instance_identifier": "ledger-2"},
                                             {"db_instance_identifier": "ledger-1"}]}]
    declared = dict(instance(), managed_secret=True, master_secret_name="rds-provision/orders/master")
    result = endpoints([declared], [cluster()], instances_info, clusters_info, {"orders": "arn:secret:orders"})
    assert result["orders"] == {
        "kind": "instance", "exists": True, "writer_endpoint": "127.0.0.1", "reader_endpoint": "127.0.0.2",
        "reader_endpoints": ["127.0.0.2"], "port": 40001, "arn": "arn:aws:rds:us-east-1:123456789012:db:orders",
        "secret_arn": "arn:secret:orders", "secret_id": "rds-provision/orders/master", "master_username": "dbadmin",
        "db_name": None, "members": ["orders-replica-1"], "proxy_endpoint": None, "proxy_read_only_endpoint": None,
        "proxy_port": None}
    assert result["ledger"]["writer_endpoint"] == "ledger.cluster"
    assert result["ledger"]["reader_endpoint"] == "ledger.ro"
    assert result["ledger"]["secret_arn"] == "arn:managed" and result["ledger"]["members"] == ["ledger-1", "ledger-2"]
    assert result["ledger"]["secret_id"] == "arn:managed"


def test_in_check_mode_on_an_empty_account_each_name_is_reported_as_not_existing():
    result = endpoints([instance()], [], [], [], {})
    assert result["orders"]["exists"] is False and result["orders"]["writer_endpoint"] is None
    assert result["orders"]["port"] == 5432


@pytest.mark.parametrize("name", ["", "   ", None])
def test_an_empty_name_is_refused(name):
    found = problems([instance(name=name)], [])
    assert any(message.startswith("rds_provision_instances[0].name is empty") and "give each database an RDS "
               "identifier" in message for message in found), found


def test_names_are_compared_without_case_and_stripped():
    assert instance(name="  orders ")["name"] == "orders"
    found = problems([instance()], [cluster(name="ORDERS")])
    assert any("declared twice" in message for message in found)


def test_cluster_member_identifiers_must_fit_rds_limit():
    found = problems([], [cluster(name="l" * 62, instances=2)])
    assert any("member identifier" in message and "shorten the name to 61" in message for message in found), found
    assert any("instances" in m and "between 1 and 16" in m for m in problems([], [cluster(instances=0)]))


SETTINGS = {"instance_defaults": DEFAULTS, "cluster_defaults": DEFAULTS, "tags": {"managed_by": "role"},
            "force_ssl": True, "audit_logging": "ddl"}


def test_tls_and_audit_go_to_the_instance_group_of_an_instance_and_the_cluster_group_of_a_cluster():
    result = plan([{"name": "orders", "engine_version": "15.7", "db_instance_class": "db.r6g.large",
                    "parameter_overrides": {"work_mem": "64MB"}}],
                  [{"name": "ledger", "engine_version": "15.4", "db_instance_class": "db.r6g.large",
                    "parameter_overrides": {"work_mem": "32MB"},
                    "cluster_parameter_overrides": {"log_statement": "mod"}}], SETTINGS)
    orders, ledger = result["instances"][0], result["clusters"][0]
    assert orders["instance_parameters"] == {"rds.force_ssl": "1", "log_statement": "ddl", "work_mem": "64MB"}
    assert ledger["db_cluster_parameter_group_name"] == "ledger-aurora-postgresql15"
    assert ledger["db_parameter_group_name"] == "ledger-aurora-postgresql15"
    assert ledger["instance_parameters"] == {"work_mem": "32MB"}
    assert ledger["cluster_parameters"] == {"rds.force_ssl": "1", "log_statement": "mod"}
    assert "cluster_parameters" not in orders and result["problems"] == []


@pytest.mark.parametrize(
    "force_ssl, audit, expected",
    [
        (True, "ddl", {"rds.force_ssl": "1", "log_statement": "ddl"}),
        (False, "none", {"rds.force_ssl": "0", "log_statement": "none"}),
        (True, "pgaudit", {"rds.force_ssl": "1", "log_statement": "none",
                           "shared_preload_libraries": "pg_stat_statements,pgaudit", "pgaudit.log": "ddl,role",
                           "pgaudit.log_parameter": "0", "pgaudit.log_catalog": "0"}),
    ],
)
def test_security_parameters(force_ssl, audit, expected):
    assert security_parameters(force_ssl, audit) == expected


def test_everything_created_carries_the_marker_tag_with_the_declaration_name():
    result = plan([{"name": "orders", "engine_version": "15.7", "db_instance_class": "db.r6g.large",
                    "tags": {"team": "payments"}}], [], SETTINGS)
    assert result["instances"][0]["resource_tags"] == {"managed_by": "role", "team": "payments", MARKER_TAG: "orders"}
    assert result["instances"][0]["tags"] == {"team": "payments"}
    forged = plan([{"name": "orders", "engine_version": "15.7", "db_instance_class": "db.r6g.large",
                    "tags": {MARKER_TAG: "other"}}], [], dict(SETTINGS, tags={MARKER_TAG: "x"}))
    assert forged["instances"][0]["resource_tags"] == {MARKER_TAG: "orders"}


VERSIONS = [{"engine": "postgres", "engine_version": v} for v in ("15.5", "15.7", "16.3")] + [
    {"engine": "aurora-postgresql", "engine_version": "15.4"}]
ORDERABLE = [{"engine": "postgres", "engine_version": "15.7", "db_instance_class": c}
             for c in ("db.r6g.large", "db.t4g.medium")]


def test_offered_engine_versions_and_classes():
    assert offering_problems([instance(), cluster()], VERSIONS, None) == []
    found = offering_problems([instance(engine_version="15.99")], VERSIONS, None)
    assert len(found) == 1 and "postgres 15.99 is not offered" in found[0] and "15.5, 15.7" in found[0]
    assert "engine_version" in found[0]
    found = offering_problems([instance(db_instance_class="db.r6g.xlarge")], VERSIONS, ORDERABLE)
    assert len(found) == 1 and "does not offer db.r6g.xlarge for postgres 15.7" in found[0]
    assert "db.r6g.large" in found[0]
    assert offering_problems([instance()], None, None) == []
    assert offering_problems([instance(engine_version="15")], VERSIONS, ORDERABLE) == []
    assert "not offered" in offering_problems([instance(engine_version="14")], VERSIONS, None)[0]


def test_plan_checks_offerings_only_once_the_declarations_are_valid():
    declared = [{"name": "orders", "engine_version": "14.1", "db_instance_class": "db.r6g.large"}]
    assert any("not offered" in m for m in plan(declared, [], SETTINGS, {"engine_versions": VERSIONS})["problems"])
    assert plan(declared, [], SETTINGS, {})["problems"] == []
    bad = [dict(declared[0], backup_retention_period=50)]
    found = plan(bad, [], SETTINGS, {"engine_versions": VERSIONS})["problems"]
    assert len(found) == 1 and "backup_retention_period" in found[0]


def _marked(name, **fields):
    return dict(fields, tags={MARKER_TAG: name})


def test_destroy_removes_only_what_carries_the_marker():
    items = [instance(), cluster()]
    instance_info = [_marked("orders", db_instance_identifier="orders", deletion_protection=True),
                     _marked("orders", db_instance_identifier="orders-replica-1",
                             read_replica_source_db_instance_identifier="orders"),
                     _marked("ledger", db_instance_identifier="ledger-1", db_cluster_identifier="ledger"),
                     {"db_instance_identifier": "someone-else", "tags": {}}]
    cluster_info = [_marked("ledger", db_cluster_identifier="ledger")]
    groups = {"parameter_groups": [{"db_parameter_group_name": "orders-postgres15", "tags": {MARKER_TAG: "orders"}}],
              "cluster_parameter_groups": [{"db_cluster_parameter_group_name": "ledger-aurora-postgresql15",
                                            "tags": [{"Key": MARKER_TAG, "Value": "ledger"}]}],
              "security_groups": [{"group_name": "orders-db", "group_id": "sg-1", "tags": {MARKER_TAG: "orders"}}]}
    result = destroy_plan(items, ["orders", "ledger"], instance_info, cluster_info, groups)
    assert result["problems"] == []
    assert [db["db_instance_identifier"] for db in result["instances"]] == ["orders"]
    assert [db["db_instance_identifier"] for db in result["members"]] == ["orders-replica-1", "ledger-1"]
    assert [c["db_cluster_identifier"] for c in result["clusters"]] == ["ledger"]
    assert [(g["kind"], g["name"]) for g in result["groups"]] == [
        ("DB parameter group", "orders-postgres15"), ("security group", "orders-db"),
        ("DB cluster parameter group", "ledger-aurora-postgresql15")]
    assert [d["name"] for d in result["declarations"]] == ["orders", "ledger"]


@pytest.mark.parametrize(
    "confirmed, instance_info, groups, fragment",
    [
        ([], [], {}, "rds_provision_confirm_destroy is empty"),
        (["other"], [], {}, "names ['other'], which are not declared"),
        (["orders"], [{"db_instance_identifier": "orders", "tags": {"managed_by": "dbre.rds.rds_provision"}}], {},
         "DB instance orders has no tag dbre.rds:rds_provision=orders"),
        (["orders"], [_marked("ledger", db_instance_identifier="orders")], {},
         "DB instance orders has no tag dbre.rds:rds_provision=orders"),
        (["orders"], [_marked("orders", db_instance_identifier="orders"),
                      {"db_instance_identifier": "orders-manual",
                       "read_replica_source_db_instance_identifier": "orders"}],
         {}, "DB instance orders-manual has no tag"),
        (["orders"], [], {"security_groups": [{"group_name": "orders-db", "group_id": "sg-1", "tags": {}}]},
         "security group orders-db has no tag"),
    ],
)
def test_destroy_refuses_and_removes_nothing(confirmed, instance_info, groups, fragment):
    result = destroy_plan([instance()], confirmed, instance_info, [], groups)
    assert any(fragment in message for message in result["problems"]), result["problems"]
    assert result["problems"][-1] == "Nothing was removed."
    assert result["instances"] == result["members"] == result["clusters"] == result["groups"] == []
    assert result["declarations"] == []

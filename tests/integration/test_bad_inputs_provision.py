# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_provision refuses bad declarations before its first mutating call, naming the problem and the fix.

Every case runs through the role in one playbook (tests/integration/bad_inputs.py); for each, the error must name
the problem, the lab's call log must show only reads, and nothing of what the role makes may exist afterwards (the
shared snapshot covers RDS; ``role_resources`` adds subnet groups, security groups, secrets and IAM roles). Bad DR
declarations (``dr:``, us-east-1 primary, us-west-2 DR region) run in the same playbook, against two DB instances made
by hand in us-west-2 under the names DR copies would take.
"""

import pytest

from tests.integration.bad_inputs import assert_all_refused
from tests.integration.bad_inputs import run_cases
from tests.integration.bad_inputs import run_role_cases
from tests.integration.test_rds_provision import network

ROLE = "dbre.rds.rds_provision"
INSTANCE = {"name": "orders", "engine_version": "15.7", "db_instance_class": "db.t4g.medium"}
CLUSTER = {"name": "ledger", "engine_version": "15.4", "db_instance_class": "db.r6g.large"}
MARKER = "dbre.rds:rds_provision"
PRIMARY, DR = "us-east-1", "us-west-2"
DR_INSTANCE = dict(INSTANCE, multi_az=False, deletion_protection=False, monitoring_interval=0,
                   enable_performance_insights=False, dr={"region": DR, "deletion_protection": True,
                                                          "tags": {"tier": "dr"}})
DR_CLUSTER = dict(CLUSTER, instances=1, deletion_protection=False, monitoring_interval=0,
                  enable_performance_insights=False, dr={"region": DR, "instances": 1})


def instance(**changes):
    return {"rds_provision_instances": [dict(INSTANCE, **changes)]}


def cluster(**changes):
    return {"rds_provision_clusters": [dict(CLUSTER, **changes)]}


CASES = [
    {"id": "retention_outside_1_35", "vars": instance(backup_retention_period=40),
     "expect": ["rds_provision_instances[0] (orders).backup_retention_period", "set a value between 1 and 35"]},
    {"id": "windows_overlap",
     "vars": instance(preferred_backup_window="04:00-05:00", preferred_maintenance_window="sun:04:30-sun:05:30"),
     "expect": ["preferred_backup_window '04:00-05:00' overlaps preferred_maintenance_window", "move one of them"]},
    {"id": "replicas_with_retention_0", "vars": instance(replicas=2, backup_retention_period=0),
     "expect": ["rds_provision_instances[0] (orders).replicas",
                "set backup_retention_period between 1 and 35, or replicas: 0"]},
    {"id": "engine_not_postgresql", "vars": instance(engine="mysql"),
     "expect": ["engine", "must be one of: postgres", "rds_provision_instances"]},
    {"id": "cluster_engine_not_postgresql", "vars": cluster(engine="aurora-mysql", engine_version="8.0"),
     "expect": ["engine", "must be one of: aurora-postgresql", "rds_provision_clusters"]},
    {"id": "unknown_class", "vars": instance(db_instance_class="db.t4g.mediun"),
     "expect": ["rds_provision_instances[0] (orders).db_instance_class", "not a known RDS instance class",
                "did you mean db.t4g.medium"]},
    {"id": "missing_subnets", "vars": dict(instance(), rds_provision_subnet_ids=[]),
     "expect": ["rds_provision_instances[0] (orders).subnet_ids is empty", "at least two private subnets"]},
    {"id": "unknown_subnet", "vars": dict(instance(), rds_provision_subnet_ids=["subnet-00000000000000000"]),
     "expect": ["subnet-00000000000000000 not found", "give existing private subnet IDs"]},
    {"id": "empty_name", "vars": instance(name=""),
     "expect": ["rds_provision_instances[0].name is empty", "give each database an RDS identifier"]},
    {"id": "blank_name", "vars": cluster(name="   "),
     "expect": ["rds_provision_clusters[0].name is empty", "give each database an RDS identifier"]},
    {"id": "name_not_an_identifier", "vars": instance(name="orders_db"),
     "expect": ["(orders_db).name: 'orders_db' is not a valid RDS identifier", "letters, digits or hyphens"]},
    {"id": "member_identifier_too_long", "vars": instance(name="o" * 60, replicas=1),
     "expect": [f"member identifier '{'o' * 60}-replica-1'", "shorten the name to 53 characters"]},
    {"id": "same_name_twice", "vars": dict(instance(), **cluster(name="Orders")),
     "expect": ["rds_provision_clusters[0] (Orders).name", "declared twice", "give each database its own name"]},
    {"id": "storage_below_gp3_minimum", "vars": instance(allocated_storage=10),
     "expect": ["(orders).allocated_storage: 10 GiB", "gp3 storage takes (20-65536 GiB)"]},
    {"id": "io1_without_iops", "vars": instance(storage_type="io1", allocated_storage=200),
     "expect": ["(orders).iops is missing", "io1 storage needs provisioned IOPS"]},
    {"id": "gp3_iops_below_400_gib", "vars": instance(allocated_storage=100, iops=12000),
     "expect": ["gp3 below 400 GiB has a fixed baseline", "allocate 400 GiB or more"]},
    {"id": "autoscaling_above_gp3_maximum", "vars": instance(max_allocated_storage=70000),
     "expect": ["(orders).max_allocated_storage: 70000 GiB is above gp3's 65536 GiB", "lower it"]},
    {"id": "too_many_replicas", "vars": instance(replicas=16),
     "expect": ["(orders).replicas: 16 is outside 0-15", "between 0 and 15"]},
    {"id": "cluster_without_members", "vars": cluster(instances=0),
     "expect": ["(ledger).instances: 0 is outside 1-16", "between 1 and 16"]},
    {"id": "parameter_group_name_invalid", "vars": instance(db_parameter_group_name="orders_params"),
     "expect": ["(orders).db_parameter_group_name: 'orders_params' is not a valid parameter group name"]},
    {"id": "cluster_parameter_group_is_default",
     "vars": cluster(db_cluster_parameter_group_name="default.aurora-postgresql15"),
     "expect": ["(ledger).db_cluster_parameter_group_name: 'default.aurora-postgresql15' is an RDS default group",
                "name a group of your own"]},
    {"id": "serverless_without_capacity", "vars": cluster(db_instance_class="db.serverless"),
     "expect": ["serverless_v2_scaling_configuration needs min_capacity and max_capacity"]},
    {"id": "audit_logging_unknown", "vars": dict(instance(), rds_provision_audit_logging="everything"),
     "expect": ["rds_provision_audit_logging", "must be one of: none, ddl, pgaudit"]},
    {"id": "engine_version_not_offered", "vars": instance(engine_version="15.99"),
     "expect": ["(orders).engine_version: postgres 15.99 is not offered", "give an offered engine_version"]},
    {"id": "proxy_max_connections_0", "vars": instance(proxy={"enabled": True, "max_connections_percent": 0}),
     "expect": ["(orders).proxy.max_connections_percent: 0 is outside 1-100", "give a whole number between 1 and 100"]},
    {"id": "proxy_max_connections_101", "vars": cluster(proxy={"enabled": True, "max_connections_percent": 101}),
     "expect": ["rds_provision_clusters[0] (ledger).proxy.max_connections_percent: 101 is outside 1-100"]},
    {"id": "proxy_idle_above_max",
     "vars": instance(proxy={"enabled": True, "max_connections_percent": 40, "max_idle_connections_percent": 60}),
     "expect": ["(orders).proxy.max_idle_connections_percent: 60 is above max_connections_percent 40"]},
    {"id": "proxy_borrow_timeout_out_of_range", "vars": dict(instance(proxy={"enabled": True}),
                                                             rds_provision_proxy={"connection_borrow_timeout": 7200}),
     "expect": ["(orders).proxy.connection_borrow_timeout: 7200 is outside 0-3600"]},
    {"id": "proxy_read_only_endpoint_on_instance",
     "vars": instance(proxy={"enabled": True, "read_only_endpoint": True}),
     "expect": ["(orders).proxy.read_only_endpoint", "set read_only_endpoint: false or declare an Aurora cluster"]},
    {"id": "proxy_with_master_password",
     "vars": instance(master_user_password="declared-password-1", proxy={"enabled": True}),
     "expect": ["(orders).proxy: the proxy logs in with the master secret the role keeps",
                "leave master_user_password out"]},
    {"id": "proxy_name_too_long", "vars": instance(name="o" * 56, proxy={"enabled": True}),
     "expect": [f"proxy.name: '{'o' * 56}-proxy' (<name>-proxy) is not a valid RDS Proxy name", "set proxy.name"]},
    {"id": "proxy_on_a_non_postgres_engine", "vars": instance(engine="mysql", proxy={"enabled": True}),
     "expect": ["engine", "must be one of: postgres", "rds_provision_instances"]},
]


DESTROY_CASES = [
    {"id": "destroy_unconfirmed", "vars": dict(instance(), rds_provision_confirm_destroy=[]),
     "expect": ["rds_provision_confirm_destroy is empty", "Nothing was removed."]},
    {"id": "destroy_undeclared_name", "vars": dict(instance(), rds_provision_confirm_destroy=["orders", "billing"]),
     "expect": ["rds_provision_confirm_destroy names ['billing'], which are not declared", "give names from ['orders']",
                "Nothing was removed."]},
    {"id": "destroy_hand_made_instance", "vars": dict(instance(name="legacy"), rds_provision_confirm_destroy="legacy"),
     "expect": ["DB instance legacy has no tag dbre.rds:rds_provision=legacy", "did not create it",
                "Nothing was removed."]},
]


DR_CASES = [
    {"id": "dr_same_region",
     "vars": {"rds_provision_clusters": [], "rds_provision_instances": [dict(DR_INSTANCE, dr={"region": PRIMARY})]},
     "expect": ["rds_provision_instances[orders].dr.region: us-east-1 is the primary's own region",
                "choose another region"]},
    {"id": "dr_unknown_region_and_bad_names",
     "vars": {"rds_provision_instances": [dict(DR_INSTANCE, dr={"region": "us-mars-1", "identifier": "orders--dr"})],
              "rds_provision_clusters": [dict(DR_CLUSTER, dr={"region": DR, "instances": 0})]},
     "expect": ['rds_provision_instances[orders].dr.region: "us-mars-1" is not a region this account offers',
                "choose one of", "us-west-2",
                'rds_provision_instances[orders].dr.identifier: "orders--dr" is not a valid RDS identifier',
                "rds_provision_clusters[ledger].dr.instances: 0 is not 1 to 16"]},
    {"id": "dr_cluster_key_on_an_instance",
     "vars": {"rds_provision_clusters": [],
              "rds_provision_instances": [dict(DR_INSTANCE, dr={"region": DR, "instances": 2})]},
     "expect": ["rds_provision_instances", "dr", "instances"]},
    {"id": "dr_no_region",
     "vars": {"rds_provision_instances": [], "rds_provision_clusters": [dict(DR_CLUSTER, dr={"instances": 1})]},
     "expect": ["missing required arguments: region", "rds_provision_clusters", "dr"]},
    {"id": "dr_identifier_taken_by_a_resource_the_role_did_not_make",
     "vars": {"rds_provision_clusters": [],
              "rds_provision_instances": [DR_INSTANCE, dict(DR_INSTANCE, name="billing")]},
     "expect": ["rds_provision_instances[orders].dr: DB instance orders-dr already exists in us-west-2 "
                f"without the tag {MARKER}=orders", "will not take it over",
                "rename the declaration's dr.identifier, or remove the resource",
                "rds_provision_instances[billing].dr: DB instance billing-dr in us-west-2 is not a read "
                "replica of billing (it copies nothing; billing does not exist yet)"]},
]


def run_destroy_cases(lab, role, cases, play_vars=None):
    """Every case through the role's destroy entry point (playbooks/destroy_rds.yml runs the same)."""
    tasks = [{
        "name": f"case {case['id']}",
        "block": [{"name": f"{case['id']}: {role} destroy", "vars": case["vars"],
                   "ansible.builtin.include_role": {"name": role, "tasks_from": "destroy"}}],
        "rescue": [{"name": f"record {case['id']}", "ansible.builtin.set_fact": {
            "__bad_input_results": "{{ __bad_input_results | combine({'%s': {'failed': true, 'msg': "
                                   "(ansible_failed_result.msg | default('') | string)}}) }}" % case["id"]}}],
    } for case in cases]
    return run_cases(lab, tasks, play_vars)


def role_resources(lab):
    """What the role makes besides RDS databases and parameter groups (the harness's snapshot covers those)."""
    rds = lab.client("rds")
    return {
        "subnet_groups": rds.describe_db_subnet_groups()["DBSubnetGroups"],
        "cluster_parameter_groups": [group["DBClusterParameterGroupName"] for group in
                                     rds.describe_db_cluster_parameter_groups()["DBClusterParameterGroups"]
                                     if not group["DBClusterParameterGroupName"].startswith("default.")],
        "secrets": lab.client("secretsmanager").list_secrets()["SecretList"],
        "roles": lab.client("iam").list_roles()["Roles"],
        "security_groups": [group["GroupName"] for group in lab.client("ec2").describe_security_groups()[
            "SecurityGroups"] if group["GroupName"] not in ("default", "app")],
    }


@pytest.fixture
def fixtures(lab):
    lab.control.reset()
    try:
        yield network(lab)
    finally:
        lab.control.reset()


def test_at_least_fifteen_distinct_bad_inputs():
    every = CASES + DR_CASES + DESTROY_CASES
    assert len(CASES) >= 15 and len({case["id"] for case in every}) == len(every)


def test_every_bad_declaration_is_refused_naming_the_fix_with_only_reads_and_nothing_created(lab, fixtures):
    cases = [dict(case, vars=dict(fixtures, **case["vars"])) for case in CASES + DR_CASES]
    # Made by hand in the DR region under the names the DR declarations' copies would take: orders-dr untagged,
    # billing-dr carrying the marker but copying nothing. The role must refuse both, not adopt and modify them.
    west = lab.client("rds", region=DR)
    for name, tagged in (("orders-dr", []), ("billing-dr", [{"Key": MARKER, "Value": "billing"}])):
        west.create_db_instance(DBInstanceIdentifier=name, Engine="postgres", DBInstanceClass="db.t4g.micro",
                                MasterUsername="stray", MasterUserPassword="stray-password-1",
                                AllocatedStorage=20, Tags=tagged)
    before = role_resources(lab)
    results = assert_all_refused(lab, run_role_cases, ROLE, cases)
    assert role_resources(lab) == before == {"subnet_groups": [], "cluster_parameter_groups": [], "secrets": [],
                                             "roles": [], "security_groups": []}
    for case in CASES:
        message = results[case["id"]]["msg"]
        assert "nothing was created" in message.lower() or "must be one of" in message, (case["id"], message)


def test_destroy_refuses_unconfirmed_undeclared_and_hand_made_databases_removing_nothing(lab, fixtures):
    rds = lab.client("rds")
    rds.create_db_instance(DBInstanceIdentifier="legacy", Engine="postgres", EngineVersion="15.7",
                           DBInstanceClass="db.t4g.medium", AllocatedStorage=20, MasterUsername="dbadmin",
                           MasterUserPassword="hand-made-password", Tags=[{"Key": "team", "Value": "legacy"}])
    cases = [dict(case, vars=dict(fixtures, **case["vars"])) for case in DESTROY_CASES]
    assert_all_refused(lab, run_destroy_cases, ROLE, cases)
    assert [db["DBInstanceIdentifier"] for db in rds.describe_db_instances()["DBInstances"]] == ["legacy"]

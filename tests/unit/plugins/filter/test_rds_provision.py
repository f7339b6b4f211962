# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rds_provision role's one public filter, rds_provision_plan: what it returns as facts are added.

The decisions behind it are tested in tests/unit/plugins/module_utils/test_rds_provision.py.
"""

from ansible_collections.dbre.rds.plugins.filter.rds_provision import FilterModule
from tests.unit.plugins.module_utils.test_rds_provision import DEFAULTS as UTILS_DEFAULTS

DEFAULTS = dict(UTILS_DEFAULTS, replicas=1)
SETTINGS = {"instance_defaults": DEFAULTS, "cluster_defaults": DEFAULTS, "secret_prefix": "rds-provision/",
            "tags": {"managed_by": "dbre.rds.rds_provision"}, "force_ssl": True, "audit_logging": "ddl"}
INSTANCES = [{"name": "orders", "engine_version": "15.7", "db_instance_class": "db.r6g.large"}]
CLUSTERS = [{"name": "ledger", "engine_version": "15.4", "db_instance_class": "db.r6g.large"}]
SUBNETS = [{"subnet_id": "subnet-a", "vpc_id": "vpc-1", "availability_zone": "us-east-1a"},
           {"subnet_id": "subnet-b", "vpc_id": "vpc-1", "availability_zone": "us-east-1b"}]

plan = FilterModule().filters()["rds_provision_plan"]


def test_one_public_filter():
    assert sorted(FilterModule().filters()) == ["rds_provision_plan"]


def test_the_plan_from_declarations_alone():
    result = plan(INSTANCES, CLUSTERS, SETTINGS)
    assert result["problems"] == []
    assert [i["name"] for i in result["instances"]] == ["orders"]
    assert [c["name"] for c in result["clusters"]] == ["ledger"]
    assert [m["identifier"] for m in result["replicas"]] == ["orders-replica-1"]
    assert [m["availability_zone"] for m in result["cluster_members"]] == [None, None]
    assert "placement" not in result and "endpoints" not in result and "destroy" not in result


def test_the_plan_grows_with_the_facts():
    result = plan(INSTANCES, CLUSTERS, SETTINGS, {"subnets": SUBNETS, "instance_info": [], "cluster_info": []})
    assert result["placement"]["orders"]["availability_zones"] == ["us-east-1a", "us-east-1b"]
    assert [m["availability_zone"] for m in result["cluster_members"]] == ["us-east-1a", "us-east-1b"]
    assert result["existing"] == [] and result["endpoints"]["orders"]["exists"] is False
    destroy = plan(INSTANCES, CLUSTERS, dict(SETTINGS, confirm_destroy=[]), {"instance_info": []})["destroy"]
    assert destroy["problems"][0].startswith("rds_provision_confirm_destroy is empty")


def test_problems_include_the_subnets():
    result = plan(INSTANCES, [], SETTINGS, {"subnets": SUBNETS[:1]})
    assert any("subnet-b not found" in message for message in result["problems"])


def test_an_unknown_audit_logging_is_a_problem():
    found = plan(INSTANCES, [], dict(SETTINGS, audit_logging="all"))["problems"]
    assert found == ["rds_provision_audit_logging: 'all' is not one of none, ddl, pgaudit; choose one."]

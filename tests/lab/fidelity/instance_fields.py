# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""DB instance fields moto 5.2.5 drops or leaves out, described as AWS describes them:
Performance Insights settings, the gp3 baseline IOPS and throughput, and the default DB subnet group."""

from __future__ import annotations

from moto.ec2.models import ec2_backends
from moto.rds.models import DBInstance

from tests.lab.fidelity._support import replace

GP3_BASELINE_SMALL = (3000, 125)  # below 400 GiB (RDS for PostgreSQL)
GP3_BASELINE_LARGE = (12000, 500)  # at or above 400 GiB
GP3_LARGE_GIB = 400
DEFAULT_PI_RETENTION_DAYS = 7


def _default_pi_kms_key(database) -> str:
    return f"arn:aws:kms:{database.region}:{database.account_id}:key/aws-rds-default"


def _settle_performance_insights(database) -> None:
    """Retention and KMS key default when Performance Insights is on; both clear when it is off (as on AWS)."""
    enabled = bool(database.__dict__.get("enable_performance_insights"))
    database.__dict__["enable_performance_insights"] = enabled
    if enabled:
        if not database.__dict__.get("performance_insights_retention_period"):
            database.__dict__["performance_insights_retention_period"] = DEFAULT_PI_RETENTION_DAYS
        if not database.__dict__.get("performance_insights_kms_key_id"):
            database.__dict__["performance_insights_kms_key_id"] = _default_pi_kms_key(database)
    else:
        database.__dict__["performance_insights_retention_period"] = None
        database.__dict__["performance_insights_kms_key_id"] = None


def _settle_gp3_baseline(database, given: dict) -> None:
    """gp3 below 400 GiB describes 3000 IOPS / 125 MiB/s, at or above 12000 / 500, unless the caller set them."""
    if getattr(database, "storage_type", None) != "gp3":
        database.__dict__.pop("_lab_gp3_baseline", None)
        return
    baseline = GP3_BASELINE_LARGE if (database.allocated_storage or 0) >= GP3_LARGE_GIB else GP3_BASELINE_SMALL
    derived = database.__dict__.setdefault("_lab_gp3_baseline", {"iops": True, "throughput": True})
    if given.get("iops"):
        derived["iops"] = False
    if given.get("storage_throughput"):
        derived["throughput"] = False
    if derived["iops"] or not database.iops:
        database.iops = baseline[0]
    if derived["throughput"] or not database.storage_throughput:
        database.storage_throughput = baseline[1]


def _default_subnet_group(database):
    """The default VPC's ``default`` DB subnet group, made on first use as AWS has it in every account."""
    backend = database.backend
    group = backend.subnet_groups.get("default")
    if group is None:
        ec2 = ec2_backends[database.account_id][database.region]
        vpc = ec2.default_vpc
        subnets = [s for s in ec2.describe_subnets() if vpc is not None and s.vpc_id == vpc.id]
        if not subnets:
            return None
        group = backend.create_subnet_group("default", "default", subnets, [])
    return group


def _performance_insights_enabled(self) -> bool:
    return bool(self.__dict__.get("enable_performance_insights"))


_ORIGINAL_INIT = DBInstance.__init__
_ORIGINAL_UPDATE = DBInstance.update


def _init(self, *args, **kwargs):
    _ORIGINAL_INIT(self, *args, **kwargs)
    self.__dict__["enable_performance_insights"] = kwargs.get("enable_performance_insights", False)
    self.__dict__["performance_insights_retention_period"] = kwargs.get("performance_insights_retention_period")
    self.__dict__["performance_insights_kms_key_id"] = kwargs.get("performance_insights_kms_key_id")
    _settle_performance_insights(self)
    if getattr(self, "db_cluster_identifier", None) is None:
        _settle_gp3_baseline(self, kwargs)
        if getattr(self, "db_subnet_group", None) is None:
            group = _default_subnet_group(self)
            if group is not None:
                self.db_subnet_group = group


def _update(self, *args, **db_kwargs):
    _ORIGINAL_UPDATE(self, *args, **db_kwargs)
    _settle_performance_insights(self)
    if getattr(self, "db_cluster_identifier", None) is None:
        _settle_gp3_baseline(self, db_kwargs)


def performance_insights() -> None:
    """EnablePerformanceInsights, PerformanceInsightsRetentionPeriod and PerformanceInsightsKMSKeyId are kept by
    create and modify and described as PerformanceInsightsEnabled etc."""
    replace(DBInstance, "performance_insights_enabled", property(_performance_insights_enabled))


def instance_defaults_as_aws() -> None:
    """Create and modify settle what AWS derives: Performance Insights defaults, the gp3 baseline and the default
    DB subnet group."""
    replace(DBInstance, "__init__", _init)
    replace(DBInstance, "update", _update)

# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Engine versions and orderable instance options as RDS has them for PostgreSQL 15 and 18 and Aurora PostgreSQL 15.

- ``engine_versions``: DescribeDBEngineVersions (moto 5.2.5 has none) lists the 15.x and 18.x versions of
  ``postgres`` (families ``postgres15`` and ``postgres18``) and the 15.x versions of ``aurora-postgresql`` (family
  ``aurora-postgresql15``), each with its ``ValidUpgradeTarget``: every later minor of its major
  (``IsMajorVersionUpgrade`` false) and, from 15.x, every 18.x (``IsMajorVersionUpgrade`` true); never a downgrade.
  CreateDBInstance / CreateDBCluster with a version RDS does not offer is
  ``InvalidParameterCombination: Cannot find version 15.99 for postgres``; a major version alone ("15", "18") means
  that major's default version, as on RDS. A new ``postgres`` instance of an 18.x version runs the lab's PostgreSQL
  18 (tests/lab/pg18.py: a fresh 18 cluster; restores of an 18 snapshot restore 18 by themselves); a new Aurora
  cluster of any other major than 15 is refused (InvalidParameterCombination naming the lab) rather than served by a
  15 that says otherwise. Upgrades of instances: tests/lab/fidelity/upgrades.py.
- ``orderable_instance_options``: DescribeOrderableDBInstanceOptions (moto 5.2.5 answers Aurora only, from a stale
  file) lists the classes of the collection's class table (``plugins/module_utils/instance_classes.py``) each engine
  offers, per version and storage type, with ``MaxRecords``/``Marker``; CreateDBInstance with a known class the engine
  does not offer is ``InvalidParameterCombination: RDS does not support creating a DB instance with the following
  combination: DBInstanceClass=..., Engine=..., EngineVersion=..., LicenseModel=...``.

Only PostgreSQL engines are described: other engines (mysql) answer empty lists and are not checked.
"""

from __future__ import annotations

from moto.rds import responses as rds_responses
from moto.rds.exceptions import InvalidParameterCombination, RDSClientError
from moto.rds.models import RDSBackend

from tests.lab import pg18
from tests.lab.collection import instance_classes
from tests.lab.fidelity._support import replace
from tests.lab.fidelity.lifecycle import AZS, DEFAULT_VERSIONS

# The 15.x minor versions RDS has offered (15.9 and 15.11 never reached RDS PostgreSQL); the 18.x ones from the first
# RDS offered (18.1) to the one the lab's PostgreSQL 18 binaries are (tests/lab/pg18.py).
VERSIONS = {
    "postgres": ("15.2", "15.3", "15.4", "15.5", "15.6", "15.7", "15.8", "15.10", "15.12", "15.13",
                 "18.1", "18.2", "18.3", "18.4", "18.5", pg18.VERSION),
    "aurora-postgresql": ("15.2", "15.3", "15.4", "15.5", "15.6", "15.7", "15.8", "15.10"),
}
# A major version's default minor, for the majors other than the engine's default one (DEFAULT_VERSIONS).
MAJOR_DEFAULTS = {("postgres", pg18.MAJOR): pg18.VERSION}
# The majors the lab runs behind a new DB instance or cluster (tests/lab/postgres.py: Debian's PostgreSQL 15, and the
# wheel's 18 for instances).
LAB_RUNS = {"postgres": ("15", pg18.MAJOR), "aurora-postgresql": ("15",)}
LICENSE_MODEL = "postgresql-license"
# Class families each engine offers; Aurora has no m classes and no burstable class below medium.
_CLASS_FAMILIES = {
    "postgres": ("t3", "t4g", "m5", "m6g", "m6i", "m7g", "r5", "r6g", "r6i", "r7g", "x2g"),
    "aurora-postgresql": ("r5", "r6g", "r6i", "r7g", "x2g"),
}
_AURORA_BURSTABLE = ("db.t3.medium", "db.t4g.medium", "db.t4g.large")
_STORAGE = {"postgres": ("gp2", "gp3", "io1"), "aurora-postgresql": ("aurora",)}


def _version_key(version: str) -> tuple:
    return tuple(int(part) for part in version.split("."))


def major_of(version: str) -> str:
    return version.split(".")[0]


def family_of(engine: str, version: str) -> str:
    """The parameter group family of an engine version: postgres 18.6 is ``postgres18``."""
    return f"{engine}{major_of(version)}"


def default_version(engine: str, major: str | None = None) -> str | None:
    """The version RDS picks for engine (and a major version alone); None when that major is not offered."""
    default = DEFAULT_VERSIONS[engine]
    if major is None or major_of(default) == major:
        return default
    return MAJOR_DEFAULTS.get((engine, major))


def instance_classes_of(engine: str) -> list[str]:
    """The DB instance classes RDS offers for engine (from the collection's class table), sorted."""
    families = _CLASS_FAMILIES.get(engine, ())
    classes = [name for name in instance_classes.INSTANCE_CLASSES if name.split(".")[1] in families]
    if engine == "aurora-postgresql":
        classes += list(_AURORA_BURSTABLE) + [instance_classes.SERVERLESS_CLASS]
    return sorted(set(classes))


def resolve_version(engine: str, version: str | None) -> str | None:
    """The full version RDS would use for engine and version ("15" is the default 15.x); None when not offered."""
    offered = VERSIONS.get(engine)
    if offered is None:
        return version
    if not version:
        return DEFAULT_VERSIONS[engine]
    if version in offered:
        return version
    if "." not in version:
        return default_version(engine, version)
    return None


def engine_version_rows(engine: str | None = None, version: str | None = None, family: str | None = None,
                        default_only: bool = False) -> list[dict]:
    rows = []
    for name, versions in VERSIONS.items():
        if engine and engine != name:
            continue
        default = default_version(name, major_of(version) if version else None)
        for current in versions:
            if family and family != family_of(name, current):
                continue
            if version and not (current == version or current.startswith(version + ".")):
                continue
            if default_only and current != default:
                continue
            rows.append(_engine_version(name, current))
    return rows


def _engine_version(engine: str, version: str) -> dict:
    aurora = engine == "aurora-postgresql"
    later = [v for v in VERSIONS[engine] if _version_key(v) > _version_key(version)]
    return {
        "Engine": engine,
        "EngineVersion": version,
        "MajorEngineVersion": major_of(version),
        "DBParameterGroupFamily": family_of(engine, version),
        "DBEngineDescription": "Aurora (PostgreSQL)" if aurora else "PostgreSQL",
        "DBEngineVersionDescription": (f"Aurora PostgreSQL (Compatible with PostgreSQL {version})" if aurora
                                       else f"PostgreSQL {version}-R1"),
        "ValidUpgradeTarget": [{
            "Engine": engine, "EngineVersion": target, "AutoUpgrade": False,
            "IsMajorVersionUpgrade": major_of(target) != major_of(version),
            "Description": (f"Aurora PostgreSQL (Compatible with PostgreSQL {target})" if aurora
                            else f"PostgreSQL {target}-R1"),
        } for target in later],
        "ExportableLogTypes": ["postgresql"] if aurora else ["postgresql", "upgrade"],
        "SupportsLogExportsToCloudwatchLogs": True,
        "SupportsReadReplica": True,
        "SupportedEngineModes": ["provisioned"],
        "SupportedFeatureNames": ["Lambda", "s3Export", "s3Import"],
        "Status": "available",
        "SupportsParallelQuery": False,
        "SupportsGlobalDatabases": aurora,
        "SupportsBabelfish": False,
        "SupportsCertificateRotationWithoutRestart": True,
    }


def orderable_rows(engine: str, version: str | None = None, instance_class: str | None = None,
                   license_model: str | None = None, vpc: bool | None = None) -> list[dict]:
    if engine not in VERSIONS or (license_model and license_model != LICENSE_MODEL) or vpc is False:
        return []
    rows = []
    versions = [v for v in VERSIONS[engine] if not version or v == version or v.startswith(version + ".")]
    for current in versions:
        for name in instance_classes_of(engine):
            if instance_class and name != instance_class:
                continue
            for storage in _STORAGE[engine]:
                rows.append(_orderable(engine, current, name, storage))
    return rows


def _orderable(engine: str, version: str, instance_class: str, storage: str) -> dict:
    aurora = engine == "aurora-postgresql"
    row = {
        "Engine": engine, "EngineVersion": version, "DBInstanceClass": instance_class,
        "LicenseModel": LICENSE_MODEL, "AvailabilityZoneGroup": "us-east-1",
        "AvailabilityZones": [{"Name": az} for az in AZS],
        "MultiAZCapable": not aurora, "ReadReplicaCapable": True, "Vpc": True,
        "SupportsStorageEncryption": True, "StorageType": storage,
        "SupportsIops": storage in ("io1", "gp3"), "SupportsStorageThroughput": storage == "gp3",
        "SupportsEnhancedMonitoring": True, "SupportsIAMDatabaseAuthentication": True,
        "SupportsPerformanceInsights": True, "SupportedEngineModes": ["provisioned"],
        "SupportsStorageAutoscaling": not aurora, "SupportsKerberosAuthentication": True,
        "OutpostCapable": False, "SupportsGlobalDatabases": aurora, "SupportedNetworkTypes": ["IPV4", "DUAL"],
        "SupportsClusters": False,
    }
    if not aurora:
        row.update(MinStorageSize=20, MaxStorageSize=65536)
        if storage == "io1":
            row.update(MinIopsPerDbInstance=1000, MaxIopsPerDbInstance=256000, MinIopsPerGib=1.0, MaxIopsPerGib=50.0)
    return row


def _page(params: dict, items: list, upper: int) -> tuple[list, str | None]:
    max_records = params.get("MaxRecords")
    max_records = 100 if max_records is None else int(max_records)
    if not 20 <= max_records <= upper:
        raise RDSClientError("InvalidParameterValue",
                             f"Invalid value {max_records} for MaxRecords. Must be between 20 and {upper}")
    marker = params.get("Marker")
    try:
        offset = int(marker) if marker else 0
    except ValueError:
        raise RDSClientError("InvalidParameterValue", f"Invalid marker: {marker}") from None
    page = items[offset: offset + max_records]
    return page, str(offset + max_records) if offset + max_records < len(items) else None


def _is_true(value) -> bool:
    return str(value).lower() in ("true", "1")


def check_engine_version(engine: str | None, version: str | None) -> str | None:
    """The version to use; InvalidParameterCombination when RDS does not offer it for a PostgreSQL engine."""
    if engine not in VERSIONS:
        return version
    resolved = resolve_version(engine, version)
    if resolved is None:
        raise InvalidParameterCombination(f"Cannot find version {version} for {engine}")
    if major_of(resolved) not in LAB_RUNS[engine]:
        raise InvalidParameterCombination(
            f"The dbre.rds lab runs PostgreSQL {', '.join(LAB_RUNS[engine])} behind new resources: {engine} "
            f"{resolved} is listed by DescribeDBEngineVersions to plan upgrades, not created.")
    return resolved


def _new_cluster_factory(db_kwargs: dict, major: str):
    """A new instance's PostgreSQL of ``major`` (lifecycle.create_db_instance's ``pg_factory``): a fresh cluster."""

    def factory(name, settings):
        from tests.lab import postgres
        from tests.lab.fidelity._support import lab
        pg = postgres.PgCluster(lab().root, name, major=major)
        try:
            pg.initialize(db_kwargs.get("master_username") or "postgres",
                          db_kwargs.get("master_user_password") or "lab-password", db_kwargs.get("db_name"),
                          settings=settings)
        except BaseException:
            pg.destroy()
            raise
        return pg

    return factory


def check_orderable(engine: str | None, version: str | None, instance_class: str | None) -> None:
    """InvalidParameterCombination when RDS does not offer a known class for a PostgreSQL engine."""
    if engine not in VERSIONS or not instance_class:
        return
    if instance_class not in instance_classes.INSTANCE_CLASSES and instance_class != instance_classes.SERVERLESS_CLASS:
        return  # an unknown class is instance_class_memory's InvalidParameterValue
    if instance_class not in instance_classes_of(engine):
        raise InvalidParameterCombination(
            "RDS does not support creating a DB instance with the following combination: "
            f"DBInstanceClass={instance_class}, Engine={engine}, EngineVersion={version}, "
            f"LicenseModel={LICENSE_MODEL}. For supported combinations of instance class and "
            "database engine version, see the documentation.")


# --------------------------------------------------------------------------------------------------------------
# patches

def engine_versions() -> None:
    """DescribeDBEngineVersions for PostgreSQL 15 and 18 engines; unknown engine versions refused at create."""

    def describe_db_engine_versions(self):
        params = self.params
        rows = engine_version_rows(params.get("Engine"), params.get("EngineVersion"),
                                   params.get("DBParameterGroupFamily"), _is_true(params.get("DefaultOnly", False)))
        page, marker = _page(params, rows, 100)
        return rds_responses.ActionResult({"DBEngineVersions": page, "Marker": marker})

    original_create_instance = RDSBackend.create_db_instance
    original_create_cluster = RDSBackend.create_db_cluster

    def create_db_instance(self, db_kwargs, *args, **kwargs):
        engine, version = db_kwargs.get("engine"), db_kwargs.get("engine_version")
        cluster_id = db_kwargs.get("db_cluster_identifier")
        if version or not cluster_id:
            db_kwargs["engine_version"] = check_engine_version(engine, version)
        resolved = db_kwargs.get("engine_version")
        if (engine == "postgres" and not cluster_id and resolved and major_of(resolved) == pg18.MAJOR
                and not args and kwargs.get("pg_factory") is None):
            kwargs["pg_factory"] = _new_cluster_factory(db_kwargs, pg18.MAJOR)
        return original_create_instance(self, db_kwargs, *args, **kwargs)

    def create_db_cluster(self, kwargs, *args, **more):
        kwargs["engine_version"] = check_engine_version(kwargs.get("engine"), kwargs.get("engine_version"))
        return original_create_cluster(self, kwargs, *args, **more)

    replace(rds_responses.RDSResponse, "describe_db_engine_versions", describe_db_engine_versions)
    replace(RDSBackend, "create_db_instance", create_db_instance)
    replace(RDSBackend, "create_db_cluster", create_db_cluster)


def orderable_instance_options() -> None:
    """DescribeOrderableDBInstanceOptions from the collection's class table; classes an engine lacks refused."""

    def describe_orderable_db_instance_options(self):
        params = self.params
        engine = params.get("Engine")
        if not engine:
            raise RDSClientError("InvalidParameterValue", "The parameter Engine must be provided.")
        vpc = params.get("Vpc")
        rows = orderable_rows(engine, params.get("EngineVersion"), params.get("DBInstanceClass"),
                              params.get("LicenseModel"), None if vpc is None else _is_true(vpc))
        page, marker = _page(params, rows, 1000)
        return rds_responses.ActionResult({"OrderableDBInstanceOptions": page, "Marker": marker})

    original_create_instance = RDSBackend.create_db_instance

    def create_db_instance(self, db_kwargs, *args, **kwargs):
        engine, version = db_kwargs.get("engine"), db_kwargs.get("engine_version")
        cluster_id = db_kwargs.get("db_cluster_identifier")
        if not version and cluster_id and cluster_id in self.clusters:
            version = self.clusters[cluster_id].engine_version
        check_orderable(engine, resolve_version(engine, version) or version, db_kwargs.get("db_instance_class"))
        return original_create_instance(self, db_kwargs, *args, **kwargs)

    replace(rds_responses.RDSResponse, "describe_orderable_db_instance_options", describe_orderable_db_instance_options)
    replace(RDSBackend, "create_db_instance", create_db_instance)

# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure decisions of the rds_provision role: merged declarations, validation, member layout and the endpoint results.

Every function takes plain data (the role's declarations, boto3-shaped describe output) and returns plain data, so the
role's tasks stay declarative and these rules are tested with plain pytest.
"""

from __future__ import annotations

import re

from ansible_collections.dbre.rds.plugins.module_utils.instance_classes import INSTANCE_CLASSES
from ansible_collections.dbre.rds.plugins.module_utils.instance_classes import SERVERLESS_CLASS
from ansible_collections.dbre.rds.plugins.module_utils.instance_classes import closest_classes

ENGINES = {"instance": "postgres", "cluster": "aurora-postgresql"}
LIST_VARIABLE = {"instance": "rds_provision_instances", "cluster": "rds_provision_clusters"}
DAY_MINUTES = 24 * 60
WEEK_MINUTES = 7 * DAY_MINUTES
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PERFORMANCE_INSIGHTS_RETENTION = (7, 731)
IDENTIFIER = re.compile(r"^[a-zA-Z](?!.*--)[a-zA-Z0-9-]{0,62}(?<!-)$")
DAILY_WINDOW = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
WEEKLY_WINDOW = re.compile(r"^([a-z]{3}):(\d{2}):(\d{2})-([a-z]{3}):(\d{2}):(\d{2})$")


class WindowError(ValueError):
    """A backup or maintenance window that RDS would not accept."""


def family(engine, engine_version):
    """The parameter group family of an engine version: ``postgres15`` or ``aurora-postgresql15``."""
    major = str(engine_version).split(".", maxsplit=1)[0]
    return f"{engine}{major}"


def normalize(declarations, defaults, kind, secret_prefix="rds-provision/"):
    """Each declaration merged over the role-level defaults, with the names of what the role creates for it.

    Keys a declaration leaves out (or sets to null) take the default; ``kind`` is ``instance`` or ``cluster``.
    """
    merged = []
    for declaration in declarations or []:
        item = dict(defaults or {})
        item.update({key: value for key, value in (declaration or {}).items() if value is not None})
        name = item.get("name", "")
        item.setdefault("engine", ENGINES[kind])
        item["kind"] = kind
        item["family"] = family(item["engine"], item.get("engine_version", ""))
        item.setdefault("db_parameter_group_name", f"{name}-{item['family']}".replace(".", "-"))
        item.setdefault("db_subnet_group_name", f"{name}-subnets")
        item.setdefault("security_group_name", f"{name}-db")
        item["managed_secret"] = not item.get("master_user_password")
        item["master_secret_name"] = f"{secret_prefix}{name}/master"
        item["ingress_rules"] = [
            {"proto": "tcp", "ports": [item.get("port")], "group_id": group, "rule_desc": f"PostgreSQL from {group}"}
            for group in item.get("allowed_security_group_ids") or []
        ]
        merged.append(item)
    return merged


def parse_daily_window(window):
    """``hh:mm-hh:mm`` as (start, end) minutes of the day, ``end`` past 1440 when the window crosses midnight."""
    match = DAILY_WINDOW.match(str(window))
    if not match:
        raise WindowError(f"'{window}' is not hh:mm-hh:mm in UTC")
    start_h, start_m, end_h, end_m = (int(part) for part in match.groups())
    if max(start_h, end_h) > 23 or max(start_m, end_m) > 59:
        raise WindowError(f"'{window}' has an hour above 23 or a minute above 59")
    start, end = start_h * 60 + start_m, end_h * 60 + end_m
    if end <= start:
        end += DAY_MINUTES
    return start, end


def parse_weekly_window(window):
    """``ddd:hh:mm-ddd:hh:mm`` as (start, end) minutes of the week from Monday 00:00, ``end`` past a week if it wraps."""
    match = WEEKLY_WINDOW.match(str(window).lower())
    if not match:
        raise WindowError(f"'{window}' is not ddd:hh:mm-ddd:hh:mm in UTC (for example sun:05:00-sun:06:00)")
    start_day, start_h, start_m, end_day, end_h, end_m = match.groups()
    if start_day not in WEEKDAYS or end_day not in WEEKDAYS:
        raise WindowError(f"'{window}' names a day that is not one of {', '.join(WEEKDAYS)}")
    if max(int(start_h), int(end_h)) > 23 or max(int(start_m), int(end_m)) > 59:
        raise WindowError(f"'{window}' has an hour above 23 or a minute above 59")
    start = WEEKDAYS.index(start_day) * DAY_MINUTES + int(start_h) * 60 + int(start_m)
    end = WEEKDAYS.index(end_day) * DAY_MINUTES + int(end_h) * 60 + int(end_m)
    if end <= start:
        end += WEEK_MINUTES
    return start, end


def windows_overlap(backup_window, maintenance_window):
    """True when the daily backup window meets the weekly maintenance window on any day (RDS refuses that)."""
    backup_start, backup_end = parse_daily_window(backup_window)
    maintenance_start, maintenance_end = parse_weekly_window(maintenance_window)
    for day in range(-1, 8):
        start, end = day * DAY_MINUTES + backup_start, day * DAY_MINUTES + backup_end
        for shift in (-WEEK_MINUTES, 0, WEEK_MINUTES):
            if start < maintenance_end + shift and maintenance_start + shift < end:
                return True
    return False


def _window_problems(where, item):
    problems = []
    parsed = {}
    for key, parse in (("preferred_backup_window", parse_daily_window),
                       ("preferred_maintenance_window", parse_weekly_window)):
        try:
            start, end = parse(item.get(key))
        except WindowError as error:
            problems.append(f"{where}.{key}: {error}; write it in UTC, for example "
                            f"{'03:00-04:00' if key == 'preferred_backup_window' else 'sun:04:30-sun:05:30'}.")
            continue
        if end - start < 30:
            problems.append(f"{where}.{key}: '{item.get(key)}' lasts {end - start} minutes; RDS needs at least 30, "
                            "widen the window.")
        parsed[key] = True
    if len(parsed) == 2 and windows_overlap(item["preferred_backup_window"], item["preferred_maintenance_window"]):
        problems.append(
            f"{where}: preferred_backup_window '{item['preferred_backup_window']}' overlaps preferred_maintenance_window "
            f"'{item['preferred_maintenance_window']}'; move one of them so that the daily backup window ends before "
            "the maintenance window starts (for example backup 03:00-04:00 and maintenance sun:04:30-sun:05:30)."
        )
    return problems


def _class_problems(where, item):
    instance_class = item.get("db_instance_class")
    if not instance_class:
        return [f"{where}.db_instance_class is missing; give an RDS instance class such as db.r6g.large."]
    if instance_class not in INSTANCE_CLASSES and not (item["kind"] == "cluster" and instance_class == SERVERLESS_CLASS):
        closest = closest_classes(instance_class)
        hint = f"; did you mean {', '.join(closest)}?" if closest else "; use a current class such as db.r6g.large."
        return [f"{where}.db_instance_class: '{instance_class}' is not a known RDS instance class{hint}"]
    return []


def problems(instances, clusters):
    """Every mistake in the merged declarations, each naming the key and the fix; an empty list means valid."""
    found = []
    seen = {}
    for kind, items in (("instance", instances or []), ("cluster", clusters or [])):
        for index, item in enumerate(items):
            name = item.get("name", "")
            where = f"{LIST_VARIABLE[kind]}[{index}]" + (f" ({name})" if name else "")
            if not IDENTIFIER.match(str(name)):
                found.append(f"{where}.name: '{name}' is not a valid RDS identifier; use 1 to 63 letters, digits or "
                             "hyphens, starting with a letter, without two hyphens in a row or a hyphen at the end.")
            elif name in seen:
                found.append(f"{where}.name: '{name}' is declared twice (also {seen[name]}); give each database its "
                             "own name.")
            else:
                seen[name] = where
            if item.get("engine") != ENGINES[kind]:
                found.append(f"{where}.engine: '{item.get('engine')}' is not supported; this role builds PostgreSQL "
                             f"only, set engine: {ENGINES[kind]} (or leave it out).")
            if not str(item.get("engine_version", "")).strip():
                found.append(f"{where}.engine_version is missing; give a PostgreSQL version such as '15.7'.")
            found.extend(_class_problems(where, item))
            retention = item.get("backup_retention_period")
            if not isinstance(retention, int) or not 1 <= retention <= 35:
                found.append(f"{where}.backup_retention_period: {retention} is outside 1-35 days; set a value between "
                             "1 and 35 (the role's default is 30).")
            if kind == "instance" and int(item.get("replicas") or 0) > 0 and retention == 0:
                found.append(f"{where}.replicas: {item['replicas']} read replicas need automated backups, but "
                             "backup_retention_period is 0; set backup_retention_period between 1 and 35, or "
                             "replicas: 0.")
            found.extend(_window_problems(where, item))
            if not item.get("subnet_ids"):
                found.append(f"{where}.subnet_ids is empty; give the IDs of at least two private subnets in different "
                             "Availability Zones, in the declaration or in rds_provision_subnet_ids.")
            found.extend(_storage_problems(where, item) if kind == "instance" else _capacity_problems(where, item))
            pi_retention = item.get("performance_insights_retention_period")
            if item.get("enable_performance_insights") and pi_retention is not None and not (
                    pi_retention in PERFORMANCE_INSIGHTS_RETENTION or (pi_retention % 31 == 0 and 0 < pi_retention < 731)):
                found.append(f"{where}.performance_insights_retention_period: {pi_retention} is not accepted by RDS; "
                             "use 7, 731, or a multiple of 31 below 731.")
    return found


def _storage_problems(where, item):
    found = []
    storage_type = item.get("storage_type")
    if item.get("iops") and storage_type not in ("gp3", "io1", "io2"):
        found.append(f"{where}.iops is set but storage_type is {storage_type}; use storage_type gp3, io1 or io2, or "
                     "remove iops.")
    if item.get("storage_throughput") and storage_type != "gp3":
        found.append(f"{where}.storage_throughput is only for gp3 storage; set storage_type: gp3 or remove it.")
    maximum, allocated = item.get("max_allocated_storage"), item.get("allocated_storage")
    if maximum and allocated and maximum <= allocated:
        found.append(f"{where}.max_allocated_storage: {maximum} GiB is not above allocated_storage {allocated} GiB; "
                     "raise it to turn storage autoscaling on, or remove it.")
    return found


def _capacity_problems(where, item):
    scaling = item.get("serverless_v2_scaling_configuration") or {}
    if item.get("db_instance_class") != SERVERLESS_CLASS:
        return []
    low, high = scaling.get("min_capacity"), scaling.get("max_capacity")
    if low is None or high is None:
        return [f"{where}.serverless_v2_scaling_configuration needs min_capacity and max_capacity (ACUs) when "
                f"db_instance_class is {SERVERLESS_CLASS}; for example {{min_capacity: 0.5, max_capacity: 8}}."]
    if not 0 <= float(low) <= float(high) <= 256 or float(high) < 1:
        return [f"{where}.serverless_v2_scaling_configuration: min_capacity {low} and max_capacity {high} must satisfy "
                "0 <= min_capacity <= max_capacity <= 256 and max_capacity >= 1; fix the range."]
    return []


def placement(items, subnets):
    """Per declaration name, the ``vpc_id`` and ``availability_zones`` of its subnets.

    ``subnets`` is the ``subnets`` list of amazon.aws's ``ec2_vpc_subnet_info`` (snake_case boto3 data).
    """
    by_id = {subnet["subnet_id"]: subnet for subnet in subnets or []}
    result = {}
    for item in items or []:
        found = [by_id[subnet_id] for subnet_id in item.get("subnet_ids") or [] if subnet_id in by_id]
        result[item["name"]] = {
            "vpc_id": found[0]["vpc_id"] if found else None,
            "availability_zones": sorted({subnet["availability_zone"] for subnet in found}),
        }
    return result


def placement_problems(items, subnets):
    """Subnets that do not exist, span several VPCs, or cover fewer than two Availability Zones."""
    by_id = {subnet["subnet_id"]: subnet for subnet in subnets or []}
    found = []
    for index, item in enumerate(items or []):
        where = f"{LIST_VARIABLE[item['kind']]}[{index}] ({item['name']})"
        missing = [subnet_id for subnet_id in item.get("subnet_ids") or [] if subnet_id not in by_id]
        if missing:
            found.append(f"{where}.subnet_ids: {', '.join(missing)} not found in this account and region; give "
                         "existing private subnet IDs.")
            continue
        chosen = [by_id[subnet_id] for subnet_id in item.get("subnet_ids") or []]
        vpcs = sorted({subnet["vpc_id"] for subnet in chosen})
        zones = {subnet["availability_zone"] for subnet in chosen}
        if len(vpcs) > 1:
            found.append(f"{where}.subnet_ids span several VPCs ({', '.join(vpcs)}); give subnets of one VPC.")
        elif chosen and len(zones) < 2:
            found.append(f"{where}.subnet_ids cover only {', '.join(sorted(zones))}; RDS needs subnets in at least "
                         "two Availability Zones, add one in another zone.")
    return found


def members(items, places):
    """The instances the role creates besides each primary: read replicas, and the writer and readers of each cluster.

    ``places`` is the result of ``placement``; members are spread over each declaration's Availability Zones in
    turn. Returns one dict per member: identifier, parent name, availability_zone, db_instance_class, promotion_tier.
    """
    result = []
    for item in items or []:
        zones = ((places or {}).get(item["name"]) or {}).get("availability_zones") or [None]
        if item["kind"] == "instance":
            for number in range(1, int(item.get("replicas") or 0) + 1):
                result.append({
                    "identifier": f"{item['name']}-replica-{number}",
                    "parent": item["name"],
                    "availability_zone": zones[number % len(zones)],
                    "db_instance_class": item.get("replica_instance_class") or item["db_instance_class"],
                    "promotion_tier": None,
                    "declaration": item,
                })
        else:
            for number in range(1, max(int(item.get("instances") or 1), 1) + 1):
                result.append({
                    "identifier": f"{item['name']}-{number}",
                    "parent": item["name"],
                    "availability_zone": zones[(number - 1) % len(zones)],
                    "db_instance_class": item["db_instance_class"],
                    "promotion_tier": 0 if number == 1 else 1,
                    "declaration": item,
                })
    return result


def _secret_arn(resource, secret_arns, name):
    managed = (resource.get("master_user_secret") or {}).get("secret_arn")
    return managed or (secret_arns or {}).get(name)


def _secret_id(resource, item):
    """What Secrets Manager takes as SecretId for the master secret: the ARN RDS manages, or the name the role keeps.

    The name comes from the declaration, not from a module result, so ``no_log`` masking can never garble it.
    """
    managed = (resource.get("master_user_secret") or {}).get("secret_arn")
    return managed or (item.get("master_secret_name") if item.get("managed_secret") else None)


def endpoints(instances, clusters, instance_info, cluster_info, secret_arns=None):
    """``rds_provision_endpoints``: per declared name its writer and reader endpoints, port, ARN and secret ARN.

    ``instance_info`` and ``cluster_info`` are the ``instances`` / ``clusters`` lists of amazon.aws's
    ``rds_instance_info`` / ``rds_cluster_info`` (snake_case boto3 data); a name missing from them (check mode on an
    empty account) gets ``exists: false`` and no addresses.
    """
    by_id = {db["db_instance_identifier"]: db for db in instance_info or []}
    clusters_by_id = {cluster["db_cluster_identifier"]: cluster for cluster in cluster_info or []}
    result = {}
    for item in instances or []:
        name = item["name"]
        primary = by_id.get(name, {})
        replicas = sorted((db for db in by_id.values() if db.get("read_replica_source_db_instance_identifier") == name),
                          key=lambda db: db["db_instance_identifier"])
        address = (primary.get("endpoint") or {}).get("address")
        readers = [(db.get("endpoint") or {}).get("address") for db in replicas]
        result[name] = {
            "kind": "instance",
            "exists": bool(primary),
            "writer_endpoint": address,
            "reader_endpoint": readers[0] if readers else address,
            "reader_endpoints": readers,
            "port": (primary.get("endpoint") or {}).get("port") or item.get("port"),
            "arn": primary.get("db_instance_arn"),
            "secret_arn": _secret_arn(primary, secret_arns, name),
            "secret_id": _secret_id(primary, item),
            "master_username": primary.get("master_username") or item.get("master_username"),
            "db_name": primary.get("db_name") or item.get("db_name"),
            "members": [db["db_instance_identifier"] for db in replicas],
        }
    for item in clusters or []:
        name = item["name"]
        cluster = clusters_by_id.get(name, {})
        result[name] = {
            "kind": "cluster",
            "exists": bool(cluster),
            "writer_endpoint": cluster.get("endpoint"),
            "reader_endpoint": cluster.get("reader_endpoint"),
            "reader_endpoints": [cluster["reader_endpoint"]] if cluster.get("reader_endpoint") else [],
            "port": cluster.get("port") or item.get("port"),
            "arn": cluster.get("db_cluster_arn"),
            "secret_arn": _secret_arn(cluster, secret_arns, name),
            "secret_id": _secret_id(cluster, item),
            "master_username": cluster.get("master_username") or item.get("master_username"),
            "db_name": cluster.get("database_name") or item.get("db_name"),
            "members": sorted(member["db_instance_identifier"] for member in cluster.get("db_cluster_members") or []),
        }
    return result


class FilterModule:
    """Filters of the dbre.rds.rds_provision role."""

    def filters(self):
        return {
            "rds_provision_normalize": normalize,
            "rds_provision_problems": problems,
            "rds_provision_members": members,
            "rds_provision_placement": placement,
            "rds_provision_placement_problems": placement_problems,
            "rds_provision_endpoints": endpoints,
        }

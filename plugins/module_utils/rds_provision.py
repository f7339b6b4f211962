# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decisions of the rds_provision role as pure functions: merged declarations, validation, member layout, the
parameters each group gets, the RDS Proxy in front of a declaration, endpoints and what destroy may remove.

Plain data in (the role's declarations, boto3-shaped describe output in amazon.aws's snake_case), plain data out.
Nothing here calls AWS. The role reaches these through one filter, ``dbre.rds.rds_provision_plan``.
"""

from __future__ import annotations

import re

from ansible_collections.dbre.rds.plugins.module_utils.instance_classes import INSTANCE_CLASSES
from ansible_collections.dbre.rds.plugins.module_utils.instance_classes import SERVERLESS_CLASS
from ansible_collections.dbre.rds.plugins.module_utils.instance_classes import closest_classes
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import IDENTIFIER_MAX
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import identifier_problems
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import tags_dict

ENGINES = {"instance": "postgres", "cluster": "aurora-postgresql"}
LIST_VARIABLE = {"instance": "rds_provision_instances", "cluster": "rds_provision_clusters"}
DAY_MINUTES = 24 * 60
WEEK_MINUTES = 7 * DAY_MINUTES
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PERFORMANCE_INSIGHTS_RETENTION = (7, 731)
# DB (cluster) parameter group names follow the identifier rule with up to 255 characters.
PARAMETER_GROUP_NAME_MAX = 255
BACKUP_RETENTION = (1, 35)
# RDS for PostgreSQL storage per type: (smallest, largest) GiB; provisioned IOPS ranges; gp3 above its baseline.
STORAGE_GIB = {"gp2": (20, 65536), "gp3": (20, 65536), "io1": (100, 65536), "io2": (100, 65536),
               "standard": (5, 3072)}
PROVISIONED_IOPS = {"io1": (1000, 256000), "io2": (1000, 256000)}
GP3_BASELINE_GIB = 400
GP3_IOPS = (12000, 64000)
GP3_THROUGHPUT = (500, 4000)
MAX_READ_REPLICAS = 15
MAX_CLUSTER_INSTANCES = 16
AUDIT_LOGGING = ("none", "ddl", "pgaudit")
# Marker tag on everything the role creates: key, and the declaration's name as value. destroy removes nothing
# without it.
MARKER_TAG = "dbre.rds:rds_provision"
# RDS Proxy (the ``proxy`` key of a declaration, over ``rds_provision_proxy``): AWS's defaults, its limits, and the
# port it listens on (the engine family's, whatever the database's port).
PROXY_DEFAULTS = {"enabled": False, "require_tls": True, "iam_auth": False, "idle_client_timeout": 1800,
                  "max_connections_percent": 100, "max_idle_connections_percent": 50,
                  "connection_borrow_timeout": 120, "read_only_endpoint": False}
PROXY_FLAGS = ("enabled", "require_tls", "iam_auth", "read_only_endpoint")
PROXY_RANGES = {
    "max_connections_percent": (1, 100, "it is the share of the database's max_connections the proxy may open"),
    "max_idle_connections_percent": (0, 100, "it is the share of max_connections the proxy keeps open when idle"),
    "connection_borrow_timeout": (0, 3600, "seconds a client waits for a pooled connection"),
    "idle_client_timeout": (1, 28800, "seconds before the proxy closes an idle client connection"),
}
PROXY_NAME_MAX = 60
PROXY_PORT = 5432
PROXY_POLICY_NAME = "dbre-rds-proxy-master-secret"
POSTGRES_ENGINES = ("postgres", "aurora-postgresql")
DAILY_WINDOW = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
WEEKLY_WINDOW = re.compile(r"^([a-z]{3}):(\d{2}):(\d{2})-([a-z]{3}):(\d{2}):(\d{2})$")


class WindowError(ValueError):
    """A backup or maintenance window that RDS would not accept."""


def family(engine, engine_version):
    """The parameter group family of an engine version: ``postgres15`` or ``aurora-postgresql15``."""
    major = str(engine_version).split(".", maxsplit=1)[0]
    return f"{engine}{major}"


def security_parameters(force_ssl=True, audit_logging="ddl"):
    """The parameters that encryption in transit and audit logging set, in the group that holds cluster-wide settings.

    ``ddl`` logs CREATE/ALTER/DROP through ``log_statement``; ``pgaudit`` preloads pgaudit and logs DDL and role
    statements without their parameters (``pgaudit.log_parameter`` off), so a bound value never reaches the log.
    """
    found = {"rds.force_ssl": "1" if force_ssl else "0"}
    if audit_logging == "pgaudit":
        found.update({"log_statement": "none", "shared_preload_libraries": "pg_stat_statements,pgaudit",
                      "pgaudit.log": "ddl,role", "pgaudit.log_parameter": "0", "pgaudit.log_catalog": "0"})
    else:
        found["log_statement"] = "ddl" if audit_logging == "ddl" else "none"
    return found


def _flag(value):
    """A yes/no from YAML or ``-e`` (``true``, ``"yes"``, ``"false"``); anything else is kept for validation."""
    if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return value.strip().lower() in ("true", "yes", "on", "1")
    return value


def proxy_settings(name, defaults=None, declared=None):
    """The proxy of the declaration ``name``: PROXY_DEFAULTS, then ``rds_provision_proxy``, then its ``proxy`` key
    (keys set to null take the default), with the names of what the role makes for it: the proxy and the IAM role it
    reads the master secret with (``proxy.name``, default ``<name>-proxy``) and its read-only endpoint
    (``<proxy name>-ro``)."""
    merged = dict(PROXY_DEFAULTS)
    for source in (defaults, declared):
        if isinstance(source, dict):
            merged.update({key: value for key, value in source.items() if value is not None and key != "name"})
    for key in PROXY_FLAGS:
        merged[key] = _flag(merged.get(key))
    named = isinstance(declared, dict) and declared.get("name") is not None
    proxy_name = declared["name"] if named else f"{name}-proxy"
    merged.update(name=proxy_name, named=named, role_name=proxy_name, read_only_endpoint_name=f"{proxy_name}-ro",
                  valid_name=not identifier_problems(proxy_name, "proxy.name", PROXY_NAME_MAX))
    return merged


def normalize(declarations, defaults, kind, secret_prefix="rds-provision/", settings=None):
    """Each declaration merged over the role-level defaults, with the names of what the role creates for it.

    Keys a declaration leaves out (or sets to null) take the default; ``kind`` is ``instance`` or ``cluster``.
    ``settings`` holds the role-wide ``tags``, ``force_ssl`` and ``audit_logging``.
    """
    settings = settings or {}
    security = security_parameters(settings.get("force_ssl", True), settings.get("audit_logging", "ddl"))
    merged = []
    for declaration in declarations or []:
        item = dict(defaults or {})
        item.update({key: value for key, value in (declaration or {}).items() if value is not None})
        name = item.get("name", "")
        name = name.strip() if isinstance(name, str) else name
        item["name"] = name
        item["proxy"] = proxy_settings(name, (defaults or {}).get("proxy"), (declaration or {}).get("proxy"))
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
        if item["proxy"]["enabled"] is True:
            # The proxy sits in the database's security group: members of a group reach each other only through a
            # rule naming the group, and clients reach the proxy on its own port.
            item["ingress_rules"].append({"proto": "tcp", "ports": [item.get("port")],
                                          "group_name": item["security_group_name"],
                                          "rule_desc": f"PostgreSQL from the RDS Proxy {item['proxy']['name']}"})
            if item.get("port") != PROXY_PORT:
                item["ingress_rules"] += [
                    {"proto": "tcp", "ports": [PROXY_PORT], "group_id": group,
                     "rule_desc": f"RDS Proxy {item['proxy']['name']} from {group}"}
                    for group in item.get("allowed_security_group_ids") or []]
        item["resource_tags"] = {**(settings.get("tags") or {}), **(item.get("tags") or {}), MARKER_TAG: name}
        overrides = dict(item.get("parameter_overrides") or {})
        if kind == "cluster":
            # Aurora: TLS and audit settings hold for the whole cluster, so they live in its cluster parameter group;
            # each member's instance group keeps the values sized for its class.
            item.setdefault("db_cluster_parameter_group_name", f"{name}-{item['family']}".replace(".", "-"))
            item["instance_parameters"] = overrides
            item["cluster_parameters"] = dict(security, **(item.get("cluster_parameter_overrides") or {}))
        else:
            item["instance_parameters"] = dict(security, **overrides)
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
    """``ddd:hh:mm-ddd:hh:mm`` as (start, end) minutes of the week from Monday 00:00, ``end`` past a week if it
    wraps."""
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
            f"{where}: preferred_backup_window '{item['preferred_backup_window']}' overlaps "
            "preferred_maintenance_window "
            f"'{item['preferred_maintenance_window']}'; move one of them so that the daily backup window ends before "
            "the maintenance window starts (for example backup 03:00-04:00 and maintenance sun:04:30-sun:05:30)."
        )
    return problems


def _class_problems(where, item):
    instance_class = item.get("db_instance_class")
    if not instance_class:
        return [f"{where}.db_instance_class is missing; give an RDS instance class such as db.r6g.large."]
    serverless = item["kind"] == "cluster" and instance_class == SERVERLESS_CLASS
    if instance_class not in INSTANCE_CLASSES and not serverless:
        closest = closest_classes(instance_class)
        hint = f"; did you mean {', '.join(closest)}?" if closest else "; use a current class such as db.r6g.large."
        return [f"{where}.db_instance_class: '{instance_class}' is not a known RDS instance class{hint}"]
    return []


def _name_problems(where, item, seen):
    name = item.get("name")
    if not isinstance(name, str) or not name:
        return [f"{where}.name is empty; give each database an RDS identifier such as orders-db (1 to 63 letters, "
                "digits or hyphens, starting with a letter)."]
    if identifier_problems(name, "name"):
        return [f"{where}.name: '{name}' is not a valid RDS identifier; use 1 to 63 letters, digits or hyphens, "
                "starting with a letter, without two hyphens in a row or a hyphen at the end."]
    if name.lower() in seen:
        return [f"{where}.name: '{name}' is declared twice (also {seen[name.lower()]}); give each database its own "
                "name."]
    seen[name.lower()] = where
    longest = _longest_member(item)
    if longest and len(longest) > IDENTIFIER_MAX:
        return [f"{where}.name: '{name}' makes the member identifier '{longest}' ({len(longest)} characters), above "
                f"RDS's {IDENTIFIER_MAX}; shorten the name to {len(name) - len(longest) + IDENTIFIER_MAX} characters "
                "or fewer."]
    return []


def _longest_member(item):
    count = _count(item.get("replicas" if item["kind"] == "instance" else "instances"))
    if not isinstance(count, int) or count < 1:
        return None
    return f"{item['name']}-replica-{count}" if item["kind"] == "instance" else f"{item['name']}-{count}"


def _count(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value if isinstance(value, int) else None


def _group_name_problems(where, item):
    found = []
    keys = ["db_parameter_group_name"] + (["db_cluster_parameter_group_name"] if item["kind"] == "cluster" else [])
    for key in keys:
        group = item.get(key)
        if isinstance(group, str) and group.lower().startswith("default."):
            found.append(f"{where}.{key}: '{group}' is an RDS default group, which cannot be modified; leave it "
                         "out or name a group of your own.")
        elif not isinstance(group, str) or identifier_problems(group, key, PARAMETER_GROUP_NAME_MAX):
            found.append(f"{where}.{key}: '{group}' is not a valid parameter group name; use 1 to 255 letters, "
                         "digits or hyphens, starting with a letter, without two hyphens in a row or a hyphen at the "
                         "end (or leave it out to get <name>-<family>).")
    return found


def _count_problems(where, item):
    key, low, high = (("replicas", 0, MAX_READ_REPLICAS) if item["kind"] == "instance"
                      else ("instances", 1, MAX_CLUSTER_INSTANCES))
    value = _count(item.get(key))
    if value is None or not low <= value <= high:
        return [f"{where}.{key}: {item.get(key)!r} is outside {low}-{high}; give a whole number between {low} and "
                f"{high}."]
    return []


def problems(instances, clusters):
    """Every mistake in the merged declarations, each naming the key and the fix; an empty list means valid."""
    found = []
    seen = {}
    for kind, items in (("instance", instances or []), ("cluster", clusters or [])):
        for index, item in enumerate(items):
            name = item.get("name", "")
            where = f"{LIST_VARIABLE[kind]}[{index}]" + (f" ({name})" if name else "")
            found.extend(_name_problems(where, item, seen))
            if item.get("engine") != ENGINES[kind]:
                found.append(f"{where}.engine: '{item.get('engine')}' is not supported; this role builds PostgreSQL "
                             f"only, set engine: {ENGINES[kind]} (or leave it out).")
            if not str(item.get("engine_version", "")).strip():
                found.append(f"{where}.engine_version is missing; give a PostgreSQL version such as '15.7'.")
            found.extend(_class_problems(where, item))
            found.extend(_count_problems(where, item))
            found.extend(_group_name_problems(where, item))
            retention = item.get("backup_retention_period")
            if isinstance(retention, bool) or not isinstance(retention, int) or \
                    not BACKUP_RETENTION[0] <= retention <= BACKUP_RETENTION[1]:
                found.append(f"{where}.backup_retention_period: {retention} is outside 1-35 days; set a value between "
                             "1 and 35 (the role's default is 30).")
            if kind == "instance" and (_count(item.get("replicas")) or 0) > 0 and retention == 0:
                found.append(f"{where}.replicas: {item['replicas']} read replicas need automated backups, but "
                             "backup_retention_period is 0; set backup_retention_period between 1 and 35, or "
                             "replicas: 0.")
            found.extend(_window_problems(where, item))
            found.extend(proxy_problems(where, item))
            if not item.get("subnet_ids"):
                found.append(f"{where}.subnet_ids is empty; give the IDs of at least two private subnets in different "
                             "Availability Zones, in the declaration or in rds_provision_subnet_ids.")
            found.extend(_storage_problems(where, item) if kind == "instance" else _capacity_problems(where, item))
            pi_retention = item.get("performance_insights_retention_period")
            accepted = pi_retention in PERFORMANCE_INSIGHTS_RETENTION or (
                isinstance(pi_retention, int) and pi_retention % 31 == 0 and 0 < pi_retention < 731)
            if item.get("enable_performance_insights") and pi_retention is not None and not accepted:
                found.append(f"{where}.performance_insights_retention_period: {pi_retention} is not accepted by RDS; "
                             "use 7, 731, or a multiple of 31 below 731.")
    return found


def proxy_problems(where, item):
    """What stops the declaration's proxy (none when it is not enabled), each naming the key and the fix."""
    proxy = item.get("proxy") or {}
    if proxy.get("enabled") is False:
        return []
    at = f"{where}.proxy"
    if proxy.get("enabled") is not True:
        return [f"{at}.enabled: {proxy.get('enabled')!r} is not true or false; set enabled: true for a proxy."]
    found = [f"{at}.{key}: {proxy.get(key)!r} is not true or false; give a boolean." for key in PROXY_FLAGS[1:]
             if not isinstance(proxy.get(key), bool)]
    name = proxy.get("name")
    if not proxy.get("valid_name"):
        made = "" if proxy.get("named") else " (<name>-proxy)"
        found.append(f"{at}.name: '{name}'{made} is not a valid RDS Proxy name; RDS takes 1 to {PROXY_NAME_MAX} "
                     "letters, digits or hyphens, starting with a letter, without two hyphens in a row or a hyphen at "
                     "the end: set proxy.name.")
    for key, (low, high, why) in PROXY_RANGES.items():
        value = proxy.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            found.append(f"{at}.{key}: {value!r} is outside {low}-{high}; {why}, give a whole number between {low} "
                         f"and {high}.")
    maximum, idle = proxy.get("max_connections_percent"), proxy.get("max_idle_connections_percent")
    in_range = [key for key, (low, high, _why) in PROXY_RANGES.items()
                if isinstance(proxy.get(key), int) and not isinstance(proxy.get(key), bool)
                and low <= proxy[key] <= high]
    if {"max_connections_percent", "max_idle_connections_percent"} <= set(in_range) and idle > maximum:
        found.append(f"{at}.max_idle_connections_percent: {idle} is above max_connections_percent {maximum}; the "
                     "proxy cannot keep more idle connections than it may open, lower it or raise the maximum.")
    if item.get("engine") not in POSTGRES_ENGINES:
        found.append(f"{at}: this role puts POSTGRESQL proxies in front of {' and '.join(POSTGRES_ENGINES)} only, not "
                     f"'{item.get('engine')}'; remove the proxy or declare a PostgreSQL engine.")
    if proxy.get("read_only_endpoint") is True and item.get("kind") == "instance":
        found.append(f"{at}.read_only_endpoint: read-only proxy endpoints lead to Aurora readers and an RDS instance "
                     "has none (its read replicas have their own endpoints); set read_only_endpoint: false or declare "
                     "an Aurora cluster.")
    if not item.get("managed_secret"):
        found.append(f"{at}: the proxy logs in with the master secret the role keeps in Secrets Manager, and with "
                     "master_user_password declared the role keeps none; leave master_user_password out.")
    return found


def proxy_policy(secret_arn, kms_key_id=None):
    """The inline policy of a proxy's IAM role: read that one master secret (and decrypt it through Secrets Manager
    when a customer managed KMS key encrypts it)."""
    statements = [{"Sid": "ReadTheMasterSecret", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
                   "Resource": secret_arn}]
    if kms_key_id:
        statements.append({"Sid": "DecryptItThroughSecretsManager", "Effect": "Allow", "Action": "kms:Decrypt",
                           "Resource": "*",
                           "Condition": {"StringLike": {"kms:ViaService": "secretsmanager.*.amazonaws.com"}}})
    return {"Version": "2012-10-17", "Statement": statements}


def proxies(items, secret_arns=None):
    """The proxy of each declaration that enables one, as the role's proxy tasks use it: its names, the master
    secret (None until the role keeps one), the IAM role's policy, and the dbre.rds.rds_proxy settings."""
    result = []
    for item in items or []:
        proxy = item.get("proxy") or {}
        if proxy.get("enabled") is not True:
            continue
        secret_arn = (secret_arns or {}).get(item["name"])
        result.append({
            "declaration": item["name"],
            "kind": item["kind"],
            "name": proxy["name"],
            "role_name": proxy["role_name"],
            "secret_arn": secret_arn,
            "role_policy": proxy_policy(secret_arn, item.get("kms_key_id")) if secret_arn else None,
            "iam_auth": "REQUIRED" if proxy["iam_auth"] else "DISABLED",
            "require_tls": proxy["require_tls"],
            "idle_client_timeout": proxy["idle_client_timeout"],
            "target_group": {key: proxy[key] for key in ("max_connections_percent", "max_idle_connections_percent",
                                                         "connection_borrow_timeout")},
            "endpoints": ([{"name": proxy["read_only_endpoint_name"], "target_role": "READ_ONLY"}]
                          if proxy["read_only_endpoint"] else []),
            "subnet_ids": item.get("subnet_ids") or [],
            "resource_tags": item["resource_tags"],
        })
    return result


def _storage_problems(where, item):
    found = []
    storage_type = item.get("storage_type")
    allocated, maximum = item.get("allocated_storage"), item.get("max_allocated_storage")
    iops, throughput = item.get("iops"), item.get("storage_throughput")
    if storage_type not in STORAGE_GIB:
        return [f"{where}.storage_type: '{storage_type}' is not an RDS for PostgreSQL storage type; use one of "
                f"{', '.join(sorted(STORAGE_GIB))} (gp3 recommended)."]
    low, high = STORAGE_GIB[storage_type]
    if isinstance(allocated, bool) or not isinstance(allocated, int) or not low <= allocated <= high:
        found.append(f"{where}.allocated_storage: {allocated!r} GiB is outside what {storage_type} storage takes "
                     f"({low}-{high} GiB); give a whole number of GiB in that range.")
        allocated = None
    if iops and storage_type not in ("gp3", "io1", "io2"):
        found.append(f"{where}.iops is set but storage_type is {storage_type}; use storage_type gp3, io1 or io2, or "
                     "remove iops.")
    elif storage_type in PROVISIONED_IOPS and not iops:
        found.append(f"{where}.iops is missing; {storage_type} storage needs provisioned IOPS, for example iops: "
                     f"{PROVISIONED_IOPS[storage_type][0] * 3}.")
    elif storage_type in PROVISIONED_IOPS and not PROVISIONED_IOPS[storage_type][0] <= iops <= \
            PROVISIONED_IOPS[storage_type][1]:
        found.append(f"{where}.iops: {iops} is outside {storage_type}'s "
                     f"{PROVISIONED_IOPS[storage_type][0]}-{PROVISIONED_IOPS[storage_type][1]}; give a value in range.")
    if throughput and storage_type != "gp3":
        found.append(f"{where}.storage_throughput is only for gp3 storage; set storage_type: gp3 or remove it.")
    if storage_type == "gp3" and allocated is not None and (iops or throughput):
        if allocated < GP3_BASELINE_GIB:
            found.append(f"{where}: gp3 below {GP3_BASELINE_GIB} GiB has a fixed baseline (3000 IOPS, 125 MiB/s), so "
                         f"iops and storage_throughput cannot be set with allocated_storage {allocated}; remove them "
                         f"or allocate {GP3_BASELINE_GIB} GiB or more.")
        else:
            if iops and not GP3_IOPS[0] <= iops <= GP3_IOPS[1]:
                found.append(f"{where}.iops: {iops} is outside gp3's {GP3_IOPS[0]}-{GP3_IOPS[1]} at "
                             f"{GP3_BASELINE_GIB} GiB or more; give a value in range or leave it out.")
            if throughput and not GP3_THROUGHPUT[0] <= throughput <= GP3_THROUGHPUT[1]:
                found.append(f"{where}.storage_throughput: {throughput} MiB/s is outside gp3's "
                             f"{GP3_THROUGHPUT[0]}-{GP3_THROUGHPUT[1]}; give a value in range or leave it out.")
    if maximum and allocated and maximum <= allocated:
        found.append(f"{where}.max_allocated_storage: {maximum} GiB is not above allocated_storage {allocated} GiB; "
                     "raise it to turn storage autoscaling on, or remove it.")
    elif maximum and maximum > high:
        found.append(f"{where}.max_allocated_storage: {maximum} GiB is above {storage_type}'s {high} GiB; lower it.")
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
            for number in range(1, (_count(item.get("replicas")) or 0) + 1):
                result.append({
                    "identifier": f"{item['name']}-replica-{number}",
                    "parent": item["name"],
                    "availability_zone": zones[number % len(zones)],
                    "db_instance_class": item.get("replica_instance_class") or item["db_instance_class"],
                    "promotion_tier": None,
                    "declaration": item,
                })
        else:
            for number in range(1, max(_count(item.get("instances")) or 1, 1) + 1):
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


def proxy_addresses(proxy_info):
    """Per declaration name, the ``proxy_endpoint``, ``proxy_read_only_endpoint`` and ``proxy_port`` of its proxy.

    ``proxy_info`` lists what the role's dbre.rds.rds_proxy tasks returned (``item.declaration``, ``proxy`` with its
    ``endpoint``, ``endpoints``); a skipped task (check mode before the database exists) has no ``proxy``.
    """
    found = {}
    for result in proxy_info or []:
        proxy = result.get("proxy") or {}
        declaration = (result.get("item") or {}).get("declaration")
        if not declaration or not proxy.get("endpoint"):
            continue
        read_only = [e.get("endpoint") for e in result.get("endpoints") or []
                     if e.get("target_role") == "READ_ONLY" and not e.get("is_default")]
        found[declaration] = {"proxy_endpoint": proxy["endpoint"],
                              "proxy_read_only_endpoint": read_only[0] if read_only else None,
                              "proxy_port": PROXY_PORT}
    return found


def endpoints(instances, clusters, instance_info, cluster_info, secret_arns=None, proxy_info=None):
    """``rds_provision_endpoints``: per declared name its writer and reader endpoints, port, ARN and secret ARN, and
    its proxy's endpoints (null without a proxy).

    ``instance_info`` and ``cluster_info`` are the ``instances`` / ``clusters`` lists of amazon.aws's
    ``rds_instance_info`` / ``rds_cluster_info`` (snake_case boto3 data); a name missing from them (check mode on an
    empty account) gets ``exists: false`` and no addresses. ``proxy_info`` is :func:`proxy_addresses`'s input.
    """
    no_proxy = {"proxy_endpoint": None, "proxy_read_only_endpoint": None, "proxy_port": None}
    by_proxy = proxy_addresses(proxy_info)
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
            **by_proxy.get(name, no_proxy),
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
            **by_proxy.get(name, no_proxy),
        }
    return result


def offering_problems(items, engine_versions=None, orderable=None):
    """Declared engine versions RDS does not offer, and instance classes it does not offer for that engine version.

    ``engine_versions`` holds DescribeDBEngineVersions items and ``orderable`` DescribeOrderableDBInstanceOptions
    items, snake_case (``engine``, ``engine_version``, ``db_instance_class``); ``None`` skips that check.
    """
    found = []
    versions = {}
    for version in engine_versions or []:
        versions.setdefault(version.get("engine"), set()).add(str(version.get("engine_version")))
    classes = {}
    for option in orderable or []:
        key = (option.get("engine"), str(option.get("engine_version")))
        classes.setdefault(key, set()).add(option.get("db_instance_class"))
    for index, item in enumerate(items or []):
        where = f"{LIST_VARIABLE[item['kind']]}[{index}] ({item['name']})"
        engine, version = item.get("engine"), str(item.get("engine_version", ""))
        offered = versions.get(engine, set())
        # A major version alone ("15") is RDS's default version of that major.
        matching = {v for v in offered if v == version or ("." not in version and v.split(".")[0] == version)}
        if engine_versions is not None and not matching:
            major = version.split(".", maxsplit=1)[0]
            same_major = sorted((v for v in offered if v.split(".", maxsplit=1)[0] == major), key=_version_key)
            hint = (f"; {engine} {major} is offered as {', '.join(same_major[-5:])}" if same_major else
                    f"; offered {engine} versions: {', '.join(sorted(offered, key=_version_key)[-5:]) or 'none'}")
            found.append(f"{where}.engine_version: {engine} {version} is not offered in this region{hint}. Give an "
                         "offered engine_version.")
            continue
        if orderable is None:
            continue
        wanted = [item.get("db_instance_class")]
        if item["kind"] == "instance" and item.get("replica_instance_class"):
            wanted.append(item["replica_instance_class"])
        choices = set().union(*(classes.get((engine, v), set()) for v in matching or {version}))
        for instance_class in wanted:
            if instance_class not in choices:
                hint = ", ".join(sorted(choices)[:8]) or "none"
                found.append(f"{where}: RDS does not offer {instance_class} for {engine} {version} in this region; "
                             f"choose an offered class (for example {hint}).")
    return found


def _version_key(version):
    return [int(part) if part.isdigit() else 0 for part in str(version).split(".")]


def _tags_of(resource):
    tags = resource.get("tags") or {}
    return tags_dict(tags) if isinstance(tags, list) else tags


def is_marked(resource, name):
    """True when the resource carries the role's marker tag with the declaration's name."""
    return _tags_of(resource).get(MARKER_TAG) == name


def _groups_of(doomed, found):
    """The parameter and security groups of the doomed declarations that exist, each kind, name, declaration, tags."""
    by_name = {}
    for kind, key, items in (("DB parameter group", "db_parameter_group_name", found.get("parameter_groups")),
                             ("DB cluster parameter group", "db_cluster_parameter_group_name",
                              found.get("cluster_parameter_groups")),
                             ("security group", "group_name", found.get("security_groups"))):
        for group in items or []:
            by_name[(kind, str(group.get(key, "")).lower())] = group
    groups = []
    for item in doomed:
        wanted = [("DB parameter group", item.get("db_parameter_group_name")),
                  ("security group", item.get("security_group_name"))]
        if item["kind"] == "cluster":
            wanted.append(("DB cluster parameter group", item.get("db_cluster_parameter_group_name")))
        for kind, name in wanted:
            group = by_name.get((kind, str(name).lower()))
            if group is not None:
                groups.append({"kind": kind, "name": name, "declaration": item["name"], "tags": _tags_of(group),
                               "id": group.get("group_id")})
    return groups


def _proxies_of(doomed, found):
    """The proxies and their IAM roles that exist for the doomed declarations: ``(proxies, roles)``, each ``name``,
    ``declaration``, ``tags``.

    ``found["proxy_reads"]`` holds dbre.rds.rds_proxy results run with ``state: absent`` in check and diff mode (the
    proxy as it is in ``diff.before``, empty when there is none); ``found["proxy_role_reads"]`` holds
    amazon.aws.iam_role_info results; each result carries its loop ``item``, the declaration.
    """
    names = {item["name"] for item in doomed}
    proxies, roles = [], []
    for result in found.get("proxy_reads") or []:
        item = result.get("item") or {}
        before = (result.get("diff") or {}).get("before") or {}
        if item.get("name") in names and before:
            proxies.append({"kind": "RDS Proxy", "name": item["proxy"]["name"], "declaration": item["name"],
                            "tags": before.get("tags") or {}})
    for result in found.get("proxy_role_reads") or []:
        item = result.get("item") or {}
        for role in result.get("iam_roles") or []:
            if item.get("name") in names and role.get("role_name") == item["proxy"]["role_name"]:
                roles.append({"kind": "IAM role", "name": role["role_name"], "declaration": item["name"],
                              "tags": _tags_of(role)})
    return proxies, roles


def destroy_plan(items, confirmed, instance_info, cluster_info, found_groups=None):
    """What destroy removes for the confirmed names, or the problems that make it remove nothing.

    ``items`` are the merged declarations; ``instance_info`` / ``cluster_info`` the ``instances`` / ``clusters`` of
    amazon.aws's info modules, with tags; ``found_groups`` holds ``parameter_groups``, ``cluster_parameter_groups``
    and ``security_groups`` as amazon.aws's info modules return them, with tags, and ``proxy_reads`` and
    ``proxy_role_reads`` (:func:`_proxies_of`). Everything to remove must carry the
    marker tag ``dbre.rds:rds_provision`` with its declaration's name; anything else stops the whole removal.
    """
    confirmed = [str(name) for name in ([confirmed] if isinstance(confirmed, str) else confirmed or []) if name]
    declared = [item["name"] for item in items or []]
    found = []
    if not confirmed:
        found.append(f"rds_provision_confirm_destroy is empty; set it to the name (or list of names) to remove, each "
                     f"one of {declared}.")
    unknown = [name for name in confirmed if name not in declared]
    if unknown:
        found.append(f"rds_provision_confirm_destroy names {unknown}, which are not declared; give names from "
                     f"{declared}.")
    doomed = [item for item in items or [] if item["name"] in confirmed]
    names = {item["name"] for item in doomed}
    primaries = [db for db in instance_info or [] if db.get("db_instance_identifier") in names
                 and not db.get("db_cluster_identifier")]
    members = [db for db in instance_info or []
               if db.get("read_replica_source_db_instance_identifier") in names
               or db.get("db_cluster_identifier") in names]
    clusters = [cluster for cluster in cluster_info or [] if cluster.get("db_cluster_identifier") in names]

    def owner(resource):
        return (resource.get("db_cluster_identifier") or resource.get("read_replica_source_db_instance_identifier")
                or resource.get("db_instance_identifier"))

    for kind, resources, key in (("DB instance", primaries + members, "db_instance_identifier"),
                                 ("DB cluster", clusters, "db_cluster_identifier")):
        for resource in resources:
            if not is_marked(resource, owner(resource)):
                found.append(f"{kind} {resource[key]} has no tag {MARKER_TAG}={owner(resource)}, so "
                             "dbre.rds.rds_provision did not create it; remove it yourself or tag it, then rerun.")
    groups = _groups_of(doomed, found_groups or {})
    proxies, proxy_roles = _proxies_of(doomed, found_groups or {})
    for group in groups + proxies + proxy_roles:
        if group["tags"].get(MARKER_TAG) != group["declaration"]:
            found.append(f"{group['kind']} {group['name']} has no tag {MARKER_TAG}={group['declaration']}, so "
                         "dbre.rds.rds_provision did not create it; remove it yourself or tag it, then rerun.")
    if found:
        found.append("Nothing was removed.")
        return {"problems": found, "declarations": [], "instances": [], "members": [], "clusters": [], "groups": [],
                "proxies": [], "proxy_roles": []}
    return {"problems": [], "declarations": doomed, "instances": primaries, "members": members, "clusters": clusters,
            "groups": groups, "proxies": proxies, "proxy_roles": proxy_roles}


def plan(instances, clusters, settings, facts=None):
    """The role's whole decision from its declarations and what is known of the account so far.

    ``settings``: ``instance_defaults``, ``cluster_defaults``, ``secret_prefix``, ``tags``, ``force_ssl``,
    ``audit_logging`` and, for destroy, ``confirm_destroy``. ``facts`` (each key optional, snake_case describe
    output): ``subnets``, ``engine_versions``, ``orderable``, ``instance_info``, ``cluster_info``, ``secret_arns``,
    ``parameter_groups``, ``cluster_parameter_groups``, ``security_groups``, ``proxy_info`` (the role's
    dbre.rds.rds_proxy results), ``proxy_reads`` and ``proxy_role_reads`` (destroy). The result grows with the facts:
    problems, placement, members, proxies, endpoints, destroy.
    """
    settings, facts = settings or {}, facts or {}
    secret_prefix = settings.get("secret_prefix", "rds-provision/")
    items = {
        "instances": normalize(instances, settings.get("instance_defaults"), "instance", secret_prefix, settings),
        "clusters": normalize(clusters, settings.get("cluster_defaults"), "cluster", secret_prefix, settings),
    }
    every = items["instances"] + items["clusters"]
    result = dict(items, problems=problems(items["instances"], items["clusters"]))
    if settings.get("audit_logging", "ddl") not in AUDIT_LOGGING:
        result["problems"].insert(0, f"rds_provision_audit_logging: '{settings['audit_logging']}' is not one of "
                                     f"{', '.join(AUDIT_LOGGING)}; choose one.")
    if "subnets" in facts:
        result["problems"] += placement_problems(every, facts["subnets"])
        result["placement"] = placement(every, facts["subnets"])
    if not result["problems"] and ("engine_versions" in facts or "orderable" in facts):
        result["problems"] += offering_problems(every, facts.get("engine_versions"), facts.get("orderable"))
    places = result.get("placement", {})
    result["proxies"] = proxies(every, facts.get("secret_arns"))
    result["replicas"] = members(items["instances"], places)
    result["cluster_members"] = members(items["clusters"], places)
    if "instance_info" in facts:
        result["existing"] = ([db["db_instance_identifier"] for db in facts["instance_info"] or []]
                              + [c["db_cluster_identifier"] for c in facts.get("cluster_info") or []])
        result["endpoints"] = endpoints(items["instances"], items["clusters"], facts["instance_info"],
                                        facts.get("cluster_info"), facts.get("secret_arns"), facts.get("proxy_info"))
        if "confirm_destroy" in settings:
            result["destroy"] = destroy_plan(every, settings["confirm_destroy"], facts["instance_info"],
                                             facts.get("cluster_info"), facts)
    return result

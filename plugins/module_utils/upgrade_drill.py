# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decisions of the upgrade rehearsal (dbre.rds.rds_upgrade_drill), as pure functions over boto3-shaped dicts.

Which target version is acceptable (offered, a valid upgrade target, no downgrade, a major upgrade only with consent),
which parameter group the upgraded copy gets, the requests of the rehearsal (the source's manual snapshot, its restore
through the restore drill's request builder, the upgrade), what the upgrade did (the new version, or the failure RDS
reported), the benchmark's slowdown, the verdict, and whether production may go ahead and what to fix first.

The pre-upgrade checklist itself (its facts and checks) is upgrade_checklist's; this module only reads its result.
No boto3, no sockets, no ``AnsibleModule``.
"""

from __future__ import annotations

import re
import statistics

from ansible_collections.dbre.rds.plugins.module_utils import restore_drill
from ansible_collections.dbre.rds.plugins.module_utils.clock import parse_utc
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import IDENTIFIER_MAX
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import SNAPSHOT
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import identifier_problems
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import tag_list

ENGINES = ("postgres",)
VERSION_PATTERN = re.compile(r"^\d+(\.\d+)?$")
BENCHMARK_RUNS_MAX = 1000
# What RDS says in an event when an upgrade could not be done (PostgreSQL's precheck, or the upgrade itself).
UPGRADE_FAILURE_WORDS = ("cannot be upgraded", "upgrade failed", "failed to upgrade", "upgrade could not",
                         "precheck", "pre-check", "pg_upgrade")
UPGRADE_SUCCESS_WORDS = ("upgrade finished", "upgrade completed", "database instance upgraded", "finished")


# --------------------------------------------------------------------------------------------------------------------
# Versions


def version_key(version):
    """``"15.7"`` -> (15, 7); a major alone (``"18"``) -> (18,). Raises ValueError when it is not a version."""
    text = str(version or "").strip()
    if not VERSION_PATTERN.match(text):
        raise ValueError(f"{version!r} is not a PostgreSQL engine version (for example 18.6 or 15.7)")
    return tuple(int(part) for part in text.split("."))


def major_of(version):
    return str(version).strip().split(".", 1)[0]


def is_major_upgrade(current, target):
    return major_of(current) != major_of(target)


def resolve_target(target, offered):
    """The full version ``target`` names among ``offered`` (a major alone means its newest offered minor), or None."""
    target = str(target).strip()
    if target in offered:
        return target
    if "." not in target:
        same_major = [v for v in offered if major_of(v) == target]
        if same_major:
            return max(same_major, key=version_key)
    return None


def target_problems(current, target, engine_versions, allow_major_version_upgrade, checks_only=False):
    """Why the rehearsal cannot upgrade ``current`` to ``target`` (empty: it can), in words that say what to do.

    ``engine_versions`` is DescribeDBEngineVersions' ``DBEngineVersions`` for the engine (every version, or at least
    the current one and the target). Consent (``allow_major_version_upgrade``) is asked for a real or check-mode
    rehearsal only: the checklist alone (``checks_only``) upgrades nothing.
    """
    offered = {v["EngineVersion"]: v for v in engine_versions or []}
    try:
        version_key(target)
    except ValueError as exc:
        return [f"target_engine_version: {exc}"]
    resolved = resolve_target(target, offered)
    if resolved is None:
        same = sorted((v for v in offered if major_of(v) == major_of(target)), key=version_key)
        hint = (f"the {major_of(target)}.x versions offered are {', '.join(same)}" if same else
                "offered versions: " + ", ".join(sorted(offered, key=version_key)))
        return [f"target_engine_version {target} is not a version RDS offers for this engine in this region: {hint}"]
    if version_key(resolved) == version_key(current):
        return [f"target_engine_version {resolved} is the version the instance already runs: name a later one"]
    if version_key(resolved) < version_key(current):
        return [f"target_engine_version {resolved} is older than the current version {current}: RDS cannot "
                "downgrade an instance (restore a snapshot taken on the older version instead)"]
    valid = [t["EngineVersion"] for t in (offered.get(current) or {}).get("ValidUpgradeTarget") or []]
    if current in offered and resolved not in valid:
        return [f"target_engine_version {resolved} is not a valid upgrade target of {current}: RDS upgrades "
                f"{current} to {', '.join(sorted(valid, key=version_key)) or 'nothing'}; upgrade in steps"]
    if is_major_upgrade(current, resolved) and not allow_major_version_upgrade and not checks_only:
        return [f"upgrading from {current} to {resolved} is a major version upgrade: set "
                "allow_major_version_upgrade=true to consent (RDS's AllowMajorVersionUpgrade)"]
    return []


def target_family(engine_versions, target):
    """The parameter group family of ``target`` (``postgres18``), from DescribeDBEngineVersions."""
    for version in engine_versions or []:
        if version.get("EngineVersion") == target and version.get("DBParameterGroupFamily"):
            return version["DBParameterGroupFamily"]
    return f"postgres{major_of(target)}"


# --------------------------------------------------------------------------------------------------------------------
# Options


def option_problems(params):
    """Every problem with the options found before any AWS call (empty: all good)."""
    found = restore_drill.problems(dict(params, state="present", restore_from="latest_snapshot",
                                        db_cluster_identifier=None, snapshot_identifier=None, restore_time=None,
                                        use_latest_restorable_time=False, sweep_older_than=None,
                                        freshness_sql=None, max_rto_seconds=None, max_rpo_seconds=None))
    try:
        version_key(params.get("target_engine_version"))
    except ValueError as exc:
        found.append(f"target_engine_version: {exc}")
    group = params.get("target_parameter_group")
    if group is not None and not re.match(r"^[A-Za-z](?!.*--)[A-Za-z0-9-]{0,254}(?<!-)$", group):
        found.append(f"target_parameter_group {group!r} is not a valid parameter group name (a letter, then letters, "
                     "digits and single hyphens, at most 255 characters, not ending in a hyphen)")
    if params.get("create_parameter_group") and not group:
        found.append("create_parameter_group=true needs target_parameter_group: the name of the group to create")
    if group and group.startswith("default.") and params.get("create_parameter_group"):
        found.append(f"target_parameter_group {group} is an RDS default group: RDS creates those, name your own")
    runs = params.get("benchmark_runs")
    if runs is not None and not 1 <= runs <= BENCHMARK_RUNS_MAX:
        found.append(f"benchmark_runs must be between 1 and {BENCHMARK_RUNS_MAX}, got {runs}")
    slowdown = params.get("max_slowdown_percent")
    if slowdown is not None and slowdown < 0:
        found.append("max_slowdown_percent must be 0 or more: it is how much slower the target may run benchmark_sql")
    if slowdown is not None and not (params.get("benchmark_sql") or params.get("pgbench_seconds")):
        found.append("max_slowdown_percent needs benchmark_sql or pgbench_seconds: there is nothing to time")
    pgbench = params.get("pgbench_seconds")
    if pgbench is not None and not 1 <= pgbench <= 3600:
        found.append(f"pgbench_seconds must be between 1 and 3600, got {pgbench}")
    if pgbench is not None and not params.get("login_password"):
        found.append("pgbench_seconds needs login_password: pgbench logs in to the copy with a password")
    for key in ("max_downtime_seconds", "max_upgrade_seconds"):
        if params.get(key) is not None and params[key] <= 0:
            found.append(f"{key} must be positive")
    if params.get("benchmark_sql") is not None and not str(params["benchmark_sql"]).strip():
        found.append("benchmark_sql must not be blank: leave it out to skip the benchmark")
    if params.get("benchmark_sql") and not (params.get("login_password") or params.get("iam_auth")):
        found.append("benchmark_sql runs on the rehearsal's copy: give login_password or iam_auth=true")
    snapshot = params.get("snapshot_identifier")
    if snapshot is not None:
        found += identifier_problems(snapshot, "snapshot_identifier", maximum=255)
    return found


# --------------------------------------------------------------------------------------------------------------------
# The parameter group of the upgraded copy


def parameter_group_choice(params, described, target_family_name):
    """Which group the upgrade names: ``{name, action, problems}``; action ``use`` (exists, right family), ``create``
    (missing, create_parameter_group=true) or ``default`` (none given: RDS's default group of the target family).

    ``described`` is the DescribeDBParameterGroups entry of O(target_parameter_group), or None when it does not exist.
    """
    name = params.get("target_parameter_group")
    if not name:
        return {"name": f"default.{target_family_name}", "action": "default", "problems": []}
    if described is None:
        if params.get("create_parameter_group"):
            return {"name": name, "action": "create", "problems": []}
        return {"name": name, "action": "missing", "problems": [
            f"target_parameter_group {name} does not exist: create it (family {target_family_name}) or set "
            "create_parameter_group=true"]}
    family = described.get("DBParameterGroupFamily")
    if family != target_family_name:
        return {"name": name, "action": "wrong_family", "problems": [
            f"target_parameter_group {name} is of family {family}, not {target_family_name}: a major upgrade needs "
            f"a group of the target's family; name another group"]}
    return {"name": name, "action": "use", "problems": []}


GROUP_MARK = "made by dbre.rds.rds_upgrade_drill"


def parameter_group_request(name, family, tags, source_id):
    return {"DBParameterGroupName": name, "DBParameterGroupFamily": family,
            "Description": f"PostgreSQL {family} parameters for {source_id}, {GROUP_MARK}",
            "Tags": tag_list(tags)}


def made_by_drill(described):
    """Whether a DescribeDBParameterGroups entry is a group this module created (its description says so)."""
    return GROUP_MARK in str((described or {}).get("Description") or "")


def unfinished_group_problems(name, described, planned, parameters):
    """A group this drill made but left partly set (a ModifyDBParameterGroup batch refused or throttled, a run killed
    between the create and the last batch) is not used as is: the problem names the planned values it lacks.

    ``planned`` is ``{name: value}`` the drill sets in a group it creates; ``parameters`` the group's parameters
    (DescribeDBParameters, at least those of Source user). A planned parameter the group has a user value for is
    set, whatever the value (a DBA may have changed it since); a group the drill did not make is the user's."""
    if not made_by_drill(described):
        return []
    given = {p.get("ParameterName") for p in parameters or [] if p.get("Source") == "user"}
    missing = sorted(set(planned or {}) - given)
    if not missing:
        return []
    return [f"target_parameter_group {name} was made by rds_upgrade_drill but lacks {len(missing)} of the "
            f"{len(planned)} values it sets ({', '.join(missing)}): a run that created it stopped part way; delete "
            "the group (nothing should use it yet) and run again with create_parameter_group=true, or set those "
            "values in it"]


def parameter_batches(values, size=20):
    """ModifyDBParameterGroup's ``Parameters`` for ``{name: value}``, in batches of at most 20 (RDS's limit)."""
    items = [{"ParameterName": k, "ParameterValue": str(v), "ApplyMethod": "pending-reboot"}
             for k, v in sorted(values.items())]
    return [items[i:i + size] for i in range(0, len(items), size)]


# --------------------------------------------------------------------------------------------------------------------
# The plan


def name_taken_problems(plan, snapshot_exists, instance_exists):
    """The names the rehearsal creates that already exist (a user-given snapshot_identifier or target_identifier):
    found before CreateDBSnapshot freezes I/O on the source, not by RDS after it."""
    found = []
    if snapshot_exists:
        found.append(f"a DB snapshot named {plan['snapshot']} already exists: give another snapshot_identifier "
                     "(or leave it out for a generated name)")
    if instance_exists:
        found.append(f"a DB instance named {plan['target']} already exists: give another target_identifier "
                     "(or leave it out for a generated name)")
    return found


def default_snapshot_identifier(source, started_at, suffix):
    stamp = parse_utc(started_at).strftime("%Y%m%d%H%M%S")
    tail = f"-upgrade-drill-{stamp}-{suffix}"
    return f"{source.strip()[:IDENTIFIER_MAX - len(tail)].rstrip('-')}{tail}".lower()


def plan_rehearsal(params, source, target_version, group, started_at, drill_id, owner=None):
    """Everything the rehearsal will do, decided before its first mutating call.

    ``source`` is the described source instance; ``group`` the :func:`parameter_group_choice`. Returns the snapshot
    request, the restore (restore_drill.instance_restore_request), the upgrade request, the identifiers it creates and
    their tags. The source appears only as the snapshot's source.
    """
    suffix = drill_id.rsplit("-", 1)[-1][:6]
    source_id = source["DBInstanceIdentifier"]
    tags = restore_drill.drill_tags(drill_id, started_at, params.get("ttl_hours") or 24, params.get("tags"),
                                    owner=owner)
    snapshot = params.get("snapshot_identifier") or default_snapshot_identifier(source_id, started_at, suffix)
    target = params.get("target_identifier") or restore_drill.default_target_identifier(
        source_id, started_at, suffix=suffix)
    tags[restore_drill.DRILL_SNAPSHOT_TAG] = snapshot
    point = {"type": "snapshot", "snapshot_identifier": snapshot}
    operation, restore = restore_drill.instance_restore_request(source, point, target, tags,
                                                                params.get("db_instance_class"))
    major = is_major_upgrade(source["EngineVersion"], target_version)
    upgrade = {"DBInstanceIdentifier": target, "EngineVersion": target_version, "ApplyImmediately": True,
               "AllowMajorVersionUpgrade": major, "DBParameterGroupName": group["name"]}
    if not major and group["action"] == "default":
        # a minor upgrade keeps the family: the copy keeps the source's group, so the benchmark compares versions
        del upgrade["DBParameterGroupName"]
    creates = [{"kind": SNAPSHOT, "identifier": snapshot}, {"kind": "instance", "identifier": target}]
    steps = [{"call": "CreateDBSnapshot", "resource": snapshot},
             {"call": "RestoreDBInstanceFromDBSnapshot", "resource": target},
             {"call": "ModifyDBInstance", "resource": target},
             {"call": "DeleteDBInstance", "resource": target},
             {"call": "DeleteDBSnapshot", "resource": snapshot}]
    if group["action"] == "create":
        steps.insert(0, {"call": "CreateDBParameterGroup", "resource": group["name"]})
    return {"drill_id": drill_id, "tags": tags, "snapshot": snapshot, "target": target,
            "from_version": source["EngineVersion"], "to_version": target_version, "major": major,
            "parameter_group": group,
            "snapshot_request": {"DBSnapshotIdentifier": snapshot, "DBInstanceIdentifier": source_id,
                                 "Tags": tag_list(tags)},
            "restore_operation": operation, "restore_request": restore, "upgrade_request": upgrade,
            "creates": creates, "steps": steps}


# --------------------------------------------------------------------------------------------------------------------
# What the upgrade did


def upgrade_events(events):
    """The events of the rehearsal's copy that are about the upgrade, oldest first, as ``{at, message}``."""
    found = []
    for event in sorted(events or [], key=lambda e: str(e.get("Date") or "")):
        message = event.get("Message") or ""
        if "upgrade" in message.lower() or "pg_upgrade" in message.lower():
            found.append({"at": event.get("Date"), "message": message})
    return found


def failure_event(events):
    """The message of the last event that says why the upgrade failed, or None."""
    failing = [e for e in upgrade_events(events)
               if any(word in e["message"].lower() for word in UPGRADE_FAILURE_WORDS)
               and not any(word in e["message"].lower() for word in ("started", "starting", "in progress"))]
    return failing[-1]["message"] if failing else None


def upgrade_outcome(described, from_version, to_version, events):
    """``{upgraded, engine_version, status, failure}`` of the copy after its upgrade settled."""
    engine = (described or {}).get("EngineVersion")
    upgraded = engine is not None and version_key(engine) == version_key(to_version)
    failure = None
    if not upgraded:
        why = failure_event(events)
        failure = (f"RDS did not upgrade the copy from {from_version} to {to_version} (it runs {engine}): "
                   + (why or "no event said why: read the pg_upgrade logs of the copy"))
    return {"upgraded": upgraded, "engine_version": engine, "status": (described or {}).get("DBInstanceStatus"),
            "failure": failure, "failure_event": None if upgraded else failure_event(events)}


def upgrade_settled(described, to_version, seen_change):
    """True once the copy is available again after the upgrade: on the target version, or back on the old one after
    RDS left the available state (``seen_change``: a status other than available was seen since the request)."""
    if not described or described.get("DBInstanceStatus") != "available":
        return False
    pending = (described.get("PendingModifiedValues") or {}).get("EngineVersion")
    if pending:
        return False
    engine = described.get("EngineVersion")
    return (engine is not None and version_key(engine) == version_key(to_version)) or seen_change


# --------------------------------------------------------------------------------------------------------------------
# Benchmark


def benchmark_summary(before, after, max_slowdown_percent=None):
    """Median seconds of ``benchmark_sql`` on each version and the slowdown in percent (negative: faster).

    ``before`` and ``after`` are lists of run durations (seconds); a side that did not run is None or empty.
    """
    summary = {"before_median_seconds": None, "after_median_seconds": None, "before_runs": len(before or []),
               "after_runs": len(after or []), "slowdown_percent": None, "max_slowdown_percent": max_slowdown_percent,
               "held": None}
    if before:
        summary["before_median_seconds"] = round(statistics.median(before), 6)
    if after:
        summary["after_median_seconds"] = round(statistics.median(after), 6)
    if before and after and summary["before_median_seconds"] > 0:
        summary["slowdown_percent"] = round((summary["after_median_seconds"] / summary["before_median_seconds"] - 1)
                                            * 100, 1)
    if max_slowdown_percent is not None:
        summary["held"] = summary["slowdown_percent"] is not None and \
            summary["slowdown_percent"] <= max_slowdown_percent
    return summary


def pgbench_summary(before_tps, after_tps, max_slowdown_percent=None, seconds=None):
    """pgbench's select-only throughput on each version and the slowdown in percent (fewer transactions per second
    after the upgrade is slower: positive)."""
    summary = {"seconds": seconds, "before_tps": before_tps, "after_tps": after_tps, "slowdown_percent": None,
               "max_slowdown_percent": max_slowdown_percent, "held": None}
    if before_tps and after_tps:
        summary["slowdown_percent"] = round((before_tps / after_tps - 1) * 100, 1)
    if max_slowdown_percent is not None:
        summary["held"] = summary["slowdown_percent"] is not None and \
            summary["slowdown_percent"] <= max_slowdown_percent
    return summary


def pgbench_tps(output):
    """Transactions per second from pgbench's output (``tps = 1234.5 (without initial connection time)``)."""
    match = re.search(r"tps = ([0-9.]+)", output or "")
    return float(match.group(1)) if match else None


# --------------------------------------------------------------------------------------------------------------------
# Verdict


def blockers(checklist):
    """The checklist's failed checks that stop an upgrade, in its order."""
    return [c for c in checklist or [] if c.get("blocker") and not c.get("passed")]


def objectives(checklist, measured, checks_before, checks_after, benchmark=None, max_downtime_seconds=None,
               max_upgrade_seconds=None, cleanup=None, rehearsed=True, pgbench=None):
    """The verdict table: checklist blockers, the upgrade, the checks on each side, benchmark, outage, cleanup."""
    table = []
    for check in blockers(checklist):
        table.append({"name": f"checklist: {check['name']}", "objective": check.get("expected") or "passed",
                      "observed": check.get("value"), "unit": None, "held": False})
    if not rehearsed:
        if not table:
            table.append({"name": "checklist", "objective": "no blocker", "observed": "no blocker", "unit": None,
                          "held": True})
        return table
    table.append({"name": "upgraded", "objective": measured.get("to_version"),
                  "observed": measured.get("server_version_after") or measured.get("engine_version_after"),
                  "unit": None, "held": bool(measured.get("upgraded"))})
    for side, checks in (("before", checks_before), ("after", checks_after)):
        for check in checks or []:
            table.append({"name": f"check {side}: {check['name']}", "objective": check["expect"],
                          "observed": check["observed"] if check["message"] is None or check["observed"] is not None
                          else check["message"], "unit": None, "held": bool(check["passed"])})
    if benchmark and benchmark.get("max_slowdown_percent") is not None:
        table.append({"name": "benchmark slowdown", "objective": benchmark["max_slowdown_percent"],
                      "observed": benchmark.get("slowdown_percent"), "unit": "%", "held": bool(benchmark["held"])})
    if pgbench and pgbench.get("max_slowdown_percent") is not None:
        table.append({"name": "pgbench slowdown", "objective": pgbench["max_slowdown_percent"],
                      "observed": pgbench.get("slowdown_percent"), "unit": "%", "held": bool(pgbench["held"])})
    if max_downtime_seconds is not None:
        downtime = measured.get("downtime_seconds")
        table.append({"name": "downtime_seconds", "objective": max_downtime_seconds, "observed": downtime,
                      "unit": "s", "held": downtime is not None and downtime <= max_downtime_seconds})
    if max_upgrade_seconds is not None:
        seconds = measured.get("upgrade_seconds")
        table.append({"name": "upgrade_seconds", "objective": max_upgrade_seconds, "observed": seconds, "unit": "s",
                      "held": seconds is not None and seconds <= max_upgrade_seconds})
    row = restore_drill.cleanup_objective(cleanup)
    return table + ([row] if row else [])


def go_ahead(checklist, table, failure=None):
    """Whether production may go ahead with the upgrade, and what to fix first (most important first).

    The checklist's blockers come first, each with its fix; then the upgrade's own failure (RDS's words), then every
    other objective that did not hold. The non-blocking checks that failed are listed as advice, not as stoppers.
    """
    fix_first = []
    for check in blockers(checklist):
        fix_first.append(f"{check['name']}: {check.get('fix') or 'see the checklist'}")
    if failure:
        fix_first.append(failure)
    for row in table:
        if not row["held"] and not row["name"].startswith("checklist: "):
            fix_first.append(f"{row['name']} did not hold (observed {row['observed']}, objective {row['objective']})")
    advice = [f"{c['name']}: {c.get('fix')}" for c in checklist or []
              if not c.get("passed") and not c.get("blocker") and c.get("fix")]
    return {"go_ahead": not fix_first, "fix_first": fix_first, "advice": advice}


# --------------------------------------------------------------------------------------------------------------------
# Cleanup of the snapshot (the instance's cleanup is restore_drill.cleanup_plan's)


def snapshot_cleanup_step(identifier, described, drill_id, confirmed=True):
    """``{kind, identifier, action, reason}`` for the rehearsal's manual snapshot, as restore_drill.cleanup_plan does
    for instances: deleted only while it carries this drill's id."""
    step = {"kind": SNAPSHOT, "identifier": identifier, "action": "delete", "reason": None}
    if described is None:
        step.update(action="gone", reason="already gone")
        return step
    tags = restore_drill.tags_of(described)
    if tags.get(restore_drill.DRILL_ID_TAG) != drill_id:
        if not confirmed:
            step.update(action="not_ours", reason=f"{identifier} existed already: the create call failed and it does "
                                                  f"not carry {restore_drill.DRILL_ID_TAG}={drill_id}")
        else:
            step.update(action="refuse", reason=f"{identifier} does not carry {restore_drill.DRILL_ID_TAG}={drill_id}")
    elif str(described.get("Status") or "") == "deleting":
        step.update(action="wait", reason="already deleting")
    return step

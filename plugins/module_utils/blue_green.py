# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RDS blue/green deployments of a PostgreSQL DB instance: option checks, pre-checks, which deployment is the one a
run is about, the plan for each state, and the verdict of a switchover, for dbre.rds.rds_blue_green.

Pure functions over boto3-shaped dicts (DescribeBlueGreenDeployments, DescribeDBInstances, DescribeDBEngineVersions,
DescribeDBParameterGroups); the module does the calls.

A deployment is found by the instance it is about, never by position in a list: before the switchover the instance
is its ``Source``; after it, the instance that took the name (the former green) is its ``Target`` and the old blue,
renamed ``<id>-old1``, its ``Source``. The old blue is deleted only when it is that ``SourceMember`` of a completed
switchover, not the instance that now carries the name, and proven to be the instance the deployment was made from by
something other than its name (ARNs are made of names: a later deployment's old blue takes the same ``<id>-old1``):
the resource id recorded at creation, and an instance created before the deployment.
"""

from __future__ import annotations

from ansible_collections.dbre.rds.plugins.module_utils import cloudwatch_lag
from ansible_collections.dbre.rds.plugins.module_utils import upgrade_checklist
from ansible_collections.dbre.rds.plugins.module_utils import upgrade_drill
from ansible_collections.dbre.rds.plugins.module_utils.clock import parse_utc
from ansible_collections.dbre.rds.plugins.module_utils.probing import valid_table_name
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import identifier_problems

STATES = ("present", "switched_over", "absent")

PROVISIONING = "PROVISIONING"
AVAILABLE = "AVAILABLE"
SWITCHOVER_IN_PROGRESS = "SWITCHOVER_IN_PROGRESS"
SWITCHOVER_COMPLETED = "SWITCHOVER_COMPLETED"
INVALID_CONFIGURATION = "INVALID_CONFIGURATION"
SWITCHOVER_FAILED = "SWITCHOVER_FAILED"
DELETING = "DELETING"
# A deployment in one of these will never become ready by waiting: it has to be deleted.
FAILED_STATES = frozenset([INVALID_CONFIGURATION, SWITCHOVER_FAILED])
# RDS bounds SwitchoverTimeout (seconds).
SWITCHOVER_TIMEOUT_MIN = 30
SWITCHOVER_TIMEOUT_MAX = 3600
NAME_MAX = 60
# RDS needs logical replication on blue for a PostgreSQL blue/green deployment.
LOGICAL_REPLICATION = "rds.logical_replication"
TARGET_OPTIONS = ("target_engine_version", "target_db_parameter_group_name", "target_db_instance_class")
ACTIONS = {"create": "CreateBlueGreenDeployment", "switchover": "SwitchoverBlueGreenDeployment",
           "delete": "DeleteBlueGreenDeployment", "delete_old_blue": "DeleteDBInstance"}
# The tag every deployment this collection creates carries: state=absent without a name deletes only those.
MANAGED_TAG = ("dbre:managed-by", "dbre.rds")
# The blue's DbiResourceId (immutable, unlike its name and ARN), recorded on the deployment at creation: after the
# switchover it tells the deployment's own old blue from another instance under the same name.
BLUE_RESOURCE_TAG = "dbre:blue-dbi-resource-id"
EVENT_SOURCE_TYPE = "blue-green-deployment"
# RDS event messages of a switchover (source type blue-green-deployment), lower case.
SWITCHOVER_EVENTS = ("switchover started", "switchover canceled", "switchover cancelled", "switchover completed",
                     "switchover failed")


# ---------------------------------------------------------------------------------------------------------- options

def default_deployment_name(identifier):
    """``<identifier>-blue-green``, cut to RDS's 60 characters without a trailing hyphen."""
    return f"{identifier}-blue-green"[:NAME_MAX].rstrip("-")


def default_final_snapshot(old_blue, now=None):
    """``<old blue>-final``; with ``now``, ``<old blue>-final-<UTC timestamp>`` (``%Y%m%d%H%M%S``, as
    rds_provision's final snapshots), the name when the first is taken (the next upgrade's old blue has the same
    name)."""
    name = f"{old_blue}-final" if now is None else f"{old_blue}-final-{as_utc(now):%Y%m%d%H%M%S}"
    return name[:255].rstrip("-")


def final_snapshot_candidates(old_blue, given, now):
    """The names to try for the old blue's final snapshot, in order: the user's, or the default and then the
    timestamped default."""
    if given:
        return [given]
    return [default_final_snapshot(old_blue), default_final_snapshot(old_blue, now)]


def choose_final_snapshot(candidates, existing):
    """``(name, problems)``: the first candidate no snapshot has taken (``existing``: the names that exist)."""
    free = [name for name in candidates if name not in existing]
    if free:
        return free[0], []
    if len(candidates) == 1:
        return None, [f"a snapshot named {candidates[0]} exists already: give final_snapshot_identifier another name"]
    return None, [f"snapshots named {' and '.join(candidates)} exist already: give final_snapshot_identifier"]


def option_problems(params):
    """Every problem with the options alone, each naming the option and the fix (empty when they are fine)."""
    problems = identifier_problems(params.get("db_instance_identifier"), "db_instance_identifier")
    name = params.get("blue_green_deployment_name")
    if name is not None:
        problems += identifier_problems(name, "blue_green_deployment_name", maximum=NAME_MAX)
    state = params.get("state")
    targets = [key for key in TARGET_OPTIONS if params.get(key)]
    if state == "present" and not targets:
        problems.append("state=present needs at least one of " + ", ".join(TARGET_OPTIONS)
                        + ": a green copy that changes nothing has nothing to switch over to")
    version = params.get("target_engine_version")
    if version is not None and not valid_version(version):
        problems.append(f"target_engine_version {version!r} is not a PostgreSQL version such as 18.6 or 15.8")
    if params.get("target_db_parameter_group_name") is not None:
        group = str(params["target_db_parameter_group_name"])
        if not group.strip() or len(group) > 255:
            problems.append("target_db_parameter_group_name must be the name of a DB parameter group (1 to 255 "
                            "characters)")
    timeout = params.get("switchover_timeout")
    if timeout is not None and not SWITCHOVER_TIMEOUT_MIN <= timeout <= SWITCHOVER_TIMEOUT_MAX:
        problems.append(f"switchover_timeout must be {SWITCHOVER_TIMEOUT_MIN} to {SWITCHOVER_TIMEOUT_MAX} seconds "
                        f"(RDS's bounds), not {timeout}")
    for key in ("max_lag_seconds", "max_downtime_seconds"):
        if params.get(key) is not None and params[key] < 0:
            problems.append(f"{key} must not be negative")
    if params.get("max_lost_writes") is not None and params["max_lost_writes"] < 0:
        problems.append("max_lost_writes must not be negative")
    for key in ("wait_timeout", "poll_interval", "probe_interval", "probe_timeout"):
        if params.get(key) is not None and params[key] <= 0:
            problems.append(f"{key} must be above 0")
    if params.get("delete_old_blue") and state != "absent":
        problems.append("delete_old_blue is for state=absent (the old blue exists only after the switchover)")
    table = params.get("probe_table")
    if table is not None and not valid_table_name(table):
        problems.append(f"probe_table {table!r} must be a plain lower-case identifier (letters, digits, _)")
    snapshot = params.get("final_snapshot_identifier")
    if snapshot is not None:
        problems += identifier_problems(snapshot, "final_snapshot_identifier", maximum=255)
        if not params.get("delete_old_blue"):
            problems.append("final_snapshot_identifier is the snapshot taken before delete_old_blue=true deletes "
                            "the old blue: set delete_old_blue=true or leave it out")
    # The checklist's own check of extension_versions (the pre-checks run its database checks with them).
    problems += upgrade_checklist.option_problems({"extension_versions": params.get("extension_versions")})
    return problems


# ---------------------------------------------------------------------------------------------------------- versions

def valid_version(version):
    try:
        upgrade_drill.version_key(version)
    except ValueError:
        return False
    return True


def major_of(version):
    return upgrade_drill.major_of(version) if valid_version(version) else None


def target_version_problems(current, target, engine_versions):
    """Problems with ``target`` as the green's version (``engine_versions``: DescribeDBEngineVersions of the current
    version and the target). The rehearsal's rules (offered, no downgrade, a valid upgrade target); a blue/green
    deployment is the consent to a major upgrade, and the same version is fine (a new class or parameter group)."""
    if target is None or target == current:
        return []
    return upgrade_drill.target_problems(current, target, engine_versions, allow_major_version_upgrade=True)


def target_family(engine_versions, current, target):
    """The parameter group family the green runs on (``postgres18``)."""
    return upgrade_drill.target_family(engine_versions, target or current)


def parameter_group_problems(name, group, family):
    """``group`` is DescribeDBParameterGroups of ``name`` (None when it does not exist)."""
    if name is None:
        return []
    if group is None:
        return [f"target_db_parameter_group_name {name} does not exist: create it (family {family}), for example "
                "with dbre.rds.rds_upgrade_drill's create_parameter_group or amazon.aws.rds_instance_param_group"]
    if family and group.get("DBParameterGroupFamily") != family:
        return [f"target_db_parameter_group_name {name} is of family {group.get('DBParameterGroupFamily')}, not "
                f"{family} (the target version's): give a {family} group"]
    return []


def logical_replication_problems(identifier, group_name, value):
    """RDS refuses a PostgreSQL blue/green deployment whose blue does not have rds.logical_replication=1."""
    if str(value).strip() == "1":
        return []
    shown = value if value is not None else "unset (0)"
    return [f"{identifier}'s parameter group {group_name} has {LOGICAL_REPLICATION}={shown}: RDS needs "
            f"{LOGICAL_REPLICATION}=1 for a PostgreSQL blue/green deployment; set it in a custom parameter group "
            "(a static parameter: reboot the instance) and run again"]


def blocker_problems(identifier, checks):
    """The failed blocker checks of the pre-upgrade checklist (upgrade_checklist.evaluate), as refusals."""
    problems = []
    for check in checks or []:
        if check.get("blocker") and not check.get("passed"):
            fix = f": {check['fix']}" if check.get("fix") else ""
            value = f" ({check['value']})" if check.get("value") not in (None, "", [], {}) else ""
            problems.append(f"{identifier} has a blocker, {check.get('name')}{value}{fix}")
    return problems


def instance_problems(identifier, instance):
    """Why the instance cannot be the blue of a new deployment (None-safe)."""
    if instance is None:
        return [f"DB instance {identifier} does not exist: check db_instance_identifier and the region"]
    problems = []
    if instance.get("DBClusterIdentifier"):
        problems.append(f"{identifier} is a member of the Aurora cluster {instance['DBClusterIdentifier']}: this "
                        "module makes blue/green deployments of DB instances")
    if instance.get("Engine") != "postgres":
        problems.append(f"{identifier} runs {instance.get('Engine')}, not postgres: this module is for RDS for "
                        "PostgreSQL")
    if instance.get("ReadReplicaSourceDBInstanceIdentifier"):
        problems.append(f"{identifier} is a read replica: make the deployment of its source instead")
    if instance.get("DBInstanceStatus") != "available":
        problems.append(f"{identifier} is {instance.get('DBInstanceStatus')}, not available: wait until it is")
    return problems


def lag_problems(greens, lags, max_lag_seconds):
    """``lags`` maps each green identifier to its ReplicaLag in seconds (None: no datapoint)."""
    problems = []
    for green in greens:
        lag = lags.get(green)
        if lag is None:
            problems.append(f"the green {green} has no recent ReplicaLag (no datapoint whose minute ended in the last "
                            f"{cloudwatch_lag.RECENT_PERIODS} minutes): it has published none yet or its replication "
                            "stopped; wait until it publishes it (state=present waits for it)")
        elif lag > max_lag_seconds:
            problems.append(f"the green {green} lags {lag:g} s behind blue, more than max_lag_seconds="
                            f"{max_lag_seconds:g}: wait until it has caught up")
    return problems


# -------------------------------------------------------------------------------------------------- the deployment

def name_of_arn(arn):
    return str(arn or "").rsplit(":", 1)[-1]


def members(deployment):
    """``[(source ARN, target ARN, status)]`` of the deployment's switchover details (or its Source and Target)."""
    details = (deployment or {}).get("SwitchoverDetails") or []
    found = [(d.get("SourceMember"), d.get("TargetMember"), d.get("Status")) for d in details]
    if not found and deployment:
        found = [(deployment.get("Source"), deployment.get("Target"), deployment.get("Status"))]
    return found


def involves(deployment, arn):
    return any(arn in (source, target) for source, target, _status in members(deployment)) \
        or arn in (deployment.get("Source"), deployment.get("Target"))


def choose_deployment(deployments, arn, identifier, name=None):
    """The one deployment about the instance ``arn`` (filtered reads by source and by target, merged), and problems.

    ``name`` (the user's blue_green_deployment_name) must match when given; a deployment about the instance under
    another name is a problem, since RDS lets an instance be the blue of one deployment at a time.
    """
    seen, about = set(), []
    for deployment in deployments or []:
        key = deployment.get("BlueGreenDeploymentIdentifier")
        if key in seen or not involves(deployment, arn):
            continue
        seen.add(key)
        about.append(deployment)
    named = [d for d in about if name is None or d.get("BlueGreenDeploymentName") == name]
    others = [d for d in about if d not in named]
    if others and not named:
        listed = ", ".join(f"{d.get('BlueGreenDeploymentName')} ({d.get('BlueGreenDeploymentIdentifier')}, "
                           f"{d.get('Status')})" for d in others)
        return None, [f"{identifier} is already in the blue/green deployment {listed}: give its name as "
                      "blue_green_deployment_name, or delete it first (state=absent with that name)"]
    if len(named) > 1:
        listed = ", ".join(f"{d.get('BlueGreenDeploymentIdentifier')} ({d.get('Status')})" for d in named)
        return None, [f"{identifier} is in several blue/green deployments ({listed}): delete the ones you do not "
                      "mean, then run again"]
    return (named[0] if named else None), []


def switched_over(deployment):
    return (deployment or {}).get("Status") == SWITCHOVER_COMPLETED


def green_arns(deployment):
    """The green environment's instance ARNs (the switchover details' targets)."""
    return [target for _source, target, _status in members(deployment) if target]


def is_ready(deployment):
    """Ready to switch over: the deployment and every member AVAILABLE."""
    return bool(deployment) and deployment.get("Status") == AVAILABLE \
        and all(status == AVAILABLE for _s, _t, status in members(deployment))


def has_failed(deployment):
    return (deployment or {}).get("Status") in FAILED_STATES


def state_of(deployment):
    """One state string of a deployment for the wait transitions."""
    if deployment is None:
        return "gone"
    tasks = [f"{t.get('Name')}={t.get('Status')}" for t in deployment.get("Tasks") or []
             if t.get("Status") != "COMPLETED"]
    details = deployment.get("StatusDetails")
    why = f": {details}" if details and deployment.get("Status") in FAILED_STATES | {AVAILABLE} else ""
    return deployment.get("Status", "unknown") + (f" ({', '.join(tasks)})" if tasks else "") + why


def partly_switched(deployment):
    """A switchover started on the deployment and did not complete: the deployment is ``SWITCHOVER_FAILED``, or one of
    its members switched over (or failed to) while the deployment is not ``SWITCHOVER_COMPLETED``. Part of its green
    may carry production then."""
    if not deployment or switched_over(deployment):
        return False
    return deployment.get("Status") == SWITCHOVER_FAILED or any(
        status in (SWITCHOVER_COMPLETED, SWITCHOVER_FAILED) for _s, _t, status in members(deployment))


def switchover_status_evidence(deployment):
    """What in the deployment shows that a SwitchoverBlueGreenDeployment whose answer was lost reached RDS: it is in
    progress, completed or failed (None otherwise: AVAILABLE may be a switchover already rolled back)."""
    status = (deployment or {}).get("Status")
    if status in (SWITCHOVER_IN_PROGRESS, SWITCHOVER_COMPLETED, SWITCHOVER_FAILED):
        return f"status {status}"
    return None


def switchover_event_evidence(events, since):
    """The first of the deployment's switchover events (DescribeEvents of source type blue-green-deployment: started,
    canceled, completed) dated ``since`` or later, as a short text; None when there is none. A switchover that RDS
    rolled back before the deployment was read again shows only here, and must not be sent a second time."""
    since = as_utc(since)
    for event in sorted(events or [], key=lambda e: as_utc(e.get("Date")) or since):
        date = as_utc(event.get("Date"))
        message = str(event.get("Message") or "")
        if date is not None and date >= since and any(text in message.lower() for text in SWITCHOVER_EVENTS):
            return f"event {message!r} at {date.isoformat()}"
    return None


def switchover_stopped(deployment, seen_in_progress):
    """The switchover cannot complete any more: the deployment is gone or failed, or it is AVAILABLE again after it
    was in progress (RDS rolled it back at the switchover timeout)."""
    if deployment is None or has_failed(deployment):
        return True
    return seen_in_progress and deployment.get("Status") == AVAILABLE


def version_matches(wanted, found):
    """``found`` (an instance's EngineVersion) is the ``wanted`` target version: equal, or of that major when the
    target names a major only ("18" matches "18.6"). A later minor does not match a full target: a target below the
    instance's minor is a downgrade, refused by the version checks, never "already there"."""
    wanted, found = str(wanted), str(found or "")
    if wanted == found:
        return True
    return "." not in wanted and valid_version(wanted) and valid_version(found) and major_of(wanted) == major_of(found)


def green_mismatches(green, params):
    """How an existing green differs from the requested target (``green`` is its DescribeDBInstances)."""
    found = []
    wanted = {"target_engine_version": ("EngineVersion", green.get("EngineVersion")),
              "target_db_instance_class": ("DBInstanceClass", green.get("DBInstanceClass")),
              "target_db_parameter_group_name": ("DBParameterGroupName", parameter_group_of(green))}
    for option, (field, value) in wanted.items():
        if params.get(option) is None:
            continue
        same = version_matches(params[option], value) if option == "target_engine_version" \
            else params[option] == value
        if not same:
            found.append(f"{field} {value} (not {params[option]})")
    return found


def parameter_group_of(instance):
    groups = (instance or {}).get("DBParameterGroups") or [{}]
    return groups[0].get("DBParameterGroupName")


def at_target(instance, params):
    """True when the instance already runs everything the options ask of the green (and they ask something)."""
    asked = any(params.get(option) is not None for option in TARGET_OPTIONS)
    return bool(instance) and asked and not green_mismatches(instance, params)


def old_blue(deployment, arn, described):
    """The old blue instance of a completed switchover, checked against the deployment, and the problems.

    ``arn`` is the ARN of the instance that now carries the name (the former green); ``described`` maps ARNs to
    DescribeDBInstances results (None when gone). Returns ``(identifier or None, problems)``: None with no problem
    when the old blue is already gone.
    """
    if not switched_over(deployment):
        return None, []
    sources = [source for source, target, status in members(deployment)
               if source and status in (SWITCHOVER_COMPLETED, "MISSING_TARGET")]
    targets = {target for _source, target, _status in members(deployment)}
    candidates = [s for s in sources if s != arn and s not in targets]
    if not candidates:
        return None, []
    if len(candidates) > 1:
        return None, [f"the deployment {deployment.get('BlueGreenDeploymentName')} lists several old blue instances "
                      f"({', '.join(candidates)}): delete them by hand"]
    candidate = candidates[0]
    instance = described.get(candidate)
    if instance is None:
        return None, []
    identifier = instance.get("DBInstanceIdentifier")
    if instance.get("DBInstanceArn") != candidate or identifier == name_of_arn(arn):
        return None, [f"the old blue {candidate} of deployment {deployment.get('BlueGreenDeploymentName')} does not "
                      "describe as that instance: delete it by hand after checking it"]
    if instance.get("DBInstanceStatus") == "deleting":
        return None, []
    unproven = identity_problems(deployment, instance)
    if unproven:
        return None, unproven
    if instance.get("DeletionProtection"):
        return identifier, [f"the old blue {identifier} has deletion protection on: turn it off, then run again"]
    return identifier, []


def as_utc(value):
    """A boto3 timestamp (datetime, or ISO 8601 text) as an aware UTC datetime; None when absent or unreadable."""
    if value is None or value == "":
        return None
    try:
        return parse_utc(value)
    except (TypeError, ValueError):
        return None


def tags_of(deployment):
    return {t.get("Key"): t.get("Value") for t in (deployment or {}).get("TagList") or []}


def identity_problems(deployment, instance):
    """Why ``instance`` (DescribeDBInstances of the name the switchover details give the old blue) is not proven to be
    the deployment's old blue, the instance it was made from (empty when it is).

    The name, hence the ARN, proves nothing: deployment A, switched over long ago and never deleted, still names
    ``<id>-old1``, which a later deployment B's old blue (A's former green) carries now. Proofs: the DbiResourceId
    recorded on the deployment at creation (:data:`BLUE_RESOURCE_TAG`) equals the instance's; the instance was created
    before the deployment (``InstanceCreateTime`` < ``CreateTime``: A's green, B's blue, was made by A, after A's
    creation). Every proof available must hold, and at least one must be available."""
    name = (deployment or {}).get("BlueGreenDeploymentName")
    identifier = instance.get("DBInstanceIdentifier")
    fix = "it is not this deployment's old blue (a later deployment's old blue may carry the name): check it and " \
          "delete it by hand if it is"
    proofs = 0
    recorded = tags_of(deployment).get(BLUE_RESOURCE_TAG)
    if recorded:
        if instance.get("DbiResourceId") != recorded:
            return [f"{identifier} is the resource {instance.get('DbiResourceId')}, not {recorded}, the blue the "
                    f"deployment {name} was made from: {fix}"]
        proofs += 1
    made, created = as_utc(instance.get("InstanceCreateTime")), as_utc((deployment or {}).get("CreateTime"))
    if made is not None and created is not None:
        if made >= created:
            return [f"{identifier} was created at {made.isoformat()}, not before the deployment {name} "
                    f"({created.isoformat()}): {fix}"]
        proofs += 1
    if not proofs:
        return [f"nothing but its name shows that {identifier} is the old blue of the deployment {name} (no "
                f"{BLUE_RESOURCE_TAG} tag on the deployment, no creation times to compare): check it and delete it "
                "by hand"]
    return []


def delete_old_blue_request(identifier, final_snapshot_identifier):
    """DeleteDBInstance of the old blue: a final snapshot, and its automated backups kept (RDS deletes them by
    default): they are the only point-in-time restore for the days before the deployment; they expire with their
    retention period."""
    return {"DBInstanceIdentifier": identifier, "SkipFinalSnapshot": False,
            "FinalDBSnapshotIdentifier": final_snapshot_identifier, "DeleteAutomatedBackups": False}


# ------------------------------------------------------------------------------------------------------------ plans

def create_request(name, source_arn, params, tags=None, blue_resource_id=None):
    """CreateBlueGreenDeployment, tagged as this collection's (:data:`MANAGED_TAG`) and with the blue's
    DbiResourceId (:data:`BLUE_RESOURCE_TAG`, when known) besides the user's ``tags``."""
    request = {"BlueGreenDeploymentName": name, "Source": source_arn}
    for option, key in (("target_engine_version", "TargetEngineVersion"),
                        ("target_db_parameter_group_name", "TargetDBParameterGroupName"),
                        ("target_db_instance_class", "TargetDBInstanceClass")):
        if params.get(option) is not None:
            request[key] = params[option]
    tags = dict(tags or {}, **{MANAGED_TAG[0]: MANAGED_TAG[1]})
    if blue_resource_id:
        tags[BLUE_RESOURCE_TAG] = blue_resource_id
    request["Tags"] = [{"Key": str(k), "Value": str(v)} for k, v in sorted(tags.items())]
    return request


def managed(deployment, identifier):
    """The deployment is this collection's: tagged :data:`MANAGED_TAG` at creation, or (made before the tag) under
    the default name of ``identifier``."""
    return tags_of(deployment).get(MANAGED_TAG[0]) == MANAGED_TAG[1] \
        or (deployment or {}).get("BlueGreenDeploymentName") == default_deployment_name(identifier)


def plan(state, deployment, instance, params, old_blue_identifier=None):
    """What a run of ``state`` does: ``{"actions", "changed", "problems", "note"}``.

    ``deployment`` is the chosen deployment (or None), ``instance`` the DB instance that carries the name now,
    ``old_blue_identifier`` the checked old blue (see :func:`old_blue`).
    """
    identifier = params["db_instance_identifier"]
    status = (deployment or {}).get("Status")
    name = (deployment or {}).get("BlueGreenDeploymentName")
    result = {"actions": [], "problems": [], "note": None}
    if state == "absent":
        if deployment is None:
            result["note"] = f"no blue/green deployment of {identifier}"
        elif status == DELETING:
            result["note"] = f"the deployment {name} is being deleted"
        elif partly_switched(deployment) and params.get("delete_target", True):
            states = ", ".join(f"{name_of_arn(target)} {member}" for _source, target, member in members(deployment))
            result["problems"].append(
                f"the deployment {name} is {status} ({states}): part of its green may already carry production, so it "
                "is not deleted with its green; check which instances serve the endpoints, then delete it with "
                "delete_target=false (and the green instances by hand once you are sure)")
        elif params.get("blue_green_deployment_name") is None and not managed(deployment, identifier):
            result["problems"].append(
                f"the blue/green deployment {name} ({deployment.get('BlueGreenDeploymentIdentifier')}, {status}) of "
                f"{identifier} was not made by dbre.rds (no tag {MANAGED_TAG[0]}={MANAGED_TAG[1]}, not named "
                f"{default_deployment_name(identifier)}): to delete it, give its name as blue_green_deployment_name")
        else:
            # The old blue (checked against the switchover details) goes first: the deployment is what names it,
            # so when its delete fails the deployment is still there and a rerun finds the old blue again.
            if old_blue_identifier and params.get("delete_old_blue"):
                result["actions"].append(ACTIONS["delete_old_blue"])
            result["actions"].append(ACTIONS["delete"])
    elif deployment is None:
        if at_target(instance, params):
            result["note"] = f"{identifier} already runs the target: nothing to deploy or switch over"
        elif state == "present":
            result["actions"].append(ACTIONS["create"])
        else:
            result["problems"].append(f"{identifier} has no blue/green deployment to switch over: create it with "
                                      "state=present first (with the target options given, a switchover already "
                                      "done is recognised)")
    elif status == SWITCHOVER_COMPLETED:
        result["note"] = f"the deployment {name} has switched over: {identifier} is the former green"
    elif status in FAILED_STATES:
        details = deployment.get("StatusDetails") or "no details"
        result["problems"].append(f"the deployment {name} is {status} ({details}): delete it with state=absent and "
                                  "create it again")
    elif status in (SWITCHOVER_IN_PROGRESS, DELETING):
        result["problems"].append(f"the deployment {name} is {status}: run again when it has finished")
    elif state == "present":
        result["note"] = f"the deployment {name} of {identifier} exists ({status})"
    elif state == "switched_over":
        if status != AVAILABLE:
            result["problems"].append(f"the deployment {name} is {status}, not AVAILABLE: wait until green is "
                                      "ready (state=present waits for it)")
        else:
            result["actions"].append(ACTIONS["switchover"])
    result["changed"] = bool(result["actions"])
    return result


# --------------------------------------------------------------------------------------------------------- verdict

NOT_MEASURED = "not measured"


def objectives(measured, params, probing):
    """The switchover's objectives, in the shape drill_report takes.

    Without write probes the lost writes are not measured: that objective is listed as not measured and not held, so
    the switchover cannot pass (0 lost writes is never assumed); it is not a breach either (see :func:`breach`)."""
    found = [{"name": "switched_over", "objective": True, "observed": bool(measured.get("switched_over")),
              "unit": None, "held": bool(measured.get("switched_over"))}]
    if not probing:
        found.append({"name": "lost_writes", "objective": params.get("max_lost_writes", 0),
                      "observed": NOT_MEASURED, "unit": None, "held": False})
    else:
        lost = measured.get("lost_writes")
        found.append({"name": "lost_writes", "objective": params.get("max_lost_writes", 0), "observed": lost,
                      "unit": None, "held": lost is not None and lost <= params.get("max_lost_writes", 0)})
        if params.get("max_downtime_seconds") is not None:
            downtime = measured.get("write_downtime_seconds")
            found.append({"name": "write_downtime_seconds", "objective": params["max_downtime_seconds"],
                          "observed": downtime, "unit": "s",
                          "held": downtime is not None and downtime <= params["max_downtime_seconds"]})
    return found


def verdict(found, failure=False):
    """``passed``, ``failed`` (a failure or a breached objective) or ``not_measured`` (the switchover held what was
    measured, but the lost writes were not measured: write probes off)."""
    if failure or any(not o["held"] and o["observed"] != NOT_MEASURED for o in found):
        return "failed"
    return "not_measured" if any(o["observed"] == NOT_MEASURED for o in found) else "passed"


def breach(identifier, found):
    broken = [o for o in found if not o["held"] and o["observed"] != NOT_MEASURED]
    if not broken:
        return None
    parts = [f"{o['name']} {o['observed']} (objective {o['objective']})" for o in broken]
    return f"the blue/green switchover of {identifier} breached its objectives: " + "; ".join(parts)

# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decisions of the failover drill, as pure functions over boto3-shaped dicts and probe samples.

Nothing here touches AWS, a database or the module: the module describes, probes and calls, and asks these functions
what the state means (pre-check problems, the plan, whether the writer moved, what clients saw, the verdict, the report).

A probe sample is a dict ``{"seq", "sent", "done", "ok", "error", "message"}``: ``seq`` numbers the probe (and the row a
write probe inserts), ``sent``/``done`` are seconds on the drill clock when the probe started and ended, ``error`` is
``None`` or a kind from :data:`ERROR_KINDS`.
"""

from __future__ import annotations

INSTANCE = "instance"
CLUSTER = "cluster"

ERROR_KINDS = ("connection", "read_only", "timeout", "other")

# Failover is impossible from these, or they mean the drill broke the resource: stop waiting at once.
BROKEN_STATES = frozenset(
    ["failed", "incompatible-parameters", "incompatible-restore", "inaccessible-encryption-credentials", "storage-full",
     "deleting", "stopped", "stopping"]
)

PENDING_IGNORED = frozenset(["PendingCloudwatchLogsExports"])


def option_problems(params):
    """Problems with option combinations that the argument spec cannot express, as messages saying what to change."""
    problems = []
    if params.get("target_db_instance_identifier") and not params.get("db_cluster_identifier"):
        problems.append("target_db_instance_identifier applies to Aurora only: give db_cluster_identifier as well")
    if params.get("probe_interval") is not None and params["probe_interval"] <= 0:
        problems.append("probe_interval must be greater than 0 seconds")
    if params.get("probe_settle_seconds") is not None and params["probe_settle_seconds"] < 0:
        problems.append("probe_settle_seconds must not be negative")
    if params.get("max_downtime_seconds") is not None and params["max_downtime_seconds"] < 0:
        problems.append("max_downtime_seconds must not be negative")
    if params.get("max_lost_writes") is not None and params["max_lost_writes"] < 0:
        problems.append("max_lost_writes must not be negative")
    if params.get("wait_timeout") is not None and params["wait_timeout"] < 1:
        problems.append("wait_timeout must be at least 1 second")
    return problems


def probing_wanted(params, has_credentials):
    """(probe?, problem or None): probing is on by default when credentials are given; asked for without them, an error."""
    asked = params.get("probe")
    if asked is False:
        if params.get("max_downtime_seconds") is not None:
            return False, ("max_downtime_seconds is judged on what clients see: it needs probing, so drop it or set "
                           "probe=true with login_user and login_password (or iam_auth=true)")
        return False, None
    if not has_credentials:
        if asked:
            return False, "probe=true needs DB credentials: give login_user and login_password (or iam_auth=true)"
        if params.get("max_downtime_seconds") is not None:
            return False, ("max_downtime_seconds is judged on what clients see: give login_user and login_password "
                           "(or iam_auth=true) so the module can probe the writer endpoint")
        return False, None
    return True, None


# ---------------------------------------------------------------------------------------------------------- pre-checks

def _pending(pending):
    return sorted(key for key, value in (pending or {}).items() if key not in PENDING_IGNORED and value not in (None, [], {}))


def instance_problems(identifier, instance, allow_pending_modifications=False):
    """Why a forced failover of the Multi-AZ DB instance ``identifier`` must not start (``instance`` is None if missing)."""
    if instance is None:
        return [f"Cannot fail over DB instance {identifier}: it does not exist in this region; check "
                "db_instance_identifier and region"]
    problems = []
    cluster = instance.get("DBClusterIdentifier")
    if cluster:
        problems.append(f"Cannot fail over DB instance {identifier} on its own: it belongs to DB cluster {cluster}; "
                        f"use db_cluster_identifier={cluster} instead")
        return problems
    status = instance.get("DBInstanceStatus")
    if status != "available":
        problems.append(f"Cannot fail over DB instance {identifier}: its status is {status}, not available; wait "
                        "until it is available and run the drill again")
    if not instance.get("MultiAZ"):
        problems.append(f"Cannot force a failover of DB instance {identifier}: it is a single-AZ instance "
                        "(MultiAZ is false), so a forced failover is impossible there (there is no standby to fail "
                        "over to); convert it to Multi-AZ first or drill a Multi-AZ instance")
    pending = _pending(instance.get("PendingModifiedValues"))
    if pending and not allow_pending_modifications:
        problems.append(f"Refusing to fail over DB instance {identifier}: it has pending modifications "
                        f"({', '.join(pending)}) that the reboot would apply; apply them first or set "
                        "allow_pending_modifications=true")
    return problems


def cluster_writer(cluster):
    """Identifier of the cluster's writer instance, or None."""
    for member in (cluster or {}).get("DBClusterMembers") or []:
        if member.get("IsClusterWriter"):
            return member.get("DBInstanceIdentifier")
    return None


def cluster_readers(cluster):
    """Identifiers of the cluster's reader instances, best failover candidate first (lowest promotion tier)."""
    readers = [m for m in (cluster or {}).get("DBClusterMembers") or [] if not m.get("IsClusterWriter")]
    readers.sort(key=lambda m: (m.get("PromotionTier", 1), m.get("DBInstanceIdentifier")))
    return [m.get("DBInstanceIdentifier") for m in readers]


def cluster_problems(identifier, cluster, members=None, target=None, allow_pending_modifications=False):
    """Why a failover of the DB cluster ``identifier`` must not start.

    ``members`` maps instance identifier to the described instance (for their status); ``target`` is the requested
    new writer or None.
    """
    if cluster is None:
        return [f"Cannot fail over DB cluster {identifier}: it does not exist in this region; check "
                "db_cluster_identifier and region"]
    members = members or {}
    problems = []
    status = cluster.get("Status")
    if status != "available":
        problems.append(f"Cannot fail over DB cluster {identifier}: its status is {status}, not available; wait until "
                        "it is available and run the drill again")
    writer = cluster_writer(cluster)
    readers = cluster_readers(cluster)
    if writer is None:
        problems.append(f"Cannot fail over DB cluster {identifier}: it has no writer instance; add one with "
                        "create_db_instance first")
    if not readers:
        problems.append(f"Cannot fail over DB cluster {identifier}: it has no reader instance to fail over to; add a "
                        "reader (create_db_instance with DBClusterIdentifier) first")
    if target:
        if target == writer:
            problems.append(f"Cannot fail over DB cluster {identifier} to {target}: {target} is already the writer; "
                            "name a reader as target_db_instance_identifier")
        elif target not in readers:
            problems.append(f"Cannot fail over DB cluster {identifier} to {target}: {target} is not a member of the "
                            f"cluster (readers: {', '.join(readers) or 'none'})")
    candidates = [target] if target in readers else readers
    for name in candidates:
        member_status = (members.get(name) or {}).get("DBInstanceStatus")
        if name in members and member_status != "available":
            problems.append(f"Cannot fail over DB cluster {identifier} to {name}: that reader's status is "
                            f"{member_status}, not available; wait until it is available")
    pending = _pending(cluster.get("PendingModifiedValues"))
    if pending and not allow_pending_modifications:
        problems.append(f"Refusing to fail over DB cluster {identifier}: it has pending modifications "
                        f"({', '.join(pending)}); apply them first or set allow_pending_modifications=true")
    return problems


def alarm_problems(names, alarms):
    """Guardrails: every alarm named in ``abort_if_alarms`` must exist and must not be in ALARM.

    ``alarms`` is the MetricAlarms (and CompositeAlarms) list that describe_alarms returned for those names.
    """
    by_name = {alarm.get("AlarmName"): alarm for alarm in alarms or []}
    problems = []
    for name in names or []:
        alarm = by_name.get(name)
        if alarm is None:
            problems.append(f"Cannot check guardrail alarm {name}: no CloudWatch alarm has that name in this region; "
                            "fix abort_if_alarms")
        elif alarm.get("StateValue") == "ALARM":
            reason = alarm.get("StateReason") or "no reason given"
            problems.append(f"Refusing to start the failover drill: CloudWatch alarm {name} is in ALARM ({reason}); "
                            "wait until it is OK or remove it from abort_if_alarms")
    return problems


# ---------------------------------------------------------------------------------------------------------------- plan

def writer_location(kind, described, members=None):
    """(writer instance identifier, its AZ) of a described instance or cluster."""
    if kind == INSTANCE:
        if not described:
            return None, None
        return described.get("DBInstanceIdentifier"), described.get("AvailabilityZone")
    writer = cluster_writer(described)
    return writer, ((members or {}).get(writer) or {}).get("AvailabilityZone")


def plan_failover(kind, identifier, described, members=None, target=None, probing=None):
    """What the drill will do: the API call with its parameters, the writer now and what must change."""
    writer, az = writer_location(kind, described, members)
    if kind == INSTANCE:
        api_params = {"DBInstanceIdentifier": identifier, "ForceFailover": True}
        expected = (f"the primary of {identifier} moves from {az} to "
                    f"{described.get('SecondaryAvailabilityZone') or 'the standby AZ'}")
        action = "reboot_db_instance"
    else:
        api_params = {"DBClusterIdentifier": identifier}
        if target:
            api_params["TargetDBInstanceIdentifier"] = target
        candidate = target or (cluster_readers(described) or [None])[0]
        expected = f"the writer of {identifier} moves from {writer} to {target or 'another instance'}"
        if not target and candidate:
            expected += f" (RDS usually picks {candidate}, the reader with the best promotion tier)"
        action = "failover_db_cluster"
    return {
        "kind": kind,
        "target": identifier,
        "action": action,
        "api_params": api_params,
        "writer_before": writer,
        "az_before": az,
        "secondary_az_before": described.get("SecondaryAvailabilityZone") if kind == INSTANCE else None,
        "requested_writer": target,
        "expected": expected,
        "probing": probing,
    }


def failover_moved(plan, writer_after, az_after):
    """True when the writer moved as planned: another AZ for an instance; another (the requested) writer for a cluster."""
    if plan["kind"] == INSTANCE:
        return az_after is not None and plan["az_before"] is not None and az_after != plan["az_before"]
    if writer_after is None or writer_after == plan["writer_before"]:
        return False
    return plan.get("requested_writer") in (None, writer_after)


def status_label(kind, described, members=None):
    """The state the failover wait records as a transition: status plus where the writer is."""
    if not described:
        return "missing"
    writer, az = writer_location(kind, described, members)
    if kind == INSTANCE:
        return f"{described.get('DBInstanceStatus')} ({az})"
    return f"{described.get('Status')} (writer {writer})"


def resource_status(kind, described):
    if not described:
        return None
    return described.get("DBInstanceStatus") if kind == INSTANCE else described.get("Status")


# --------------------------------------------------------------------------------------------------------- measurement

def _sample_time(sample, key):
    return None if sample is None else sample[key]


def measure_downtime(samples, requested_elapsed=None):
    """What clients saw, from probe samples in send order.

    Only probes sent at or after ``requested_elapsed`` (the failover request on the drill clock) count. The outage runs
    from the start of the first failed probe to the end of the first successful probe after the last failed one: that is
    when an application could work again. Returns elapsed seconds on the drill clock (``*_elapsed``) and
    ``observed_downtime_seconds`` (0.0 when no probe failed; None when probes never succeeded again).
    """
    window = [s for s in samples if requested_elapsed is None or s["sent"] >= requested_elapsed]
    failures = [s for s in window if not s["ok"]]
    result = {
        "first_failed_probe": None,
        "last_failed_probe": None,
        "first_success_after": None,
        "recovered": True,
        "observed_downtime_seconds": 0.0,
    }
    if not failures:
        return result
    first, last = failures[0], failures[-1]
    after = next((s for s in window if s["ok"] and s["sent"] > last["sent"]), None)
    result.update(first_failed_probe=first, last_failed_probe=last, first_success_after=after)
    if after is None:
        result.update(recovered=False, observed_downtime_seconds=None)
    else:
        result["observed_downtime_seconds"] = round(after["done"] - first["sent"], 3)
    return result


def settled_for(samples, since_elapsed, now_elapsed):
    """Seconds that probes sent after ``since_elapsed`` have all succeeded, up to ``now_elapsed`` (0 if none did)."""
    window = [s for s in samples if s["sent"] >= since_elapsed]
    if not window:
        return 0.0
    streak_start = None
    for sample in window:
        if sample["ok"]:
            if streak_start is None:
                streak_start = sample["done"]
        else:
            streak_start = None
    return 0.0 if streak_start is None else max(0.0, now_elapsed - streak_start)


def probe_counts(samples):
    """Probes sent, failed, failed per error kind, read-only errors and acknowledged writes."""
    by_kind = {kind: 0 for kind in ERROR_KINDS}
    for sample in samples:
        if not sample["ok"]:
            by_kind[sample.get("error") or "other"] = by_kind.get(sample.get("error") or "other", 0) + 1
    return {
        "probes_sent": len(samples),
        "probes_failed": sum(by_kind.values()),
        "probe_errors": by_kind,
        "read_only_errors": by_kind["read_only"],
    }


def acknowledged_writes(samples):
    """Numbers of the write probes whose commit the server acknowledged."""
    return [s["seq"] for s in samples if s["ok"]]


def account_writes(acknowledged, present, limit=50):
    """Compare acknowledged writes with the rows found afterwards. ``present`` None means the rows could not be read."""
    acknowledged = set(acknowledged)
    if present is None:
        return {"acknowledged_writes": len(acknowledged), "rows_found": None, "lost_writes": None,
                "lost_write_numbers": [], "unacknowledged_rows_found": None}
    present = set(present)
    lost = sorted(acknowledged - present)
    return {
        "acknowledged_writes": len(acknowledged),
        "rows_found": len(present),
        "lost_writes": len(lost),
        "lost_write_numbers": lost[:limit],
        # Commits whose acknowledgement the outage swallowed: present, but no client was told so.
        "unacknowledged_rows_found": len(present - acknowledged),
    }


def failover_events(events, since=None):
    """The failover started / completed events of this drill out of describe_events output (oldest first).

    ``since`` (an aware datetime, the request time less a little clock skew) drops the events of an earlier failover.
    """
    relevant = []
    for event in events or []:
        categories = [c.lower() for c in event.get("EventCategories") or []]
        message = (event.get("Message") or "").lower()
        if since is not None and event.get("Date") is not None and event["Date"] < since:
            continue
        if "failover" in categories or "failover" in message:
            relevant.append(event)
    relevant.sort(key=lambda e: e.get("Date"))
    started = next((e for e in relevant if "start" in (e.get("Message") or "").lower()), None)
    completed = next((e for e in relevant if any(w in (e.get("Message") or "").lower() for w in ("complete", "finished"))
                      and (started is None or e.get("Date") >= started.get("Date"))), None)
    return {"started": started, "completed": completed, "events": relevant}


# ------------------------------------------------------------------------------------------------------------- verdict

def judge(measurements, max_downtime_seconds=None, max_lost_writes=0, probing=False, probe_mode="write"):
    """Objectives in the shape the report writer takes, and ``passed``: the failover happened and every objective held."""
    happened = bool(measurements.get("failover_happened"))
    objectives = [{
        "name": "failover_happened",
        "objective": True,
        "observed": happened,
        "unit": None,
        "held": happened,
    }]
    if probing and max_downtime_seconds is not None:
        observed = measurements.get("observed_downtime_seconds")
        objectives.append({
            "name": "observed_downtime_seconds",
            "objective": max_downtime_seconds,
            "observed": observed,
            "unit": "s",
            "held": observed is not None and observed <= max_downtime_seconds,
        })
    if probing and probe_mode == "write" and max_lost_writes is not None:
        lost = measurements.get("lost_writes")
        objectives.append({
            "name": "lost_writes",
            "objective": max_lost_writes,
            "observed": lost,
            "unit": None,
            "held": lost is not None and lost <= max_lost_writes,
        })
    return objectives, all(item["held"] for item in objectives)


def breach_message(identifier, objectives):
    """The task's failure message when objectives did not hold."""
    broken = [item for item in objectives if not item["held"]]
    parts = []
    for item in broken:
        unit = f" {item['unit']}" if item.get("unit") else ""
        if item["name"] == "failover_happened":
            parts.append("the writer did not move")
        else:
            parts.append(f"{item['name']} was {item['observed']}{unit} against an objective of at most "
                         f"{item['objective']}{unit}")
    return (f"Failover drill of {identifier} failed: {'; '.join(parts)}; see the report, or set fail_on_breach=false "
            "to record the result without failing the task")


# -------------------------------------------------------------------------------------------------------------- report

def probe_timeline(downtime, at_of):
    """Timeline entries for the probe milestones; ``at_of(elapsed)`` turns drill-clock seconds into ISO UTC."""
    entries = []
    first, last, after = downtime["first_failed_probe"], downtime["last_failed_probe"], downtime["first_success_after"]
    if first:
        entries.append(_entry(first["sent"], at_of, f"first failed probe #{first['seq']} ({first.get('error')}: "
                                                    f"{first.get('message') or ''})".replace(": )", ")")))
    if last and last is not first:
        entries.append(_entry(last["sent"], at_of, f"last failed probe #{last['seq']} ({last.get('error')})"))
    if after:
        entries.append(_entry(after["done"], at_of, f"first successful probe after the outage #{after['seq']}"))
    return entries


def _entry(elapsed, at_of, event):
    return {"at": at_of(elapsed), "elapsed_seconds": round(elapsed, 3), "event": event}


def build_report(*, identifier, plan, started_at, finished_at, measurements, objectives, passed, timeline, details,
                 failure=None):
    """The drill report in the shared shape (see drill_report.py)."""
    kind = "Multi-AZ DB instance" if plan["kind"] == INSTANCE else "DB cluster"
    return {
        "title": f"Failover drill of {kind} {identifier}",
        "kind": "failover_test",
        "target": identifier,
        "started_at": started_at,
        "finished_at": finished_at,
        "passed": bool(passed) and failure is None,
        "failure": failure,
        "objectives": objectives,
        "timeline": sorted(timeline, key=lambda e: e["elapsed_seconds"]),
        "measurements": measurements,
        "details": details,
    }

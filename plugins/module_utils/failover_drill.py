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

import datetime

from ansible_collections.dbre.rds.plugins.module_utils.clock import parse_utc
from ansible_collections.dbre.rds.plugins.module_utils.clock import utc_iso
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import build_report as build_drill_report
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import report_name_problems
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import connection_problems
from ansible_collections.dbre.rds.plugins.module_utils.probing import leftover_reason
from ansible_collections.dbre.rds.plugins.module_utils.probing import parse_probe_marker
from ansible_collections.dbre.rds.plugins.module_utils.probing import valid_table_name
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import cluster_readers
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import cluster_writer
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import identifier_problems
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import proxy_fronts
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import proxy_port
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import proxy_target_names
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import standalone_instance_problem

INSTANCE = "instance"
CLUSTER = "cluster"

# What the probes connect to: the writer endpoint of the instance or cluster, or an RDS Proxy endpoint in front of it.
PROBE_WRITER = "writer"
PROBE_PROXY = "proxy"

ERROR_KINDS = ("connection", "read_only", "timeout", "other")

PENDING_IGNORED = frozenset(["PendingCloudwatchLogsExports"])

# Sane maxima: beyond these a value is a typo (milliseconds for seconds), not a wish.
MAX_WAIT_TIMEOUT = 86400
MAX_PROBE_INTERVAL = 60.0
MAX_PROBE_TIMEOUT = 60
MAX_POLL_INTERVAL = 300.0
# Statuses that show a forced failover under way (call_once's evidence that a lost request went through).
FAILING_OVER_STATES = frozenset(["rebooting", "failing-over"])


def _given(params, key):
    return params.get(key) is not None


def option_problems(params):
    """Problems with option values and combinations that the argument spec cannot express, as messages saying what
    to change. Only the options present in ``params`` are checked."""
    problems = []
    if params.get("target_db_instance_identifier") and not params.get("db_cluster_identifier"):
        problems.append("target_db_instance_identifier applies to Aurora only: give db_cluster_identifier as well")
    if _given(params, "probe_interval") and params["probe_interval"] <= 0:
        problems.append("probe_interval must be greater than 0 seconds")
    elif _given(params, "probe_interval") and params["probe_interval"] > MAX_PROBE_INTERVAL:
        problems.append(f"probe_interval must be at most {MAX_PROBE_INTERVAL:g} seconds (it sets the resolution of "
                        "the measured downtime)")
    if _given(params, "probe_timeout") and not 1 <= params["probe_timeout"] <= MAX_PROBE_TIMEOUT:
        problems.append(f"probe_timeout must be between 1 and {MAX_PROBE_TIMEOUT} seconds")
    if _given(params, "probe_settle_seconds") and params["probe_settle_seconds"] < 0:
        problems.append("probe_settle_seconds must not be negative")
    if _given(params, "max_downtime_seconds") and params["max_downtime_seconds"] < 0:
        problems.append("max_downtime_seconds must not be negative")
    if _given(params, "max_lost_writes") and params["max_lost_writes"] < 0:
        problems.append("max_lost_writes must not be negative")
    if _given(params, "wait_timeout") and params["wait_timeout"] < 1:
        problems.append("wait_timeout must be at least 1 second")
    elif _given(params, "wait_timeout") and params["wait_timeout"] > MAX_WAIT_TIMEOUT:
        problems.append(f"wait_timeout must be at most {MAX_WAIT_TIMEOUT} seconds (one day)")
    if _given(params, "poll_interval") and params["poll_interval"] <= 0:
        problems.append("poll_interval must be greater than 0 seconds")
    elif _given(params, "poll_interval") and params["poll_interval"] > MAX_POLL_INTERVAL:
        problems.append(f"poll_interval must be at most {MAX_POLL_INTERVAL:g} seconds")
    if _given(params, "wait_timeout") and params["wait_timeout"] >= 1:
        timeout = params["wait_timeout"]
        for key in ("probe_settle_seconds", "poll_interval", "probe_interval"):
            if _given(params, key) and params[key] > 0 and params[key] >= timeout:
                problems.append(f"{key} ({params[key]:g}) must be below wait_timeout ({timeout}), which bounds the "
                                "whole drill: raise wait_timeout or lower it")
    return problems


def problems(params, has_credentials):
    """Every problem with the options, checked before any AWS call: ``(probing, problems)``.

    Identifiers follow the RDS rule (a blank one is refused, never sent as a filter-less describe), report_name is a
    file name stem, ranges and combinations hold (:func:`option_problems`), probing has what it needs and the probe
    table name is a plain identifier.
    """
    found = []
    for key in ("db_instance_identifier", "db_cluster_identifier", "target_db_instance_identifier"):
        if params.get(key) is not None:
            found += identifier_problems(params[key], key)
    if any(not str(name or "").strip() for name in params.get("abort_if_alarms") or []):
        found.append("abort_if_alarms must not contain a blank alarm name: name each CloudWatch alarm")
    found += report_name_problems(params.get("report_name"))
    found += option_problems(params)
    probing, problem = probing_wanted(params, has_credentials)
    if problem:
        found.append(problem)
    found += probe_endpoint_option_problems(params, probing, problem is not None)
    if probing:
        found += connection_problems(params)
        if params.get("probe_mode") == "write" and not valid_table_name(params.get("probe_table") or ""):
            found.append("probe_table must be a plain lower-case identifier (letters, digits, underscores)")
    return probing, found


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


def probe_endpoint_option_problems(params, probing, probing_refused=False):
    """``probe_endpoint`` names an RDS Proxy (or one of its endpoints) the probes connect through: a valid name, only
    with probing, and never beside login_host/login_port, which would send the probes elsewhere."""
    name = params.get("probe_endpoint")
    if name is None:
        return []
    found = identifier_problems(name, "probe_endpoint")
    if not probing and not probing_refused:
        if params.get("probe") is False:
            found.append("probe_endpoint names the RDS Proxy endpoint the probes connect through, and probe=false "
                         "turns probing off: drop one of them")
        else:
            found.append("probe_endpoint names the RDS Proxy endpoint the probes connect through, so it needs "
                         "probing: give login_user and login_password (or iam_auth=true), or drop probe_endpoint")
    for key in ("login_host", "login_port"):
        if params.get(key) is not None:
            found.append(f"probe_endpoint and {key} both say where the probes connect: drop {key} (the module "
                         "connects to the proxy endpoint's address and port) or drop probe_endpoint")
    return found


# ---------------------------------------------------------------------------------------------------------- pre-checks

def _pending(pending):
    return sorted(key for key, value in (pending or {}).items() if key not in PENDING_IGNORED and value not in (None, [], {}))


def instance_problems(identifier, instance, allow_pending_modifications=False):
    """Why a forced failover of the Multi-AZ DB instance ``identifier`` must not start (``instance`` is None if missing)."""
    if instance is None:
        return [f"Cannot fail over DB instance {identifier}: it does not exist in this region; check "
                "db_instance_identifier and region"]
    problems = []
    member = standalone_instance_problem(identifier, instance)
    if member:
        problems.append(f"Cannot fail over DB instance {identifier} on its own: it belongs to DB cluster "
                        f"{instance['DBClusterIdentifier']} ({member})")
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


def writer_probe_path(identifier, endpoint, params=None):
    """The path the probes take by default: the writer endpoint of ``identifier`` (``endpoint`` is its (host,
    port)), or login_host/login_port when given, as the connection uses them."""
    params = params or {}
    host, port = endpoint or (None, None)
    return {"kind": PROBE_WRITER, "name": identifier, "address": params.get("login_host") or host,
            "port": int(params.get("login_port") or port or 5432)}


def proxy_probe_path(name, kind, identifier, proxy=None, endpoint=None, targets=(), member_ids=(), probe_mode="write"):
    """Whether the probes can measure ``identifier`` through the RDS Proxy endpoint ``name``: ``(path, problems)``.

    ``name`` is a proxy (its default endpoint) or a proxy endpoint. ``proxy`` is the described DBProxy that owns it
    (None when there is none), ``endpoint`` the described DBProxyEndpoint when ``name`` is an endpoint's name,
    ``targets`` the proxy's DescribeDBProxyTargets and ``member_ids`` the instances of a cluster. The path is
    ``{"kind": "proxy", "name", "address", "port"}``: a proxy has no port in the API, it listens on its engine
    family's default port.
    """
    what = "DB instance" if kind == INSTANCE else "DB cluster"
    if proxy is None and endpoint is None:
        return None, [f"probe_endpoint {name} is neither an RDS Proxy nor an RDS Proxy endpoint in this region: "
                      "check the name and the region (aws rds describe-db-proxies, describe-db-proxy-endpoints)"]
    proxy_name = (endpoint or {}).get("DBProxyName") or (proxy or {}).get("DBProxyName")
    if endpoint is not None and endpoint.get("IsDefault"):
        return None, [f"probe_endpoint {name} is the default endpoint of RDS Proxy {proxy_name}, a name every proxy "
                      f"shares: name the proxy itself (probe_endpoint={proxy_name})"]
    if proxy is None:
        return None, [f"probe_endpoint {name} belongs to RDS Proxy {proxy_name}, which does not exist any more: "
                      "name an endpoint of an existing proxy"]
    problems = []
    label = f"RDS Proxy {proxy_name}" if endpoint is None else f"RDS Proxy endpoint {name} (of proxy {proxy_name})"
    family = proxy.get("EngineFamily")
    if str(family or "").upper() != "POSTGRESQL":
        problems.append(f"probe_endpoint {name}: {label} is for engine family {family}, not POSTGRESQL; the probes "
                        "speak PostgreSQL: name a POSTGRESQL proxy")
    for described, whose in ((proxy, f"RDS Proxy {proxy_name}"), (endpoint, label)):
        status = (described or {}).get("Status")
        if described is not None and status != "available":
            problems.append(f"probe_endpoint {name}: {whose} is {status}, not available; wait until it is available "
                            "and run the drill again")
    role = (endpoint or {}).get("TargetRole") or "READ_WRITE"
    if role == "READ_ONLY" and probe_mode == "write":
        problems.append(f"probe_endpoint {name} is a read-only proxy endpoint: write probes cannot succeed there; "
                        "set probe_mode=read or name a READ_WRITE endpoint (or the proxy itself)")
    if not proxy_fronts(targets, kind, identifier, member_ids):
        registered = ", ".join(proxy_target_names(targets)) or "nothing"
        problems.append(f"probe_endpoint {name} does not lead to {what} {identifier}: RDS Proxy {proxy_name} "
                        f"targets {registered}; name the proxy in front of {identifier} or register {identifier} "
                        "with this proxy (dbre.rds.rds_proxy)")
    address = (endpoint if endpoint is not None else proxy).get("Endpoint")
    if not address:
        problems.append(f"probe_endpoint {name}: {label} has no address yet; wait until it is available")
    if problems:
        return None, problems
    return {"kind": PROBE_PROXY, "name": name, "address": address, "port": proxy_port(proxy)}, []


def describe_probe_path(path):
    """The probe path in words, for the plan and the report."""
    if not path:
        return None
    where = f"{path['address']}:{path['port']}"
    if path["kind"] == PROBE_PROXY:
        return f"through RDS Proxy endpoint {path['name']} ({where})"
    return f"directly on the writer endpoint of {path['name']} ({where})"


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


def failover_evidence(plan, described, members=None, events=None):
    """What shows that the failover request went through, in words, or None.

    ``call_once`` asks this after a throttle or a lost answer, before it would send the request again: an RDS event
    saying the failover started (``events`` as :func:`failover_events` returns them, since the request), a status of a
    failover under way, or the writer already moved.
    """
    started = (events or {}).get("started")
    if started:
        return f"RDS event: {started.get('Message')}"
    status = resource_status(plan["kind"], described)
    if status in FAILING_OVER_STATES:
        return f"status {status}"
    writer, az = writer_location(plan["kind"], described, members)
    if failover_moved(plan, writer, az):
        return f"writer moved to {writer} ({az})" if plan["kind"] == CLUSTER else f"writer moved to {az}"
    return None


# ---------------------------------------------------------------------------------------------------- probe table

def probe_table_decision(table, existing, marked, alive, now):
    """Whether the drill may create ``table``, and which leftover probe tables of dead drills it drops first.

    ``existing`` is ``None`` when no table of that name is visible, else ``{"schema", "table", "comment"}``;
    ``marked`` lists every table whose comment carries a dbre.rds probe marker (same shape); ``alive`` maps
    ``(schema, table)`` to :func:`drill_runtime.owner_alive` of its marker (True, False or None for unknown);
    ``now`` is an aware datetime. Returns ``(problems, leftovers)``: a leftover is a marked table whose drill is gone
    (its process ended) or past the end its marker announced; nothing else is ever dropped.
    """
    leftovers = []
    for item in marked or []:
        reason = leftover_reason(parse_probe_marker(item.get("comment")), alive.get((item["schema"], item["table"])),
                                 now)
        if reason:
            leftovers.append(dict(item, reason=reason))
    found = []
    if existing is not None:
        marker = parse_probe_marker(existing.get("comment"))
        where = f"{existing['schema']}.{existing['table']}"
        if marker is None:
            found.append(f"probe_table {table} names an existing table ({where}) that this module did not create (it "
                         "carries no dbre.rds probe marker): the drill never writes to or drops a table it does not "
                         "own; choose another probe_table name")
        elif not any((item["schema"], item["table"]) == (existing["schema"], existing["table"]) for item in leftovers):
            found.append(f"probe_table {where} belongs to drill {marker.get('drill_id')} (pid {marker.get('pid')} on "
                         f"{marker.get('host')}, {marker.get('target')}), which is still running or may be until "
                         f"{marker.get('expires_at')}: wait for it to end or choose another probe_table name")
    return found, leftovers


# --------------------------------------------------------------------------------------------------------- measurement

def _sample_time(sample, key):
    return None if sample is None else sample[key]


def stalled(sample, stall_seconds=None):
    """A probe that succeeded only after more than ``stall_seconds`` (the probe timeout): a client with that timeout
    would have given up. A pooler such as RDS Proxy holds a query while its target is away instead of failing it, so
    through a proxy an outage shows as a stall, not as errors."""
    return bool(sample["ok"]) and stall_seconds is not None and sample["done"] - sample["sent"] > stall_seconds


def _down(sample, stall_seconds=None):
    return not sample["ok"] or stalled(sample, stall_seconds)


def measure_downtime(samples, requested_elapsed=None, stall_seconds=None):
    """What clients saw, from probe samples in send order.

    Only probes sent at or after ``requested_elapsed`` (the failover request on the drill clock) count. The outage runs
    from the start of the first failed probe to the end of the first successful probe after the last failed one: that is
    when an application could work again. With ``stall_seconds`` (the probe timeout) a probe that succeeded only after
    longer than that counts as failed too (:func:`stalled`). Returns elapsed seconds on the drill clock (``*_elapsed``)
    and ``observed_downtime_seconds`` (0.0 when no probe failed; None when probes never succeeded again).
    """
    window = [s for s in samples if requested_elapsed is None or s["sent"] >= requested_elapsed]
    failures = [s for s in window if _down(s, stall_seconds)]
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
    after = next((s for s in window if not _down(s, stall_seconds) and s["sent"] > last["sent"]), None)
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


def probe_counts(samples, stall_seconds=None):
    """Probes sent, failed, failed per error kind, read-only errors, and stalled (succeeded after the timeout)."""
    by_kind = {kind: 0 for kind in ERROR_KINDS}
    for sample in samples:
        if not sample["ok"]:
            by_kind[sample.get("error") or "other"] = by_kind.get(sample.get("error") or "other", 0) + 1
    return {
        "probes_sent": len(samples),
        "probes_failed": sum(by_kind.values()),
        "probe_errors": by_kind,
        "read_only_errors": by_kind["read_only"],
        "probes_stalled": sum(1 for sample in samples if stalled(sample, stall_seconds)),
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
        entries.append(_entry(first["sent"], at_of, f"first failed probe #{first['seq']} ({_why(first, True)})"))
    if last and last is not first:
        entries.append(_entry(last["sent"], at_of, f"last failed probe #{last['seq']} ({_why(last)})"))
    if after:
        entries.append(_entry(after["done"], at_of, f"first successful probe after the outage #{after['seq']}"))
    return entries


def _why(sample, with_message=False):
    if sample["ok"]:
        return f"stalled {sample['done'] - sample['sent']:.2f} s"
    if with_message and sample.get("message"):
        return f"{sample.get('error')}: {sample['message']}"
    return str(sample.get("error"))


def _entry(elapsed, at_of, event):
    return {"at": at_of(elapsed), "elapsed_seconds": round(elapsed, 3), "event": event}


def report_title(plan):
    kind = "Multi-AZ DB instance" if plan["kind"] == INSTANCE else "DB cluster"
    path = ((plan.get("probing") or {}).get("probe_endpoint")) or {}
    through = f", probed through RDS Proxy endpoint {path['name']}" if path.get("kind") == PROBE_PROXY else ""
    return f"Failover drill of {kind} {plan['target']}{through}"


def build_report(*, identifier, plan, started_at, finished_at, measurements, objectives, passed, timeline, details,
                 failure=None):
    """The drill report, in the shared shape of drill_report.build_report."""
    return build_drill_report(kind="failover_test", title=report_title(plan), target=identifier,
                              started_at=started_at, finished_at=finished_at, passed=passed, objectives=objectives,
                              measurements=measurements, timeline=timeline, details=details,
                              failure=None if failure is None else str(failure))


# --------------------------------------------------------------------------------------------- measuring a drill

def _at(started_at, elapsed):
    return None if elapsed is None else utc_iso(started_at + datetime.timedelta(seconds=elapsed))


def _sample_at(started_at, sample, key):
    return None if sample is None else _at(started_at, sample[key])


def _probe_endpoint(probing):
    path = (probing or {}).get("endpoint")
    return None if not path else {key: path.get(key) for key in ("kind", "name", "address", "port")}


def _event_date(event):
    return None if not event else event.get("Date")


def measure(plan, *, started_at, duration, requested=None, available=None, final=(None, {}), events=None,
            samples=(), probing=None, present_rows=None, table_removed=None, failover_request=None,
            leftovers_removed=()):
    """The measurements of one drill, from what it recorded.

    Times in: ``started_at`` (aware datetime of the drill clock's start), ``duration``, ``requested`` and
    ``available`` (seconds on that clock, None when it did not happen); ``final`` is the last ``(described,
    members)``; ``events`` is :func:`failover_events` output; ``samples`` the probe samples; ``probing`` is
    ``{"mode", "interval", "timeout", "endpoint"}`` (``timeout``: probe_timeout, beyond which a successful probe
    counts as stalled; ``endpoint``: the probe path) or None; ``present_rows`` the probe rows found afterwards
    (None: not read); ``failover_request`` is call_once's outcome. Returns the ``measurements`` dict the module
    documents.
    """
    events = events or {"started": None, "completed": None, "events": []}
    described, members = final if final else (None, {})
    writer_after, az_after = writer_location(plan["kind"], described, members)
    measured = {
        "requested_at": _at(started_at, requested),
        "api_available_at": _at(started_at, available),
        "api_failover_seconds": None if available is None or requested is None else round(available - requested, 3),
        "failover_started_event_at": utc_iso(_event_date(events["started"])),
        "failover_completed_event_at": utc_iso(_event_date(events["completed"])),
        "event_failover_seconds": None,
        "writer_before": plan["writer_before"],
        "writer_after": writer_after,
        "az_before": plan["az_before"],
        "az_after": az_after,
        "failover_happened": requested is not None and failover_moved(plan, writer_after, az_after),
        "failover_request": None,
        "probe_mode": probing["mode"] if probing else None,
        "probe_interval": probing["interval"] if probing else None,
        "probe_endpoint": _probe_endpoint(probing),
        "probes_sent": None, "probes_failed": None, "read_only_errors": None, "probes_stalled": None,
        "first_failed_probe_at": None, "last_failed_probe_at": None, "first_success_after_at": None,
        "observed_downtime_seconds": None,
        "acknowledged_writes": None, "lost_writes": None, "lost_write_numbers": [], "rows_found": None,
        "unacknowledged_rows_found": None,
        "probe_table_removed": table_removed,
        "leftover_probe_tables_removed": list(leftovers_removed),
        "duration_seconds": round(duration, 3),
    }
    if failover_request:
        measured["failover_request"] = {key: failover_request.get(key)
                                        for key in ("attempts", "throttled", "lost_answers", "confirmed_by")}
    if events["started"] and events["completed"]:
        measured["event_failover_seconds"] = round(
            (_event_date(events["completed"]) - _event_date(events["started"])).total_seconds(), 3)
    if probing:
        stall = probing.get("timeout")
        counts = probe_counts(samples, stall)
        measured.update(probes_sent=counts["probes_sent"], probes_failed=counts["probes_failed"],
                        read_only_errors=counts["read_only_errors"], probes_stalled=counts["probes_stalled"])
        if requested is not None:
            downtime = measure_downtime(samples, requested, stall)
            measured.update(
                first_failed_probe_at=_sample_at(started_at, downtime["first_failed_probe"], "sent"),
                last_failed_probe_at=_sample_at(started_at, downtime["last_failed_probe"], "sent"),
                first_success_after_at=_sample_at(started_at, downtime["first_success_after"], "done"),
                observed_downtime_seconds=downtime["observed_downtime_seconds"],
            )
        if probing["mode"] == "write":
            measured.update(account_writes(acknowledged_writes(samples), present_rows))
    return measured


def timeline(*, started_at, log=(), transitions=(), events=None, samples=(), requested=None, stall_seconds=None):
    """Phases, status transitions, RDS events and probe milestones on one time axis (seconds on the drill clock)."""
    entries = list(log)
    entries += [{"at": t["at"], "elapsed_seconds": t["elapsed_seconds"], "event": f"status: {t['state']}"}
                for t in transitions]
    for event in (events or {}).get("events") or []:
        moment = _event_date(event)
        entries.append({"at": utc_iso(moment), "elapsed_seconds": round((parse_utc(moment) - started_at)
                                                                        .total_seconds(), 3),
                        "event": f"RDS event: {event.get('Message')}"})
    if samples and requested is not None:
        entries += probe_timeline(measure_downtime(samples, requested, stall_seconds), lambda e: _at(started_at, e))
    return sorted(entries, key=lambda e: e["elapsed_seconds"])

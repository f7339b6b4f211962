# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""CloudWatch alarms that fit one RDS instance: thresholds derived from its class, storage and max_connections.

Pure functions: a described DB instance (boto3 shape), the class's memory and vCPUs, the max_connections in effect and
the user's alarm settings go in; a list of alarm definitions (the options of ``amazon.aws.cloudwatch_metric_alarm``)
comes out. Nothing here calls AWS.
"""

from __future__ import annotations

import copy
import math

from ansible_collections.dbre.rds.plugins.module_utils.param_tuning import evaluate_formula
from ansible_collections.dbre.rds.plugins.module_utils.param_tuning import is_formula
from ansible_collections.dbre.rds.plugins.module_utils.param_tuning import rds_memory_bytes
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import identifier_problems

GIB = 1024 ** 3
MIB = 1024 ** 2

# RDS's default for max_connections on PostgreSQL (also Aurora PostgreSQL's, which caps it at 5000 as well).
DEFAULT_MAX_CONNECTIONS_FORMULA = "LEAST({DBInstanceClassMemory/9531392},5000)"

# gp2 volumes of 1,000 GiB and more have a baseline of at least 3,000 IOPS, the burst ceiling: no burst balance to watch.
GP2_BURST_CEILING_GIB = 1000

# Each alarm: what CloudWatch measures, how it compares, and the default rule for the threshold. Exactly one of
# ``threshold`` (absolute), ``share`` (of a quantity taken from the instance) or ``per_vcpu`` sets the value.
# The defaults follow the alarm sets seen in production (see docs/guides/monitoring.md for the sources).
DEFAULT_ALARMS = {
    "cpu_utilization": dict(
        metric_name="CPUUtilization", statistic="Average", comparison="GreaterThanThreshold", unit="Percent",
        threshold=80.0, period=300, evaluation_periods=3,
        description="CPU above {threshold:g} % for {minutes} minutes",
    ),
    "freeable_memory": dict(
        metric_name="FreeableMemory", statistic="Average", comparison="LessThanThreshold", unit="Bytes",
        share=0.25, minimum=64 * MIB, period=300, evaluation_periods=3,
        description="Freeable memory below {share_percent} of the class's {memory_gib:g} GiB",
    ),
    "free_storage_space": dict(
        metric_name="FreeStorageSpace", statistic="Minimum", comparison="LessThanThreshold", unit="Bytes",
        share=0.10, period=300, evaluation_periods=1,
        description="Free storage below {share_percent} of the {allocated_gib} GiB allocated",
    ),
    "database_connections": dict(
        metric_name="DatabaseConnections", statistic="Maximum", comparison="GreaterThanThreshold", unit="Count",
        share=0.80, period=300, evaluation_periods=2,
        description="Connections above {share_percent} of max_connections ({max_connections})",
    ),
    "read_latency": dict(
        metric_name="ReadLatency", statistic="Average", comparison="GreaterThanThreshold", unit="Seconds",
        threshold=0.02, period=300, evaluation_periods=3,
        description="Read latency above {threshold:g} s",
    ),
    "write_latency": dict(
        metric_name="WriteLatency", statistic="Average", comparison="GreaterThanThreshold", unit="Seconds",
        threshold=0.02, period=300, evaluation_periods=3,
        description="Write latency above {threshold:g} s",
    ),
    "disk_queue_depth": dict(
        metric_name="DiskQueueDepth", statistic="Average", comparison="GreaterThanThreshold", unit="Count",
        threshold=64.0, period=300, evaluation_periods=3,
        description="Disk queue depth above {threshold:g}",
    ),
    "replica_lag": dict(
        metric_name="ReplicaLag", statistic="Maximum", comparison="GreaterThanThreshold", unit="Seconds",
        threshold=300.0, period=60, evaluation_periods=5,
        description="Replica lag above {threshold:g} s (the recovery point objective)",
    ),
    "burst_balance": dict(
        metric_name="BurstBalance", statistic="Minimum", comparison="LessThanThreshold", unit="Percent",
        threshold=20.0, period=300, evaluation_periods=1,
        description="gp2 burst balance below {threshold:g} %",
    ),
    "cpu_credit_balance": dict(
        metric_name="CPUCreditBalance", statistic="Minimum", comparison="LessThanThreshold", unit="Count",
        threshold=20.0, period=300, evaluation_periods=1,
        description="CPU credit balance below {threshold:g} credits",
    ),
    "maximum_used_transaction_ids": dict(
        metric_name="MaximumUsedTransactionIDs", statistic="Maximum", comparison="GreaterThanThreshold",
        unit="Count", threshold=1.0e9, period=300, evaluation_periods=1,
        description="Transaction ID age above {threshold:.0f} (wraparound protection stops writes at 2^31)",
    ),
    "aurora_replica_lag": dict(
        metric_name="AuroraReplicaLag", statistic="Maximum", comparison="GreaterThanThreshold",
        unit="Milliseconds", threshold=1000.0, period=60, evaluation_periods=5,
        description="Aurora replica lag above {threshold:g} ms",
    ),
    "db_load": dict(
        metric_name="DBLoad", statistic="Average", comparison="GreaterThanThreshold", unit="None",
        per_vcpu=1.0, period=300, evaluation_periods=3,
        description="Average active sessions above {per_vcpu:g} per vCPU ({vcpus} vCPUs)",
    ),
}

TUNABLE_KEYS = ("enabled", "threshold", "share", "minimum", "per_vcpu", "period", "evaluation_periods",
                "datapoints_to_alarm", "statistic", "treat_missing_data")


def is_aurora(instance):
    return str(instance.get("Engine") or "").startswith("aurora")


def is_burstable(instance_class):
    """db.t* classes run on CPU credits."""
    return str(instance_class or "").startswith("db.t")


def is_replica(instance):
    """An RDS (not Aurora) read replica, which publishes ReplicaLag."""
    return bool(instance.get("ReadReplicaSourceDBInstanceIdentifier") or instance.get(
        "ReadReplicaSourceDBClusterIdentifier"))


def alarm_applies(key, instance, aurora_writer=None):
    """Whether CloudWatch publishes the metric of alarm ``key`` for this instance at all."""
    aurora = is_aurora(instance)
    if key in ("free_storage_space", "read_latency", "write_latency", "disk_queue_depth"):
        # Aurora storage is the cluster volume; these per-instance EBS metrics do not exist there.
        return not aurora if key == "free_storage_space" else True
    if key == "replica_lag":
        return not aurora and is_replica(instance)
    if key == "burst_balance":
        return (not aurora and instance.get("StorageType") == "gp2"
                and int(instance.get("AllocatedStorage") or 0) < GP2_BURST_CEILING_GIB)
    if key == "cpu_credit_balance":
        return is_burstable(instance.get("DBInstanceClass"))
    if key == "aurora_replica_lag":
        return aurora and aurora_writer is False
    if key == "db_load":
        return aurora
    return True


def max_connections_in_effect(parameter_value, nominal_memory_bytes, vcpus=2):
    """(max_connections, source): the parameter group's number or formula, else RDS's default formula.

    Formulas are evaluated as RDS does, with DBInstanceClassMemory estimated from the class's nominal memory by
    ``param_tuning.rds_memory_bytes`` (the same estimate rds_param_tune uses). Raises ValueError for a value that is
    neither a number nor a formula.
    """
    variables = dict(DBInstanceClassMemory=rds_memory_bytes(nominal_memory_bytes), DBInstanceVCPU=int(vcpus or 2))
    if parameter_value in (None, ""):
        return evaluate_formula(DEFAULT_MAX_CONNECTIONS_FORMULA, variables), "rds-default-formula"
    if is_formula(parameter_value):
        return evaluate_formula(parameter_value, variables), "parameter-group-formula"
    try:
        return int(float(str(parameter_value).strip())), "parameter-group"
    except ValueError:
        raise ValueError(f"max_connections {parameter_value!r} is neither a number nor an RDS formula") from None


# Where the max_connections behind the DatabaseConnections alarm came from.
SOURCE_RUNNING = "running-value"
SOURCE_UNKNOWN = "unknown"
IN_SYNC = "in-sync"


def decide_max_connections(running_value, group_value, parameter_apply_status, nominal_memory_bytes, vcpus=2):
    """Which max_connections the DatabaseConnections alarm follows, and why.

    ``running_value`` is what the database runs with (``SHOW max_connections``), None when no connection was
    possible; ``group_value`` the parameter group's setting (number, formula, or None for RDS's default);
    ``parameter_apply_status`` the instance's ``ParameterApplyStatus`` for that group. The running value wins; the
    group's value is used only while the group is ``in-sync``, since a pending value is not what the database has.

    Returns a dict: max_connections (None when unknown), max_connections_source (``running-value``, a source of
    :func:`max_connections_in_effect`, or ``unknown``), max_connections_parameter_group (the group's value,
    evaluated; None when it cannot be read), max_connections_pending (the group's value when it waits for a
    reboot and is not what runs), parameter_apply_status, and reason (why the number is unknown, else None).
    Raises ValueError when the group's value is unreadable and nothing else gives the number.
    """
    try:
        group_number, group_source = max_connections_in_effect(group_value, nominal_memory_bytes, vcpus)
    except ValueError:
        if running_value is None:
            raise
        group_number, group_source = None, None
    in_sync = parameter_apply_status == IN_SYNC
    decision = dict(max_connections=None, max_connections_source=SOURCE_UNKNOWN,
                    max_connections_parameter_group=group_number, max_connections_pending=None,
                    parameter_apply_status=parameter_apply_status, reason=None)
    if running_value is not None:
        running = int(running_value)
        decision.update(max_connections=running, max_connections_source=SOURCE_RUNNING)
        if not in_sync and group_number is not None and group_number != running:
            decision["max_connections_pending"] = group_number
        return decision
    if in_sync:
        decision.update(max_connections=group_number, max_connections_source=group_source)
        return decision
    decision["max_connections_pending"] = group_number
    decision["reason"] = (
        f"the parameter group's max_connections ({group_number}) is not what the database runs with yet "
        f"(ParameterApplyStatus {parameter_apply_status or 'unknown'}) and the running value could not be read: give "
        "login_user with login_password or iam_auth so it is read with SHOW max_connections, reboot the instance "
        "to apply the group, or set an absolute threshold")
    return decision


def merge_alarm_settings(overrides):
    """Defaults with the user's per-alarm overrides laid over them; unknown alarm names or keys are problems."""
    settings = copy.deepcopy(DEFAULT_ALARMS)
    for spec in settings.values():
        spec.setdefault("enabled", True)
    problems = []
    for key, override in (overrides or {}).items():
        if key not in settings:
            problems.append(f"unknown alarm {key!r}: choose from {', '.join(sorted(DEFAULT_ALARMS))}")
            continue
        if override is None:
            continue
        if not isinstance(override, dict):
            problems.append(f"alarm {key!r} settings must be a dict such as {{'enabled': false}}")
            continue
        for name, value in override.items():
            if name not in TUNABLE_KEYS:
                problems.append(f"alarm {key!r}: unknown setting {name!r}; tunable are {', '.join(TUNABLE_KEYS)}")
                continue
            if name in ("share", "per_vcpu", "threshold", "minimum") and value is not None:
                # A user's absolute threshold replaces a derived one and the other way round.
                for rule in ("share", "per_vcpu", "threshold"):
                    if rule != name and name != "minimum":
                        settings[key].pop(rule, None)
            settings[key][name] = value
        problems += _setting_problems(key, settings[key])
    return settings, problems


STATISTICS = ("Average", "Maximum", "Minimum", "SampleCount", "Sum")
TREAT_MISSING_DATA = ("breaching", "notBreaching", "ignore", "missing")
# CloudWatch alarm names are at most 255 characters.
ALARM_NAME_MAX = 255


def _number(value):
    """``value`` as a float, or None when it is not a number (booleans are not numbers here)."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _setting_problems(key, spec):
    """What is wrong with the merged settings of one alarm, each message naming the fix."""
    problems = []
    share = spec.get("share")
    if share is not None and not (_number(share) is not None and 0 < _number(share) <= 1):
        problems.append(f"alarm {key!r}: share must be above 0 and at most 1 (a fraction, 0.8 for 80 %), got {share}")
    for name in ("threshold", "minimum", "per_vcpu"):
        value = spec.get(name)
        if value is not None and _number(value) is None:
            problems.append(f"alarm {key!r}: {name} must be a number, got {value!r}")
    per_vcpu = _number(spec.get("per_vcpu"))
    if per_vcpu is not None and per_vcpu <= 0:
        problems.append(f"alarm {key!r}: per_vcpu must be above 0, got {spec['per_vcpu']}")
    period = _number(spec.get("period"))
    if period is None or not period.is_integer() or not (period in (10, 30) or (period >= 60 and period % 60 == 0)):
        problems.append(f"alarm {key!r}: period must be 10, 30 or a multiple of 60 seconds, got {spec.get('period')!r}")
    evaluations = _number(spec.get("evaluation_periods"))
    if evaluations is None or not evaluations.is_integer() or evaluations < 1:
        problems.append(f"alarm {key!r}: evaluation_periods must be a whole number of at least 1, got "
                        f"{spec.get('evaluation_periods')!r}")
    datapoints = spec.get("datapoints_to_alarm")
    if datapoints is not None:
        number = _number(datapoints)
        if number is None or not number.is_integer() or number < 1 or (evaluations and number > evaluations):
            problems.append(f"alarm {key!r}: datapoints_to_alarm must be a whole number from 1 to evaluation_periods "
                            f"({spec.get('evaluation_periods')}), got {datapoints!r}")
    if spec.get("statistic") not in STATISTICS:
        problems.append(f"alarm {key!r}: statistic {spec.get('statistic')!r} is not a CloudWatch statistic: choose "
                        f"from {', '.join(STATISTICS)}")
    missing = spec.get("treat_missing_data")
    if missing is not None and missing not in TREAT_MISSING_DATA:
        problems.append(f"alarm {key!r}: treat_missing_data {missing!r} is not known to CloudWatch: choose from "
                        f"{', '.join(TREAT_MISSING_DATA)}")
    if not isinstance(spec.get("enabled", True), bool):
        problems.append(f"alarm {key!r}: enabled must be true or false, got {spec.get('enabled')!r}")
    return problems


def option_problems(params):
    """What is wrong with rds_alarm_thresholds_info's options (a dict of them; the TLS and timeout options are
    checked by ``pg_connection.connection_problems``); empty when they are valid."""
    problems = []
    identifiers = list(params.get("db_instance_identifiers") or [])
    name_prefix = params.get("alarm_name_prefix")
    if not identifiers:
        problems.append("db_instance_identifiers is empty: name at least one DB instance")
    for identifier in identifiers:
        problems += identifier_problems(identifier, "db_instance_identifiers item")
    repeated = sorted({i for i in identifiers if identifiers.count(i) > 1})
    if repeated:
        problems.append(f"db_instance_identifiers names {', '.join(repeated)} more than once: name each instance once")
    if name_prefix is None or not str(name_prefix).isprintable() or not str(name_prefix).isascii():
        problems.append(f"alarm_name_prefix {name_prefix!r} must be printable ASCII (CloudWatch alarm names)")
    else:
        longest = max((len(alarm_name(name_prefix, i or "", k)) for i in identifiers for k in DEFAULT_ALARMS),
                      default=0)
        if longest > ALARM_NAME_MAX:
            problems.append(f"alarm_name_prefix {name_prefix!r} makes alarm names of {longest} characters; CloudWatch "
                            f"allows at most {ALARM_NAME_MAX}: shorten the prefix")
    for action in params.get("alarm_actions") or []:
        if not str(action or "").startswith("arn:"):
            problems.append(f"alarm_actions item {action!r} is not an ARN: pass the SNS topic's ARN")
    if (params.get("login_password") or params.get("iam_auth")) and not params.get("login_user"):
        problems.append("login_password or iam_auth needs login_user: name the login that reads max_connections")
    if params.get("login_host") and len(identifiers) > 1:
        problems.append("login_host names one server, but db_instance_identifiers names several instances, each "
                        "reached at its own endpoint: drop login_host (and login_port), or name one instance")
    return problems


def _derive_threshold(key, spec, facts):
    """(threshold, context for the description) for one alarm from the instance facts; None when it cannot be derived."""
    context = dict(spec)
    context.update(facts)
    context["minutes"] = int(spec["period"] * spec["evaluation_periods"] / 60)
    if spec.get("threshold") is not None:
        return float(spec["threshold"]), context
    if spec.get("per_vcpu") is not None:
        if not facts.get("vcpus"):
            return None, context
        return float(spec["per_vcpu"]) * facts["vcpus"], context
    share = float(spec["share"])
    context["share_percent"] = f"{share * 100:g} %"
    if key == "database_connections":
        if not facts.get("max_connections"):
            return None, context
        return float(math.floor(share * facts["max_connections"])), context
    if key == "free_storage_space":
        if not facts.get("allocated_gib"):
            return None, context
        return float(math.floor(share * facts["allocated_gib"] * GIB)), context
    if key == "freeable_memory":
        if not facts.get("memory_bytes"):
            return None, context
        return float(max(math.floor(share * facts["memory_bytes"]), spec.get("minimum") or 0)), context
    return None, context


_COMPARISON_WORDS = {"GreaterThanThreshold": "above", "LessThanThreshold": "below",
                     "GreaterThanOrEqualToThreshold": "at or above", "LessThanOrEqualToThreshold": "at or below"}


def _describe(spec, context, threshold):
    """The alarm's description: how the threshold was derived, or plainly the threshold when the user set it."""
    try:
        return spec["description"].format(**context)
    except KeyError:
        value = f"{threshold:.0f}" if float(threshold).is_integer() else f"{threshold:g}"
        return f"{spec['metric_name']} {_COMPARISON_WORDS[spec['comparison']]} {value} {spec['unit']}"


def instance_facts(instance, memory_gib, vcpus, max_connections, max_connections_source=None, aurora_writer=None):
    """What the thresholds are derived from, as returned to the user next to the alarms."""
    return dict(
        db_instance_identifier=instance["DBInstanceIdentifier"],
        db_instance_class=instance.get("DBInstanceClass"),
        engine=instance.get("Engine"),
        memory_gib=memory_gib,
        memory_bytes=int(memory_gib * GIB) if memory_gib else None,
        vcpus=vcpus,
        allocated_gib=instance.get("AllocatedStorage"),
        storage_type=instance.get("StorageType"),
        max_connections=max_connections,
        max_connections_source=max_connections_source,
        burstable=is_burstable(instance.get("DBInstanceClass")),
        replica=is_replica(instance),
        aurora=is_aurora(instance),
        aurora_writer=aurora_writer,
    )


def alarm_name(prefix, identifier, key):
    return f"{prefix}{identifier}-{key.replace('_', '-')}"


def plan_alarms(instance, facts, settings, *, name_prefix="rds-", actions=None, aurora_writer=None):
    """The alarms for one instance: ``present`` ones with their thresholds and ``absent`` ones (turned off or
    not applicable), so a role can both create and remove them. Returns (alarms, problems)."""
    identifier = instance["DBInstanceIdentifier"]
    actions = list(actions or [])
    alarms, problems = [], []
    for key in DEFAULT_ALARMS:
        spec = settings[key]
        name = alarm_name(name_prefix, identifier, key)
        if not spec.get("enabled", True) or not alarm_applies(key, instance, aurora_writer):
            reason = "turned off" if not spec.get("enabled", True) else "metric not published for this instance"
            alarms.append(dict(key=key, name=name, state="absent", reason=reason))
            continue
        threshold, context = _derive_threshold(key, spec, facts)
        if threshold is None and key == "database_connections" and facts.get("max_connections_reason"):
            problems.append(f"{identifier}: cannot derive the {key} threshold: {facts['max_connections_reason']} "
                            f"({key}.threshold), or turn the alarm off")
            continue
        if threshold is None:
            problems.append(f"{identifier}: cannot derive the {key} threshold (missing class memory, vCPUs, storage "
                            f"or max_connections): set rds_monitoring_alarms.{key}.threshold or turn the alarm off")
            continue
        context["threshold"] = threshold
        alarm = dict(
            key=key,
            name=name,
            state="present",
            metric_name=spec["metric_name"],
            namespace="AWS/RDS",
            statistic=spec["statistic"],
            comparison=spec["comparison"],
            threshold=threshold,
            unit=spec["unit"],
            period=int(spec["period"]),
            evaluation_periods=int(spec["evaluation_periods"]),
            datapoints_to_alarm=int(spec.get("datapoints_to_alarm") or spec["evaluation_periods"]),
            treat_missing_data=spec.get("treat_missing_data") or "missing",
            dimensions={"DBInstanceIdentifier": identifier},
            description=f"{identifier}: " + _describe(spec, context, threshold),
            alarm_actions=actions,
            ok_actions=actions,
        )
        alarms.append(alarm)
    return alarms, problems

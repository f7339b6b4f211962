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
        share = settings[key].get("share")
        if share is not None and not 0 < float(share) <= 1:
            problems.append(f"alarm {key!r}: share must be above 0 and at most 1 (a fraction, 0.8 for 80 %), got {share}")
    return settings, problems


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

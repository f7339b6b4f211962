# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every moto patch of the lab, each named after the AWS behaviour it restores.

``apply_all()`` installs them into moto 5.2.5's RDS models and responses (the server process calls it once).
The patch functions live in:

- ``parameters``: parameter_metadata, parameter_group_not_found, parameter_modify_limit_of_20 (validation and
  values reaching PostgreSQL), describe_engine_default_parameters, reset_db_parameter_group
- ``lifecycle``: endpoints_reach_postgres, status_takes_time, forced_failover (reboots, Multi-AZ and Aurora
  failovers), describe_events
- ``storage``: snapshots_hold_data, point_in_time_restore, deletion_rules
- ``event_subscriptions``, ``aws_managed_policies``: the behaviours of the same name
- ``instance_fields``: performance_insights, instance_defaults_as_aws (gp3 baseline, default DB subnet group)
- ``instance_class_memory``: unknown DB instance classes rejected (class memory from the collection's table)
- ``status_history``: status transitions with times (control API ``status_history``)
- ``restore_by_resource_id``: point-in-time restores by SourceDbiResourceId / SourceDbClusterResourceId
- ``engine_versions``: engine_versions (DescribeDBEngineVersions, unknown versions refused),
  orderable_instance_options (DescribeOrderableDBInstanceOptions, classes an engine lacks refused)
- ``automated_backups``: automated_backup_restore_window (DescribeDBInstanceAutomatedBackups with RestoreWindow,
  restores outside the window or without retention refused)
- ``server_logs``: server_log_files (DescribeDBLogFiles, DownloadDBLogFilePortion read the real PostgreSQL log)
- ``encryption``: renames_move_the_endpoint (NewDBInstanceIdentifier: ``renaming``, the endpoint follows the name),
  stop_start_events
- ``snapshot_copy``: snapshot_copy (CopyDBSnapshot / CopyDBClusterSnapshot with KmsKeyId of the target region, across
  regions, copies holding the data and taking time; control route ``snapshot_create_time``)
- ``db_proxy``: db_proxies (RDS Proxy actions, a PgBouncer behind each POSTGRESQL proxy, repointed on failovers)
- ``metrics``: rds_metrics (CloudWatch AWS/RDS metrics from each instance's PostgreSQL every ``metrics`` seconds,
  ``register_sampler`` for more, percentiles in GetMetricStatistics / GetMetricData, control route
  ``load_metric_history``)
- ``performance_insights``: performance_insights_api (the ``pi`` service: db load sampled every ``pi_sample`` seconds
  from pg_stat_activity of each PI-enabled instance, by wait event, SQL, user, host)
- ``global_clusters``: global_databases (Aurora Global Database across regions: secondary clusters as hot standbys of
  the primary's writer, Switchover/FailoverGlobalCluster, RemoveFromGlobalCluster, Aurora lag metrics; the Aurora
  readers' own standbys and lossless FailoverDBCluster are in ``lifecycle``)
- ``replication``: regions_side_by_side (PostgreSQL keys per region), read_replicas_stream (read replicas as hot
  standbys, same region and across regions), promote_read_replica (real promotion, lost writes counted in the
  replication log), replica_lag_metric (ReplicaLag)
- ``blue_green``: blue_green_deployments (Create/Describe/Switchover/DeleteBlueGreenDeployment of a PostgreSQL
  instance: green a real PostgreSQL kept in sync by logical replication, ReplicaLag of green, switchover with writes
  stopped, catch-up, renames and rollback on timeout, logged as ``blue_green_switchover`` in the replication log)
- ``upgrades``: engine_upgrades (ModifyDBInstance EngineVersion of a PostgreSQL instance: RDS's refusals, pre-checks
  and pg_upgrade --check, a real pg_upgrade --link from 15 to 18 with its outage and events, pg_upgrade_precheck.log,
  logged as ``engine_upgrade`` in the replication log)
"""

from __future__ import annotations

from tests.lab.fidelity import (
    automated_backups, aws_managed_policies, blue_green, db_proxy, encryption, engine_versions, event_subscriptions,
    global_clusters, instance_class_memory, instance_fields, lifecycle, metrics, parameters, performance_insights,
    replication, restore_by_resource_id, server_logs, snapshot_copy, status_history, storage, upgrades,
)

PATCHES = (
    parameters.parameter_group_not_found,
    parameters.parameter_metadata,
    parameters.describe_engine_default_parameters,
    parameters.parameter_modify_limit_of_20,
    parameters.reset_db_parameter_group,
    lifecycle.endpoints_reach_postgres,
    lifecycle.status_takes_time,
    lifecycle.forced_failover,
    lifecycle.describe_events,
    storage.snapshots_hold_data,
    storage.point_in_time_restore,
    storage.deletion_rules,
    event_subscriptions.event_subscriptions,
    aws_managed_policies.aws_managed_policies,
    instance_fields.performance_insights,
    instance_fields.instance_defaults_as_aws,
    restore_by_resource_id.restore_by_resource_id,
    # Before instance_class_memory, which wraps them: an unknown class is InvalidParameterValue first.
    engine_versions.engine_versions,
    engine_versions.orderable_instance_options,
    instance_class_memory.instance_class_memory,
    status_history.status_history,
    automated_backups.automated_backup_restore_window,
    server_logs.server_log_files,
    encryption.renames_move_the_endpoint,
    encryption.stop_start_events,
    snapshot_copy.snapshot_copy,  # after storage.snapshots_hold_data, whose copy it wraps
    db_proxy.db_proxies,
    metrics.rds_metrics,
    performance_insights.performance_insights_api,
    global_clusters.global_databases,  # after storage.deletion_rules and metrics.rds_metrics, which it builds on
    replication.regions_side_by_side,
    replication.read_replicas_stream,  # after storage.deletion_rules, whose delete it wraps
    replication.promote_read_replica,
    replication.replica_lag_metric,
    blue_green.blue_green_deployments,  # after encryption.renames_move_the_endpoint, whose renames it uses
    upgrades.engine_upgrades,  # last: wraps every modify_db_instance patch and server_logs' log file routes
)

_applied = False


def apply_all() -> None:
    global _applied
    if _applied:
        return
    for patch in PATCHES:
        patch()
    _applied = True

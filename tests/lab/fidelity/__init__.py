# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every moto patch of the lab, each named after the AWS behaviour it restores.

``apply_all()`` installs them into moto 5.2.5's RDS models and responses (the server process calls it once).
The patch functions live in:

- ``parameters``: parameter_metadata, parameter_group_not_found, parameter_modify_limit_of_20 (validation and
  values reaching PostgreSQL), describe_engine_default_parameters, reset_db_parameter_group
- ``lifecycle``: endpoints_reach_postgres, status_takes_time, forced_failover (reboots, Multi-AZ and Aurora
  failovers), describe_events
- ``storage``: snapshots_hold_data, point_in_time_restore, deletion_rules
"""

from __future__ import annotations

from tests.lab.fidelity import lifecycle, parameters, storage

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
)

_applied = False


def apply_all() -> None:
    global _applied
    if _applied:
        return
    for patch in PATCHES:
        patch()
    _applied = True

# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether the hosts of a fleet tune that share a parameter group can share its one tune.

playbooks/tasks/fleet_tune.yml tunes each parameter group once, for one class and one set of settings. A group used
by databases of different classes, workloads, value styles or overrides cannot be right for all of them (values
sized for a db.r6g.4xlarge in the group of a db.t4g.medium: the small one fails to start or runs out of memory at its
next reboot), so the playbook refuses such a fleet before any change rather than pick one host's settings.
"""

from __future__ import annotations

import json

# What a group's tune depends on besides its family, as the hosts' plan names them.
SETTINGS = ("instance_class", "workload", "value_style", "overrides")


def _shown(value):
    if value is None:
        return "unknown"
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)


def shared_group_problems(hosts):
    """``hosts`` maps a host name to {region, kind, group, instance_class, workload, value_style, overrides}.

    One problem per parameter group (per region and kind) whose hosts differ in any of SETTINGS, naming the group,
    the setting and each host's value. An unknown class (None) differs from a known one and equals another unknown.
    """
    groups = {}
    for name in sorted(hosts):
        host = hosts[name]
        if host.get("group") is None:
            continue
        groups.setdefault((host.get("region"), host.get("kind"), host["group"]), []).append(name)
    problems = []
    for (region, kind, group), names in sorted(groups.items(), key=lambda entry: [str(part) for part in entry[0]]):
        differing = [setting for setting in SETTINGS
                     if len({_shown(hosts[name].get(setting)) for name in names}) > 1]
        if not differing:
            continue
        what = "cluster parameter group" if kind == "db_cluster_parameter_group_name" else "parameter group"
        details = "; ".join(
            f"{setting}: " + ", ".join(f"{name} {_shown(hosts[name].get(setting))}" for name in names)
            for setting in differing)
        problems.append(
            f"The {what} {group} ({region}) is shared by {', '.join(names)}, which differ in {details}. A group is "
            "tuned once, for one class and one set of settings: give the databases of another class or other "
            "settings their own parameter group, or the same workload, value style and overrides (group vars).")
    return problems

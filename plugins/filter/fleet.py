# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one filter of the fleet playbooks, ``fleet_plan``: which databases drill together. The decisions live in
``plugins/module_utils/fleet_batches.py`` and are tested there with plain pytest.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.dbre.rds.plugins.module_utils import fleet_batches


def fleet_plan(hosts, max_parallel=1, inventory=None):
    try:
        return fleet_batches.plan_batches(list(hosts or []), max_parallel, list(inventory or []))
    except ValueError as error:
        raise AnsibleFilterError(str(error)) from None


class FilterModule:
    """Filters of the fleet playbooks (playbooks/tasks/fleet_plan.yml)."""

    def filters(self):
        return {"fleet_plan": fleet_plan}

# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filters of the fleet playbooks: ``fleet_plan``, which databases drill together, and ``fleet_tune_problems``,
why hosts that share a parameter group cannot share its tune. The decisions live in
``plugins/module_utils/fleet_batches.py`` and ``plugins/module_utils/fleet_tune.py`` and are tested there with
plain pytest.
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.dbre.rds.plugins.module_utils import fleet_batches
from ansible_collections.dbre.rds.plugins.module_utils import fleet_tune


def fleet_plan(hosts, max_parallel=1, inventory=None):
    try:
        return fleet_batches.plan_batches(list(hosts or []), max_parallel, list(inventory or []))
    except ValueError as error:
        raise AnsibleFilterError(str(error)) from None


def fleet_tune_problems(hosts):
    return fleet_tune.shared_group_problems(dict(hosts or {}))


class FilterModule:
    """Filters of the fleet playbooks (playbooks/tasks/fleet_plan.yml, playbooks/tasks/fleet_tune.yml)."""

    def filters(self):
        return {"fleet_plan": fleet_plan, "fleet_tune_problems": fleet_tune_problems}

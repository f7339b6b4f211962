# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one filter of the rds_users role, ``rds_users_plan``: everything its tasks need, from what is known at each step.

The decisions live in ``plugins/module_utils/rds_users.py`` and are tested there with plain pytest; its other
functions are the role's internals, not filters.
"""

from __future__ import annotations

from ansible_collections.dbre.rds.plugins.module_utils import rds_users


class FilterModule:
    """Filters of the dbre.rds.rds_users role."""

    def filters(self):
        return {"rds_users_plan": rds_users.plan}

# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one filter of the rds_provision role: its whole plan from the declarations and the facts read so far.

The decisions themselves live in ``plugins/module_utils/rds_provision.py`` as pure functions; they are the role's
internals, not filters of their own.
"""

from __future__ import annotations

from ansible_collections.dbre.rds.plugins.module_utils.rds_provision import plan


class FilterModule:
    """Filters of the dbre.rds.rds_provision role."""

    def filters(self):
        return {"rds_provision_plan": plan}

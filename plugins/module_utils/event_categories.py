# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RDS event categories per source type, as the RDS and Aurora user guides list them.

Standard library only: the lab (tests/lab) imports this file outside Ansible to answer DescribeEventCategories with
the same table, so it must import nothing from Ansible, amazon.aws, boto3 or the rest of this collection.
"""

from __future__ import annotations

# The categories per source type as RDS's DescribeEventCategories and the "Amazon RDS event categories and event
# messages" pages of the RDS and Aurora user guides list them. Used only when the endpoint cannot describe them
# (no rds:DescribeEventCategories permission, or an endpoint that does not implement the call).
DOCUMENTED_EVENT_CATEGORIES = {
    "db-instance": [
        "availability", "backtrack", "backup", "configuration change", "creation", "deletion", "failover", "failure",
        "low storage", "maintenance", "notification", "read replica", "recovery", "restoration", "security",
        "security patching",
    ],
    "db-cluster": [
        "configuration change", "creation", "deletion", "failover", "failure", "global-failover", "maintenance",
        "migration", "notification", "serverless",
    ],
    "db-parameter-group": ["configuration change"],
    "db-security-group": ["configuration change", "failure"],
    "db-snapshot": ["creation", "deletion", "notification", "restoration"],
    "db-cluster-snapshot": ["backup", "creation", "deletion", "notification", "restoration"],
    "db-proxy": ["configuration change", "creation", "deletion"],
    "blue-green-deployment": ["creation", "deletion", "notification"],
    "custom-engine-version": ["creation", "deletion", "failure", "restoration"],
}

# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS managed IAM policies exist (arn:aws:iam::aws:policy/...), so a role can attach e.g.
``service-role/AmazonRDSEnhancedMonitoringRole`` as on AWS; moto loads them only when asked to."""

from __future__ import annotations

import os


def aws_managed_policies() -> None:
    """moto reads the switch when it builds an account's IAM backend, on that account's first IAM call: the lab
    server applies its patches before serving, so every IAM backend it builds holds the managed policies."""
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")

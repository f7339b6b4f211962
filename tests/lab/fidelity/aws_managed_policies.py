# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS managed IAM policies exist (arn:aws:iam::aws:policy/...), so a role can attach e.g.
``service-role/AmazonRDSEnhancedMonitoringRole`` as on AWS; moto loads them only when asked to."""

from __future__ import annotations

import json
import os
from functools import lru_cache

from moto.iam import models as iam_models

from tests.lab.fidelity._support import replace


@lru_cache(maxsize=1)
def _parsed_policies() -> dict:
    return json.loads(iam_models.aws_managed_policies_data)


def _init_aws_policies(self):
    """moto builds ~1600 policy objects for every IAM backend, one per partition, each time the backends are reset
    (seconds per lab reset). The lab serves the ``aws`` partition only, and parses the policy data once."""
    if self.region_name != "aws" or not iam_models.load_iam_aws_managed_policies():
        return []
    return [iam_models.AWSManagedPolicy.from_data(name, self.account_id, self.region_name, data)
            for name, data in _parsed_policies().items()]


def aws_managed_policies() -> None:
    """moto reads the switch when it builds an account's IAM backend, on that account's first IAM call: the lab
    server applies its patches before serving, so every IAM backend it builds holds the managed policies."""
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    replace(iam_models.IAMBackend, "_init_aws_policies", _init_aws_policies)

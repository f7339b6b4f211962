# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place where dbre.rds modules get AWS clients, with the collection's retry policy."""

from __future__ import annotations

try:
    from botocore.config import Config
except ImportError:
    pass  # AnsibleAWSModule reports missing botocore

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

# Throttling and transient 5xx are retried by botocore already; these codes are the RDS ones that clear by themselves
# while a resource settles after a change.
RETRYABLE_RDS_CODES = ["InvalidDBInstanceState", "InvalidDBClusterStateFault", "InvalidDBParameterGroupState"]


def user_agent_extra(module):
    """``dbre.rds/<module>``: CloudTrail (and the lab's call log) can tell which module made a call."""
    name = str(getattr(module, "_name", "") or "unknown").rsplit(".", 1)[-1]
    return f"dbre.rds/{name}"


def aws_client(module, service, retries=8, extra_codes=None):
    """Return a boto3 client for ``service`` whose calls retry with jittered backoff when given ``aws_retry=True``."""
    decorator = AWSRetry.jittered_backoff(retries=retries, delay=1, max_delay=20, catch_extra_error_codes=extra_codes)
    return module.client(service, retry_decorator=decorator, config=Config(user_agent_extra=user_agent_extra(module)))


def rds_client(module):
    """The RDS client every module uses; RDS state conflicts are retried only where a call passes ``aws_retry=True``."""
    return aws_client(module, "rds")

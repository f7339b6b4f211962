# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place where dbre.rds modules get AWS clients, with the collection's retry policy.

Two kinds of call, two kinds of client:

- Reads and idempotent writes (describe, list, a modify that sets the same values again) use :func:`rds_client` /
  :func:`aws_client` and pass ``aws_retry=True``: throttling, transient 5xx and the RDS state conflicts in
  :data:`RETRYABLE_RDS_CODES` are retried with jittered backoff.
- Calls that must happen at most once (a reboot with failover, FailoverDBCluster, Restore*, Create*, Delete*,
  Switchover*) go through :func:`call_once` on a :func:`once_client`, which botocore does not retry. On a throttle, a
  5xx or a lost answer (read timeout, dropped connection) ``call_once`` first asks the caller's ``took_effect`` check
  (events, status, a describe) whether the call went through, and only sends it again when it did not.
"""

from __future__ import annotations

import random
import time

try:
    import botocore
    from botocore.config import Config
except ImportError:
    pass  # AnsibleAWSModule reports missing botocore

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

# RDS answers these while a resource settles after a change; they clear by themselves, so a describe or an idempotent
# modify retries them. Never passed to a call that must happen once (those do not use aws_retry at all).
RETRYABLE_RDS_CODES = ["InvalidDBInstanceState", "InvalidDBClusterStateFault", "InvalidDBParameterGroupState"]

# The request was refused before it did anything: safe to send again after backoff (once its effect is checked).
THROTTLE_CODES = frozenset(["Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
                            "RequestThrottledException", "TooManyRequestsException", "RequestLimitExceeded",
                            "SlowDown", "PriorRequestNotComplete"])
# Seconds one call_once keeps trying through throttles and lost answers before it gives up.
ONCE_DEFAULT_DEADLINE = 300.0


def user_agent_extra(module):
    """``dbre.rds/<module>``: CloudTrail (and the lab's call log) can tell which module made a call."""
    name = str(getattr(module, "_name", "") or "unknown").rsplit(".", 1)[-1]
    return f"dbre.rds/{name}"


def _region(region):
    """``module.client`` keyword arguments: the module's own region unless another is named."""
    return {"region": region} if region else {}


def aws_client(module, service, retries=8, extra_codes=None, region=None):
    """Return a boto3 client for ``service`` whose calls retry with jittered backoff when given ``aws_retry=True``
    (in ``region``, default the module's)."""
    decorator = AWSRetry.jittered_backoff(retries=retries, delay=1, max_delay=20, catch_extra_error_codes=extra_codes)
    return module.client(service, retry_decorator=decorator, config=Config(user_agent_extra=user_agent_extra(module)),
                         **_region(region))


def rds_client(module, region=None):
    """The RDS client for reads and idempotent writes: with ``aws_retry=True`` state conflicts are retried too."""
    return aws_client(module, "rds", extra_codes=RETRYABLE_RDS_CODES, region=region)


def single_attempt_client(module, service, connect_timeout=60, read_timeout=60, region=None):
    """A client botocore never retries, with bounded timeouts: each call is one attempt, decided by the caller."""
    config = Config(user_agent_extra=user_agent_extra(module), retries={"total_max_attempts": 1, "mode": "standard"},
                    connect_timeout=connect_timeout, read_timeout=read_timeout)
    return module.client(service, config=config, **_region(region))


def once_client(module, service="rds", read_timeout=60, region=None):
    """The client for the calls :func:`call_once` sends (botocore's own retries would repeat them blindly)."""
    return single_attempt_client(module, service, read_timeout=read_timeout, region=region)


class CallNotConfirmed(Exception):
    """call_once gave up: the call was throttled or lost every time and the check never saw its effect."""

    def __init__(self, operation, outcome, cause):
        super().__init__(f"{operation} was not confirmed after {outcome['attempts']} attempt(s) "
                         f"({outcome['throttled']} throttled, {outcome['lost_answers']} lost answers): {cause}")
        self.operation = operation
        self.outcome = outcome
        self.cause = cause


def _retry_kind(exc):
    """'throttled', 'lost' (may have taken effect) or None (a definite answer: raise it)."""
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if error.get("Code") in THROTTLE_CODES:
            return "throttled"
        return "lost" if status >= 500 else None
    if isinstance(exc, (botocore.exceptions.ConnectTimeoutError, botocore.exceptions.EndpointConnectionError)):
        return "throttled"  # never reached AWS: as safe to resend as a throttle
    if isinstance(exc, (botocore.exceptions.ReadTimeoutError, botocore.exceptions.ConnectionClosedError,
                        botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError)):
        return "lost"
    return None


def call_once(client, operation, request, took_effect, deadline_seconds=ONCE_DEFAULT_DEADLINE,
              sleep=time.sleep, monotonic=time.monotonic, rng=None):
    """Send a call that must take effect exactly once, surviving throttles and lost answers.

    ``took_effect()`` returns something truthy (a short description of what shows it) when the call's effect is
    visible (an event, a status, the resource existing), else something falsy. It is asked after every throttle or
    lost answer, before the call is sent again, so a call that went through is never repeated.

    Returns ``{"response", "attempts", "throttled", "lost_answers", "confirmed_by"}``: ``confirmed_by`` is
    ``"answer"`` when AWS answered, or what ``took_effect`` said when the answer was lost.
    Raises the ClientError of a definite refusal, or :class:`CallNotConfirmed` after ``deadline_seconds``.
    """
    rng = rng or random.Random()
    outcome = {"response": None, "attempts": 0, "throttled": 0, "lost_answers": 0, "confirmed_by": None}
    started = monotonic()
    delay = 1.0
    while True:
        outcome["attempts"] += 1
        try:
            outcome["response"] = getattr(client, operation)(**request)
            outcome["confirmed_by"] = "answer"
            return outcome
        except Exception as exc:  # pylint: disable=broad-except
            kind = _retry_kind(exc)
            if kind is None:
                raise
            outcome["throttled" if kind == "throttled" else "lost_answers"] += 1
            cause = exc
        seen = took_effect()
        if seen:
            outcome["confirmed_by"] = str(seen)
            return outcome
        if monotonic() - started + delay > deadline_seconds:
            raise CallNotConfirmed(operation, outcome, cause)
        sleep(delay * (0.5 + rng.random() / 2))
        delay = min(delay * 2, 20.0)

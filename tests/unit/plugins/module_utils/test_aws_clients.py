# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
import random

import botocore.exceptions
import pytest

from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import CallNotConfirmed
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import RETRYABLE_RDS_CODES
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import aws_client
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import call_once
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import once_client
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import rds_client


class FakeModule:
    _name = "dbre.rds.rds_failover_test"

    def __init__(self):
        self.calls = []

    def client(self, service, retry_decorator=None, **extra):
        self.calls.append((service, retry_decorator, extra))
        return "client"


def test_clients_retry_and_name_the_module_in_the_user_agent():
    module = FakeModule()
    assert rds_client(module) == "client"
    assert aws_client(module, "cloudwatch") == "client"
    (service, decorator, extra), (service2, decorator2, extra2) = module.calls
    assert (service, service2) == ("rds", "cloudwatch")
    assert callable(decorator) and callable(decorator2)
    assert extra["config"].user_agent_extra == "dbre.rds/rds_failover_test"


def test_rds_state_conflicts_are_retried_by_the_rds_client():
    calls = []

    class Module(FakeModule):
        def client(self, service, retry_decorator=None, **extra):
            calls.append(retry_decorator)
            return "client"

    rds_client(Module())
    conflict = botocore.exceptions.ClientError({"Error": {"Code": RETRYABLE_RDS_CODES[0]}}, "ModifyDBInstance")
    attempts = []

    def modify():
        attempts.append(1)
        if len(attempts) < 2:
            raise conflict
        return "ok"

    # The decorator retries the RDS state conflict (AWSRetry sleeps ~1 s before the second try).
    assert calls[0](modify)() == "ok" and len(attempts) == 2


def test_once_client_is_never_retried_by_botocore():
    module = FakeModule()
    once_client(module)
    service, decorator, extra = module.calls[0]
    assert decorator is None
    assert extra["config"].retries["total_max_attempts"] == 1


def client_error(code, status=400):
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "FailoverDBCluster")


class Scripted:
    """A client whose operation raises the scripted errors in turn, then answers."""

    def __init__(self, *errors):
        self.errors = list(errors)
        self.sent = 0

    def failover_db_cluster(self, **request):
        self.sent += 1
        if self.errors:
            raise self.errors.pop(0)
        return {"DBCluster": request}


def run(client, took_effect=lambda: None, deadline=300.0):
    sleeps = []
    now = [0.0]

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    outcome = call_once(client, "failover_db_cluster", {"DBClusterIdentifier": "c"}, took_effect,
                        deadline_seconds=deadline, sleep=sleep, monotonic=lambda: now[0], rng=random.Random(1))
    return outcome, sleeps


def test_answered_at_once():
    client = Scripted()
    outcome, sleeps = run(client)
    assert (outcome["attempts"], outcome["confirmed_by"], client.sent, sleeps) == (1, "answer", 1, [])


def test_throttles_are_survived_with_backoff_and_checked_before_each_resend():
    checks = []
    client = Scripted(*[client_error("Throttling")] * 5)
    outcome, sleeps = run(client, took_effect=lambda: checks.append(1))
    assert client.sent == 6 and outcome["throttled"] == 5 and outcome["confirmed_by"] == "answer"
    assert len(checks) == 5
    assert sleeps == sorted(sleeps) or max(sleeps) <= 20


def test_a_lost_answer_whose_call_took_effect_is_not_sent_again():
    client = Scripted(botocore.exceptions.ReadTimeoutError(endpoint_url="http://lab"))
    outcome = run(client, took_effect=lambda: "event: failover started")[0]
    assert client.sent == 1
    assert outcome["lost_answers"] == 1 and outcome["confirmed_by"] == "event: failover started"


def test_a_lost_answer_without_effect_is_sent_again():
    client = Scripted(client_error("InternalFailure", 500))
    outcome = run(client)[0]
    assert client.sent == 2 and outcome["lost_answers"] == 1 and outcome["confirmed_by"] == "answer"


def test_a_definite_refusal_is_raised_at_once():
    client = Scripted(client_error("InvalidDBClusterStateFault"))
    with pytest.raises(botocore.exceptions.ClientError):
        run(client)
    assert client.sent == 1


def test_gives_up_after_the_deadline_saying_what_happened():
    client = Scripted(*[client_error("Throttling")] * 50)
    with pytest.raises(CallNotConfirmed) as raised:
        run(client, deadline=30)
    assert raised.value.outcome["throttled"] == client.sent
    assert "not confirmed" in str(raised.value)

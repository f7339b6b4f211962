# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
import datetime

import pytest

from ansible_collections.dbre.rds.plugins.module_utils.clock import DrillClock
from ansible_collections.dbre.rds.plugins.module_utils.pg_connection import permanent_error
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitFailed
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitTimeout
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitStopped
from ansible_collections.dbre.rds.plugins.module_utils.waiting import wait_until

START = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)


class FakeTime:
    """A monotonic clock that only moves when the waiter sleeps (or a fetch takes time)."""

    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def make(states, fetch_cost=0.0):
    fake = FakeTime()
    clock = DrillClock(monotonic=fake.monotonic, wall=lambda: START)
    sequence = iter(states)
    last = {}

    def fetch():
        fake.now += fetch_cost
        last["value"] = next(sequence, last.get("value"))
        return last["value"]

    return fake, clock, fetch


def test_returns_at_once_when_already_done():
    fake, clock, fetch = make(["available"])
    outcome = wait_until(fetch, lambda s: s == "available", timeout=60, interval=5, phase="instance available",
                         clock=clock, sleep=fake.sleep)
    assert outcome.value == "available"
    assert outcome.seconds == 0
    assert fake.sleeps == []
    assert outcome.transitions == [{"state": "available", "at": "2026-01-02T03:04:05.000Z", "elapsed_seconds": 0.0}]


def test_records_each_transition_once_with_its_time():
    fake, clock, fetch = make(["creating", "creating", "backing-up", "backing-up", "available"])
    outcome = wait_until(fetch, lambda s: s == "available", timeout=60, interval=2, phase="restore",
                         clock=clock, sleep=fake.sleep)
    assert [t["state"] for t in outcome.transitions] == ["creating", "backing-up", "available"]
    assert [t["elapsed_seconds"] for t in outcome.transitions] == [0.0, 4.0, 8.0]
    assert outcome.transitions[1]["at"] == "2026-01-02T03:04:09.000Z"
    assert outcome.seconds == 8.0


def test_deadline_raises_with_phase_and_states_seen():
    fake, clock, fetch = make(["rebooting"])
    with pytest.raises(WaitTimeout) as caught:
        wait_until(fetch, lambda s: s == "available", timeout=10, interval=3, phase="failover to complete",
                   clock=clock, sleep=fake.sleep)
    error = caught.value
    assert error.phase == "failover to complete"
    assert error.seconds == 10
    assert error.last_value == "rebooting"
    assert [t["state"] for t in error.transitions] == ["rebooting"]
    assert "failover to complete" in str(error) and "rebooting" in str(error)
    # never sleeps past the deadline
    assert fake.sleeps == [3, 3, 3, 1]


def test_slow_fetch_counts_towards_the_deadline():
    fake, clock, fetch = make(["modifying"], fetch_cost=4.0)
    with pytest.raises(WaitTimeout) as caught:
        wait_until(fetch, lambda s: False, timeout=10, interval=5, phase="modify", clock=clock, sleep=fake.sleep)
    # a look that starts before the deadline is the last one; no sleep reaches past the deadline
    assert fake.sleeps == [5]
    assert caught.value.seconds == 13.0


def test_failed_state_ends_the_wait():
    fake, clock, fetch = make(["creating", "failed"])
    with pytest.raises(WaitFailed) as caught:
        wait_until(fetch, lambda s: s == "available", timeout=60, interval=1, phase="restore",
                   failed=lambda s: s in ("failed", "incompatible-restore"), clock=clock, sleep=fake.sleep)
    assert caught.value.last_value == "failed"
    assert [t["state"] for t in caught.value.transitions] == ["creating", "failed"]


def test_state_of_extracts_the_state_from_a_described_resource():
    fake, clock, fetch = make([{"DBInstanceStatus": "modifying"}, {"DBInstanceStatus": "available"}])
    outcome = wait_until(fetch, lambda d: d["DBInstanceStatus"] == "available", timeout=30, interval=1,
                         phase="modify", state_of=lambda d: d["DBInstanceStatus"], clock=clock, sleep=fake.sleep)
    assert outcome.value == {"DBInstanceStatus": "available"}
    assert [t["state"] for t in outcome.transitions] == ["modifying", "available"]


def test_a_permanent_error_ends_the_wait_at_once_with_its_message():
    refused = ServerError('connection to server at "h", port 5432 failed: Connection refused')
    denied = ServerError('connection to server at "h", port 5432 failed: FATAL:  password authentication failed for '
                         'user "drill"')
    fake, clock, fetch = make([refused, refused, denied, "connected"])
    with pytest.raises(WaitStopped) as caught:
        wait_until(fetch, lambda v: v == "connected", timeout=600, interval=5, phase="the database to accept logins",
                   state_of=lambda v: "refused" if v is refused else ("denied" if v is denied else v),
                   permanent=permanent_error, clock=clock, sleep=fake.sleep)
    assert isinstance(caught.value, WaitFailed)
    assert fake.sleeps == [5, 5], "two transient refusals waited, the permanent error did not"
    assert str(caught.value) == ('the database to accept logins stopped after 10.0s: FATAL:  password authentication '
                                 'failed for user "drill" (waiting longer would not help)')
    assert caught.value.reason.startswith("FATAL:  password authentication failed")
    assert caught.value.last_value is denied


def test_transient_errors_keep_waiting_with_permanent_given():
    refused = ServerError("Connection refused")
    fake, clock, fetch = make([refused, refused, "connected"])
    outcome = wait_until(fetch, lambda v: v == "connected", timeout=60, interval=1, phase="db",
                         state_of=lambda v: "refused" if v is refused else v,
                         permanent=permanent_error, clock=clock, sleep=fake.sleep)
    assert outcome.value == "connected" and fake.sleeps == [1, 1]


class ServerError(Exception):
    pass

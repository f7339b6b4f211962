# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one polling helper: wait for a condition with a deadline and an interval, recording every state on the way."""

from __future__ import annotations

import time

from ansible_collections.dbre.rds.plugins.module_utils.clock import DrillClock
from ansible_collections.dbre.rds.plugins.module_utils.clock import utc_iso


def wait_argument_spec():
    """Options documented by the ``dbre.rds.wait`` doc fragment."""
    return dict(
        wait_timeout=dict(type="int", default=1800),
        poll_interval=dict(type="float", default=5.0),
    )


class WaitOutcome:
    """What a finished wait saw: the last value, how long it took and the states it passed through."""

    def __init__(self, value, seconds, transitions):
        self.value = value
        self.seconds = seconds
        self.transitions = transitions


class WaitTimeout(Exception):
    """The deadline passed while ``phase`` was still waiting."""

    def __init__(self, phase, seconds, transitions, last_value):
        last_state = transitions[-1]["state"] if transitions else None
        super().__init__(
            f"Timed out after {seconds:.1f}s while waiting for {phase} (last state seen: {last_state})"
        )
        self.phase = phase
        self.seconds = seconds
        self.transitions = transitions
        self.last_value = last_value


class WaitFailed(Exception):
    """The awaited resource reached a state from which the awaited condition cannot follow."""

    def __init__(self, phase, seconds, transitions, last_value):
        last_state = transitions[-1]["state"] if transitions else None
        super().__init__(f"{phase} failed after {seconds:.1f}s: reached state {last_state}")
        self.phase = phase
        self.seconds = seconds
        self.transitions = transitions
        self.last_value = last_value


class WaitStopped(WaitFailed):
    """The wait met a condition that waiting cannot cure (a permanent error); the message says which."""

    def __init__(self, phase, seconds, transitions, last_value, reason):
        super().__init__(phase, seconds, transitions, last_value)
        self.args = (f"{phase} stopped after {seconds:.1f}s: {reason} (waiting longer would not help)",)
        self.reason = reason


def _record(transitions, state, clock, started):
    if transitions and transitions[-1]["state"] == state:
        return
    elapsed = clock.elapsed()
    transitions.append({"state": state, "at": utc_iso(clock.now()), "elapsed_seconds": round(elapsed - started, 3)})


def wait_until(fetch, done, *, timeout, interval, phase, state_of=None, failed=None, clock=None, sleep=time.sleep,
               permanent=None):
    """Call ``fetch()`` every ``interval`` seconds until ``done(value)`` holds or ``timeout`` seconds have passed.

    ``state_of(value)`` names the state recorded as a transition each time it changes (default: the value itself).
    ``failed(value)``, when given and true, ends the wait with :class:`WaitFailed`.
    ``permanent(value)``, when given, returns why the value can never turn into success (for example the server's
    message for a failed authentication, see pg_connection.permanent_error) or None; a reason ends the wait at once
    with :class:`WaitStopped` (a :class:`WaitFailed`) carrying it.
    Returns :class:`WaitOutcome`; raises :class:`WaitTimeout` at the deadline. The deadline is checked after each
    fetch, so a condition already true is seen at once and the last look happens no later than the deadline.
    """
    clock = clock or DrillClock()
    state_of = state_of or (lambda value: value)
    transitions = []
    started = clock.elapsed()
    deadline = started + timeout
    while True:
        value = fetch()
        _record(transitions, state_of(value), clock, started)
        seconds = clock.elapsed() - started
        if done(value):
            return WaitOutcome(value, seconds, transitions)
        if failed is not None and failed(value):
            raise WaitFailed(phase, seconds, transitions, value)
        reason = permanent(value) if permanent is not None else None
        if reason:
            raise WaitStopped(phase, seconds, transitions, value, reason)
        remaining = deadline - clock.elapsed()
        if remaining <= 0:
            raise WaitTimeout(phase, seconds, transitions, value)
        sleep(min(interval, remaining))

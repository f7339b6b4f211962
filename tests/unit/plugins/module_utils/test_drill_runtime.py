# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
import json
import os
import signal
import subprocess
import sys

import botocore.exceptions
import pytest

from ansible_collections.dbre.rds.plugins.module_utils import drill_runtime as rt
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import report_name_problems
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitTimeout


class Exit(Exception):
    def __init__(self, failed, result):
        super().__init__(result.get("msg"))
        self.failed = failed
        self.result = result


class FakeModule:
    def __init__(self, **params):
        self.params = dict({"report_dir": None, "report_name": None, "fail_on_breach": True}, **params)

    def exit_json(self, **result):
        raise Exit(False, result)

    def fail_json(self, **result):
        raise Exit(True, result)

    def fail_json_aws(self, exc, msg=None, **result):
        raise Exit(True, dict(result, msg=msg, aws_error=str(exc)))


def runtime(**params):
    return rt.DrillRuntime(FakeModule(**params), "failover_test", "orders", "Failover drill", watch_parent=False)


def test_refuse_lists_every_problem_and_changes_nothing():
    with pytest.raises(Exit) as done:
        runtime().refuse(["a is wrong", "b is wrong"])
    assert done.value.failed and done.value.result["changed"] is False
    assert done.value.result["msg"] == "The failover drill was refused before any change: a is wrong; b is wrong"


@pytest.mark.parametrize("error, phase, kind", [
    (WaitTimeout("failover to complete", 3.0, [], None), "failover to complete", "plain"),
    (rt.DrillAborted("probe setup", "cannot connect"), "probe setup", "plain"),
    (botocore.exceptions.ClientError({"Error": {"Code": "AccessDenied"}}, "RebootDBInstance"), "act", "aws"),
    (KeyError("boom"), "act", "trace"),
])
def test_act_turns_every_stop_into_one_failure_and_always_cleans_up(error, phase, kind):
    run = runtime()
    run.enter("act")
    cleaned = []

    def steps():
        raise error

    failure = run.act(steps, cleaned.append)
    assert cleaned == [failure] and failure.phase == phase
    assert (failure.aws_error is not None) == (kind == "aws")
    assert (failure.trace is not None) == (kind == "trace")


def test_a_failing_cleanup_is_reported():
    run = runtime()

    def cleanup(_failure):
        raise RuntimeError("could not drop")

    failure = run.act(lambda: None, cleanup)
    assert failure.phase == "cleanup" and "could not drop" in failure.message


def test_sigterm_interrupts_the_steps_and_cleanup_still_runs():
    run = runtime()
    run.enter("waiting")
    cleaned = []

    def steps():
        os.kill(os.getpid(), signal.SIGTERM)
        raise AssertionError("the signal should have stopped the steps")

    failure = run.act(steps, cleaned.append)
    assert failure.interrupted and failure.phase == "waiting" and run.interrupted_by == "SIGTERM"
    assert cleaned == [failure]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_exit_writes_the_report_and_its_files(tmp_path):
    run = runtime(report_dir=str(tmp_path), report_name="drill-1")
    report = run.report(passed=True, objectives=[], measurements={"x": 1})
    with pytest.raises(Exit) as done:
        run.exit({"changed": True}, report)
    result = done.value.result
    assert not done.value.failed and result["report"]["passed"] is True
    assert sorted(result["report_files"]) == ["json", "md", "xml"]
    assert json.loads(open(result["report_files"]["json"]).read())["measurements"] == {"x": 1}


def test_exit_fails_on_breach_only_when_asked():
    for fail_on_breach, failed in ((True, True), (False, False)):
        run = runtime(fail_on_breach=fail_on_breach)
        with pytest.raises(Exit) as done:
            run.exit({}, run.report(passed=False, objectives=[], measurements={}), breach="downtime 9 s > 5 s")
        assert done.value.failed is failed


def test_exit_fails_with_the_failure_and_its_phase():
    run = runtime()
    failure = rt.DrillFailure("timed out", "failover to complete")
    with pytest.raises(Exit) as done:
        run.exit({}, run.report(passed=True, objectives=[], measurements={}, failure=failure), failure=failure)
    assert done.value.failed and done.value.result["phase"] == "failover to complete"
    assert done.value.result["report"]["passed"] is False


def test_owner_markers():
    mine = rt.owner_marker()
    assert rt.owner_alive(mine) is True
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert rt.owner_alive(dict(mine, pid=child.pid, started=None)) is False
    assert rt.owner_alive(dict(mine, host="elsewhere")) is None
    assert rt.owner_alive(None) is None
    assert rt.owner_alive(dict(mine, started="0")) is False  # the pid was reused by another process


@pytest.mark.parametrize("name, ok", [
    (None, True), ("drill-2026.11", True), ("../etc/passwd", False), ("a/b", False), ("", False), (".hidden", False),
])
def test_report_name(name, ok):
    assert (report_name_problems(name) == []) is ok

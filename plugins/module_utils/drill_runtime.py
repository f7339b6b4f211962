# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one drill runtime: plan -> pre-checks -> act -> measure -> judge -> report -> exit.

A drill module builds its plan and its list of problems with pure functions, then hands the rest to
:class:`DrillRuntime`:

- :meth:`DrillRuntime.refuse` ends the run before any change, with every problem in one message;
- :meth:`DrillRuntime.act` runs the mutating steps, turning every way they can stop (a timeout naming its phase, an
  abort, an AWS error, an interruption by SIGTERM/SIGINT/SIGHUP or the death of the process that started the module,
  an unexpected error) into one :class:`DrillFailure`, and always runs the drill's cleanup afterwards;
- :meth:`DrillRuntime.exit` writes the report (JSON, Markdown, JUnit, through drill_report) when ``report_dir`` is
  set, returns it as ``report`` and the paths as ``report_files``, and fails on a failure or a breached objective.
"""

from __future__ import annotations

import os
import signal
import threading
import traceback

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports missing botocore

from ansible_collections.dbre.rds.plugins.module_utils.clock import DrillClock
from ansible_collections.dbre.rds.plugins.module_utils.clock import utc_iso
from ansible_collections.dbre.rds.plugins.module_utils.drill_log import DrillLog
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import build_report
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import report_basename
from ansible_collections.dbre.rds.plugins.module_utils.drill_report import write_report
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitFailed
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitTimeout

INTERRUPT_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP")
# How often the watchdog checks that the process which started the module is still there.
PARENT_CHECK_SECONDS = 1.0


def aws_errors():
    """The botocore exceptions an AWS call raises (empty when botocore is missing)."""
    try:
        return (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)
    except NameError:
        return ()


class DrillAborted(Exception):
    """The drill cannot go on; ``phase`` names where, ``cause`` is the original error (an AWS error or another)."""

    def __init__(self, phase, message, cause=None):
        super().__init__(message)
        self.phase = phase
        self.cause = cause


class DrillInterrupted(DrillAborted):
    """A signal, or the end of the process that started the module, stopped the drill; cleanup still runs."""


class DrillFailure:
    """Why a drill stopped early: the message, the phase, and the AWS error or traceback behind it."""

    def __init__(self, message, phase, aws_error=None, trace=None, interrupted=False):
        self.message = message
        self.phase = phase
        self.aws_error = aws_error
        self.trace = trace
        self.interrupted = interrupted

    def __str__(self):
        return self.message

    def as_dict(self):
        return {"message": self.message, "phase": self.phase, "interrupted": self.interrupted}


def failure_from(exc, phase, what):
    """The :class:`DrillFailure` for an exception raised while ``phase`` ran (``what`` names the drill)."""
    if isinstance(exc, DrillInterrupted):
        return DrillFailure(str(exc), exc.phase or phase, interrupted=True)
    if isinstance(exc, (WaitTimeout, WaitFailed)):
        return DrillFailure(f"{what}: {exc}; the report so far is attached", exc.phase or phase)
    if isinstance(exc, DrillAborted):
        cause = exc.cause if isinstance(exc.cause, aws_errors()) else None
        return DrillFailure(str(exc), exc.phase or phase, aws_error=cause)
    if isinstance(exc, aws_errors()):
        return DrillFailure(f"{what}: an AWS call failed while {phase} ran: check the error; the report so far is "
                            "attached", phase, aws_error=exc)
    return DrillFailure(f"{what}: unexpected error while {phase} ran: {exc}", phase, trace=traceback.format_exc())


class DrillRuntime:
    """One drill's run: its clock, progress log, current phase, report and exit.

    ``kind`` is the report kind (``failover_test``, ``restore_drill``, ...), ``target`` the resource drilled,
    ``title`` the report's title.
    """

    def __init__(self, module, kind, target, title, progress_log=None, clock=None, watch_parent=True):
        self.module = module
        self.kind = kind
        self.target = target
        self.title = title
        self.clock = clock or DrillClock()
        self.log = DrillLog(self.clock, f"rds_{kind}", target, progress_log)
        self.phase = "plan"
        self.interrupted_by = None
        self._watch_parent = watch_parent
        self._parent_pid = os.getppid()
        self._stop_watch = threading.Event()
        self._cleaning = False

    # ------------------------------------------------------------------------------------------------- phases

    def enter(self, phase, message=None, timed=False):
        """Name the phase now running (timeouts and failures say it) and log it; ``timed`` opens a timed phase in
        the log (closed by ``log.finish(phase)``), which the report lists under ``phases``."""
        self.phase = phase
        if timed:
            return self.log.start(phase, message)
        self.log.event(message or f"{phase} started", phase=phase)
        return self.clock.elapsed()

    def refuse(self, problems, **result):
        """Pre-checks failed: one message with every problem, nothing changed."""
        title = self.title[:1].lower() + self.title[1:]
        self.module.fail_json(msg=f"The {title} was refused before any change: " + "; ".join(problems),
                              problems=list(problems), changed=False, **result)

    # --------------------------------------------------------------------------------------------- interrupts

    def _on_signal(self, signum, _frame):
        name = signal.Signals(signum).name
        if self._cleaning:
            self.log.event(f"{name} received during cleanup: cleanup goes on", phase="cleanup")
            return
        self.interrupted_by = name
        raise DrillInterrupted(self.phase, f"{self.title} interrupted by {name} while {self.phase} ran; what it "
                                           "created was cleaned up (see cleanup)")

    def _watch(self):
        while not self._stop_watch.wait(PARENT_CHECK_SECONDS):
            if not _alive(self._parent_pid) or os.getppid() != self._parent_pid:
                self.log.event("the process that started the drill is gone: stopping", phase=self.phase)
                os.kill(os.getpid(), signal.SIGTERM)
                return

    def _install(self):
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for name in INTERRUPT_SIGNALS:
                number = getattr(signal, name, None)
                if number is not None:
                    previous[number] = signal.signal(number, self._on_signal)
        watcher = None
        if self._watch_parent and previous:
            watcher = threading.Thread(target=self._watch, name="drill-parent-watch", daemon=True)
            watcher.start()
        return previous, watcher

    def _restore(self, previous, watcher):
        self._stop_watch.set()
        if watcher is not None:
            watcher.join(timeout=PARENT_CHECK_SECONDS * 2)
        for number, handler in previous.items():
            signal.signal(number, handler)

    # ---------------------------------------------------------------------------------------------------- act

    def act(self, steps, cleanup=None):
        """Run ``steps()``; whatever happens, run ``cleanup()`` after. Returns a DrillFailure or None."""
        failure = None
        previous, watcher = self._install()
        try:
            try:
                steps()
            except Exception as exc:  # pylint: disable=broad-except
                failure = failure_from(exc, self.phase, self.title)
                self.log.event(f"stopped: {failure.message}", phase=failure.phase)
            if cleanup is not None:
                self._cleaning = True
                try:
                    cleanup(failure)
                except Exception as exc:  # pylint: disable=broad-except
                    problem = failure_from(exc, "cleanup", self.title)
                    self.log.event(f"cleanup failed: {problem.message}", phase="cleanup")
                    failure = failure or problem
        finally:
            self._cleaning = False
            self._restore(previous, watcher)
        return failure

    # ------------------------------------------------------------------------------------------------- report

    def report(self, *, passed, objectives, measurements, timeline=None, details=None, failure=None, title=None):
        """The shared report of this run (``title`` overrides the runtime's, e.g. to name the resource's kind)."""
        return build_report(kind=self.kind, title=title or self.title, target=self.target,
                            started_at=utc_iso(self.clock.started_at), finished_at=utc_iso(self.clock.now()),
                            passed=passed, objectives=objectives, measurements=measurements,
                            timeline=self.log.timeline if timeline is None else timeline, details=details,
                            failure=None if failure is None else str(failure))

    def write(self, report, result):
        """Put the report in ``result`` (``report``) and, with ``report_dir``, write its files (``report_files``)."""
        params = self.module.params
        result["report"] = report
        if params.get("report_dir"):
            name = params.get("report_name") or report_basename(self.kind, report["target"], report["started_at"])
            try:
                result["report_files"] = write_report(report, params["report_dir"], name)
            except OSError as exc:
                self.module.fail_json(msg=f"Writing the report of {self.target} to {params['report_dir']} failed "
                                          f"({exc}): check that the directory is writable", **result)
        return result

    def exit(self, result, report, failure=None, breach=None):
        """Write the report, then exit: fail on ``failure``, or on ``breach`` (a message) when fail_on_breach."""
        self.log.event("drill finished: " + ("PASSED" if report["passed"] else "FAILED"), phase="report")
        self.write(report, result)
        if failure is not None:
            result.setdefault("phase", failure.phase)
            if failure.interrupted:
                result["interrupted_by"] = self.interrupted_by
            if failure.aws_error is not None:
                self.module.fail_json_aws(failure.aws_error, msg=failure.message, **result)
            if failure.trace:
                self.module.fail_json(msg=failure.message, exception=failure.trace, **result)
            self.module.fail_json(msg=failure.message, **result)
        if breach and self.module.params.get("fail_on_breach", True):
            self.module.fail_json(msg=breach, **result)
        self.module.exit_json(**result)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def owner_marker():
    """Who runs this drill: host, pid and the pid's start time, so a sweep can tell a dead owner from a live one."""
    return {"host": os.uname().nodename, "pid": os.getpid(), "started": _process_start(os.getpid())}


def owner_alive(marker, host=None):
    """True (alive), False (gone) or None (unknown: another host, or no marker) for an owner marker."""
    if not marker or not marker.get("pid"):
        return None
    if marker.get("host") != (host or os.uname().nodename):
        return None
    pid = int(marker["pid"])
    if not _alive(pid):
        return False
    started = _process_start(pid)
    return started is None or marker.get("started") in (None, started)


def _process_start(pid):
    """The start time of ``pid`` in clock ticks since boot (Linux), or None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None

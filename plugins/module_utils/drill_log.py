# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one drill log: phases and events on the drill's clock, kept for the report's timeline and, when a path is
given, appended line by line to a progress log a person can follow with ``tail -f`` while the drill runs."""

from __future__ import annotations

import os

from ansible_collections.dbre.rds.plugins.module_utils.clock import utc_iso


def progress_line(at, elapsed, drill, target, phase, message):
    """One line of the progress log: UTC time, seconds since start, drill, target, phase, what happened."""
    return f"{utc_iso(at)} +{elapsed:8.1f}s {drill} {target} [{phase}] {message}\n"


class DrillLog:
    """Timeline entries ({at, elapsed_seconds, event}), timed phases, and the optional progress log file."""

    def __init__(self, clock, drill, target, path=None):
        self.clock = clock
        self.drill = drill
        self.target = target
        self.path = path
        self.timeline = []
        self.phases = []
        self._open = {}
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)

    def _append(self, elapsed, phase, message):
        at = self.clock.at(elapsed)
        self.timeline.append({"at": utc_iso(at), "elapsed_seconds": round(elapsed, 3), "event": message})
        if self.path:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(progress_line(at, elapsed, self.drill, self.target, phase, message))

    def event(self, message, phase="drill", elapsed=None):
        """Record that something happened now (or at ``elapsed`` seconds on the drill's clock)."""
        self._append(self.clock.elapsed() if elapsed is None else elapsed, phase, message)

    def start(self, phase, message=None):
        """Open a timed phase; returns its start on the drill's clock."""
        self._open[phase] = self.clock.elapsed()
        self.event(message or f"{phase} started", phase)
        return self._open[phase]

    def finish(self, phase, outcome="ok", message=None):
        """Close a timed phase; returns its end on the drill's clock."""
        started = self._open.pop(phase)
        finished = self.clock.elapsed()
        self.phases.append({"name": phase, "started_at": utc_iso(self.clock.at(started)),
                            "finished_at": utc_iso(self.clock.at(finished)),
                            "seconds": round(finished - started, 3), "outcome": outcome})
        self.event(message or f"{phase} {outcome} after {finished - started:.1f}s", phase)
        return finished

    def close_open(self, outcome):
        """Close every phase still open (the drill stopped early)."""
        for phase in list(self._open):
            self.finish(phase, outcome)

    def transitions(self, label, transitions):
        """Status transitions recorded by ``wait_until``, placed on the drill's clock."""
        for item in transitions:
            self._append(self.clock.seconds_since_start(item["at"]), "status", f"{label} {item['state']}")

# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which task of which role or playbook starts when, for tests/tools/iam_policies.py to attribute AWS calls."""

from __future__ import annotations

DOCUMENTATION = """
name: dbre_rds_iam_trace
type: aggregate
short_description: Record when each task starts, and of which role and playbook (the IAM policy derivation)
description:
  - With C(DBRE_RDS_IAM_TRACE_DIR) set, appends one JSON line per task start (time, process, playbook, task file,
    role and its collection and path) and one at the end of the run to C(<dir>/tasks-<pid>.jsonl).
  - Without it, does nothing. The integration suite sets it (tests/integration/conftest.py).
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "dbre_rds_iam_trace"
    CALLBACK_NEEDS_ENABLED = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        directory = os.environ.get("DBRE_RDS_IAM_TRACE_DIR")
        self._path = os.path.join(directory, f"tasks-{os.getpid()}.jsonl") if directory else None
        self._playbook = None

    def _write(self, record):
        if not self._path:
            return
        record.update(epoch=time.time(), pid=os.getpid())
        os.makedirs(os.path.dirname(self._path), exist_ok=True)
        with open(self._path, "a", encoding="utf-8") as trace:
            trace.write(json.dumps(record) + "\n")

    def _task(self, task):
        role = task._role
        path = (task.get_path() or "").rsplit(":", 1)[0]
        self._write({
            "event": "task", "playbook": self._playbook, "task": task.get_name(),
            "path": os.path.realpath(path) if path else None,
            "role": role._role_name if role else None,
            "role_collection": role._role_collection if role else None,
            "role_path": os.path.realpath(role._role_path) if role else None,
        })

    def v2_playbook_on_start(self, playbook):
        self._playbook = os.path.realpath(playbook._file_name)
        self._write({"event": "playbook_start", "playbook": self._playbook})

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._task(task)

    def v2_playbook_on_stats(self, stats):
        self._write({"event": "playbook_end", "playbook": self._playbook})

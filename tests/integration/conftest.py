# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every AWS call an integration test makes is checked against the IAM policy of the module or role that made it.

Each pytest worker journals its lab's calls (``LAB_CALL_LOG_DIR``) and the tasks of every ansible-playbook it runs
(``DBRE_RDS_IAM_TRACE_DIR``, through the callback plugin in tests/tools/callback_plugins) under one run directory.
After each test file (its module-scoped fixtures included: they converge once per file), the calls it made are
attributed (tests/tools/iam_policies.py) and a call that docs/iam/<module or role>.json does not allow fails the
file's last test.

``IAM_POLICIES_WRITE=1`` (``make iam-policies``, over the whole tests/integration) checks nothing and writes docs/iam
from every call of the run at its end instead, removing the files of subjects that made no call when the run passed.
"""

import os
import pathlib
import shutil
import tempfile

import pytest

from tests.tools import iam_policies

CALLBACKS = pathlib.Path(iam_policies.__file__).resolve().parent / "callback_plugins"
WRITE = os.environ.get("IAM_POLICIES_WRITE") == "1"


def _worker_dir():
    return pathlib.Path(os.environ["DBRE_RDS_IAM_RUN_DIR"]) / os.environ.get("PYTEST_XDIST_WORKER", "main")


def pytest_configure(config):
    if not hasattr(config, "workerinput") and "DBRE_RDS_IAM_RUN_DIR" not in os.environ:
        # The controller (or a run without xdist) makes the run directory; xdist's workers inherit it.
        os.environ["DBRE_RDS_IAM_RUN_DIR"] = tempfile.mkdtemp(prefix="dbre-rds-iam-")
        config._dbre_rds_iam_run_dir = os.environ["DBRE_RDS_IAM_RUN_DIR"]
    worker = _worker_dir()
    # Labs and ansible-playbook processes started from here on inherit these.
    os.environ["LAB_CALL_LOG_DIR"] = str(worker / "calls")
    os.environ["DBRE_RDS_IAM_TRACE_DIR"] = str(worker / "tasks")
    callbacks = [str(CALLBACKS)] + [p for p in os.environ.get("ANSIBLE_CALLBACK_PLUGINS", "").split(os.pathsep) if p]
    os.environ["ANSIBLE_CALLBACK_PLUGINS"] = os.pathsep.join(dict.fromkeys(callbacks))
    for sub in ("calls", "tasks"):
        (worker / sub).mkdir(parents=True, exist_ok=True)


def _whole_suite(config):
    """Whether the run covers every integration test: an argument that is tests/integration or a folder above it."""
    here = pathlib.Path(__file__).resolve().parent
    folders = [pathlib.Path(config.invocation_params.dir, arg.split("::")[0]).resolve() for arg in config.args]
    return (any(folder == here or folder in here.parents for folder in folders)
            and not config.option.keyword and not config.option.markexpr)


def pytest_sessionfinish(session, exitstatus):
    if hasattr(session.config, "workerinput"):
        return  # the controller merges what its workers journaled
    run_dir = pathlib.Path(os.environ["DBRE_RDS_IAM_RUN_DIR"])
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if WRITE and not _whole_suite(session.config):
        if reporter:
            reporter.write_line("IAM_POLICIES_WRITE: wrote nothing; the policies come from the whole tests/integration "
                                "(no -k, -m or single files): make iam-policies")
    elif WRITE:
        subjects = {}
        for journal in run_dir.glob("*/attributed.tsv"):
            for row in journal.read_text().splitlines():
                subject, action = row.split("\t")
                subjects.setdefault(subject, set()).add(action)
        written = iam_policies.write_policies(subjects, iam_policies.IAM_DIR, remove_stale=exitstatus == 0)
        if reporter:
            reporter.write_line(f"IAM_POLICIES_WRITE: wrote {len(written)} policies to docs/iam"
                                + ("" if exitstatus == 0 else " (the run failed: stale files kept, review the diff)"))
    if getattr(session.config, "_dbre_rds_iam_run_dir", None):
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="module", autouse=True)
def iam_policies_allow_every_call():
    """Fail the file when one of its calls is not allowed by the policy of the module or role that made it."""
    worker = _worker_dir()
    calls, tasks = iam_policies.Journal(worker / "calls"), iam_policies.Journal(worker / "tasks")
    calls.drain()  # what earlier files (and tests/lab files on this worker) called is theirs
    tasks.drain()
    yield
    found = iam_policies.attributed_calls(calls.drain(), iam_policies.task_windows(tasks.drain()))
    if WRITE:
        with open(worker / "attributed.tsv", "a", encoding="utf-8") as attributed:
            attributed.writelines(sorted({f"{subject}\t{action}\n" for subject, action, _entry in found}))
        return
    denied = iam_policies.violations(found)
    if denied:
        pytest.fail("calls not allowed by the IAM policy of the module or role that made them:\n  "
                    + "\n  ".join(iam_policies.describe_violations(denied))
                    + "\nIf the call is meant, regenerate docs/iam over the whole suite and review the diff: make "
                    "iam-policies (IAM_POLICIES_WRITE=1 .venv/bin/pytest -q -n 2 --dist loadfile tests/integration).",
                    pytrace=False)

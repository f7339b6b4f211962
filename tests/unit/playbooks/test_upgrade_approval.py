# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/upgrade.yml's approval fails closed: run without a terminal (stdin closed, as AWX, cron and CI run it)
and without -e dbre_rds_upgrade_approved=true, the play stops before the switchover task. No AWS: the endpoint is a
closed local port, so the approved run's switchover task reaches the module and fails there, proving the gate opens."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
SWITCHOVER_TASK = "Switch over with write probes running"


def _run(*extra, tags="approval,switchover"):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build"), AWS_ACCESS_KEY_ID="testing",
               AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1", AWS_REGION="us-east-1",
               AWS_URL="http://127.0.0.1:9", AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_MAX_ATTEMPTS="1",
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    command = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), str(ROOT / "playbooks" / "upgrade.yml"),
               "--tags", tags, "-e", "dbre_rds_db_instance_identifier=shop",
               "-e", "dbre_rds_upgrade_target_version=18.6", "-e", "dbre_rds_drill_password=not-used", *extra]
    done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=300, check=False)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.parametrize("extra", [(), ("-e", "dbre_rds_upgrade_approved=false")])
def test_a_run_without_a_terminal_and_without_approval_never_reaches_the_switchover(extra):
    returncode, output = _run(*extra)
    assert returncode != 0, output
    assert "The switchover of shop was not approved" in output, output
    assert "dbre_rds_upgrade_approved=true" in output
    assert f"TASK [{SWITCHOVER_TASK}]" not in output, output


def test_an_explicit_approval_lets_the_switchover_task_run():
    returncode, output = _run("-e", "dbre_rds_upgrade_approved=true")
    assert "not approved" not in output, output
    # The task ran (and failed on the closed endpoint: nothing to switch over here).
    assert f"TASK [{SWITCHOVER_TASK}]" in output, output
    assert returncode != 0


def test_a_plain_run_never_deletes_and_the_cleanup_needs_an_explicit_choice_about_the_old_blue():
    # The tasks a plain run (no tags given) would run: the switchover, never the cleanup.
    returncode, output = _run("--list-tasks", tags="all")
    assert returncode == 0 and SWITCHOVER_TASK in output, output
    assert "Delete the deployment" not in output, output
    returncode, output = _run("--list-tasks", tags="cleanup")
    assert "Delete the deployment" in output, output
    returncode, output = _run(tags="cleanup")
    assert returncode != 0 and "needs -e dbre_rds_upgrade_delete_old_blue=true" in output, output
    assert "TASK [Delete the deployment" not in output, output

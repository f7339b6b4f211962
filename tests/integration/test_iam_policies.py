# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""docs/iam/*.json cover every action the lab logged for their module, role or playbook, and no other.

The site flow runs against a lab of its own, one playbook after the other, each in its own ansible-playbook process;
the time window of each run names the role it runs (or ``playbooks`` for the drill and tuning playbooks, ``demo`` for
the fixtures), and the collection's modules name themselves in the user agent (``dbre.rds/<module>``).

``IAM_POLICIES_WRITE=1`` writes docs/iam/ from the run instead of comparing (the lead's ``make iam-policies``).
"""

import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import time

import pytest

from tests.lab.__main__ import lab_env, start_daemon, stop_daemon
from tests.tools.iam_policies import actions_by_subject, policy_actions, read_calls, write_policies

REPO = pathlib.Path(__file__).resolve().parents[2]
IAM_DIR = REPO / "docs" / "iam"
ANSIBLE_PLAYBOOK = str(REPO / ".venv" / "bin" / "ansible-playbook")
FIXTURES = {"demo"}

# (playbook, subject of its run): the order of playbooks/site.yml, with the demo's fixtures around it.
FLOW = [
    ("playbooks/demo/prepare_lab.yml", "demo"),
    ("playbooks/provision_rds.yml", "rds_provision"),
    ("playbooks/demo/load_sample_data.yml", "demo"),
    ("playbooks/configure_users.yml", "rds_users"),
    ("playbooks/configure_monitoring.yml", "rds_monitoring"),
    ("playbooks/tune_parameters.yml", "playbooks"),
    ("playbooks/failover_drill.yml", "playbooks"),
    ("playbooks/restore_drill.yml", "playbooks"),
]


_FLOW_OUTCOME = {}


@pytest.fixture(scope="module")
def site_calls():
    """(call log, playbook windows) of the whole site flow, run once against a lab of its own."""
    if "error" in _FLOW_OUTCOME:
        pytest.fail(_FLOW_OUTCOME["error"])
    if "calls" not in _FLOW_OUTCOME:
        try:
            _FLOW_OUTCOME["calls"] = run_site_flow()
        except AssertionError as error:
            _FLOW_OUTCOME["error"] = str(error)
            raise
    return _FLOW_OUTCOME["calls"]


def run_site_flow():
    # Under /tmp with 0755, as the lab fixture does: the lab's PostgreSQL runs as the postgres user.
    work = pathlib.Path(tempfile.mkdtemp(prefix="dbre-rds-iam-"))
    os.chmod(work, 0o755)
    process, info = start_daemon(work / "lab", parent_pid=os.getpid())
    try:
        env = dict(os.environ, **lab_env(info["url"]), ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build"),
                   ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_PIPELINING="1", ANSIBLE_NOCOLOR="1")
        overrides = work / "vars.json"
        overrides.write_text(json.dumps({
            "dbre_rds_report_dir": str(work / "reports"), "dbre_rds_progress_log": str(work / "reports" / "drills.log"),
            "dbre_rds_tune_reboot": "if_pending", "dbre_rds_poll_interval": 0.5, "dbre_rds_async_poll": 1,
            "dbre_rds_failover_settle_seconds": 1,
        }))
        network = work / "network.yml"
        windows = []
        for playbook, subject in FLOW:
            command = [ANSIBLE_PLAYBOOK, str(REPO / playbook), "-e", f"@{REPO / 'playbooks/vars/example.yml'}",
                       "-e", f"@{overrides}", "-e", f"demo_network_file={network}"]
            if network.exists():
                command += ["-e", f"@{network}"]
            start = time.time()
            result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False)
            windows.append({"subject": subject, "start": start, "end": time.time()})
            assert result.returncode == 0, f"{playbook} failed:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
        return read_calls(lab_url=info["url"]), windows
    finally:
        stop_daemon(work / "lab", process.pid)
        shutil.rmtree(work, ignore_errors=True)


def test_every_call_is_attributed(site_calls):
    unused, unattributed = actions_by_subject(*site_calls, ignore=FIXTURES)
    assert [(e["service"], e["action"], e["user_agent"]) for e in unattributed] == []


def test_policies_cover_exactly_the_logged_actions(site_calls):
    logged, unused = actions_by_subject(*site_calls, ignore=FIXTURES)
    assert {"rds_provision", "rds_users", "rds_monitoring", "rds_param_tune", "rds_failover_test", "rds_restore_drill",
            "rds_alarm_thresholds_info", "rds_event_subscription", "playbooks"} <= set(logged)
    if os.environ.get("IAM_POLICIES_WRITE") == "1":
        write_policies(logged, IAM_DIR)
    mismatches = {}
    for subject, actions in sorted(logged.items()):
        path = IAM_DIR / f"{subject}.json"
        allowed = policy_actions(json.loads(path.read_text())) if path.exists() else set()
        if allowed != actions:
            mismatches[subject] = {"missing": sorted(actions - allowed), "not called": sorted(allowed - actions)}
    stale = sorted(path.stem for path in IAM_DIR.glob("*.json") if path.stem not in logged)
    assert mismatches == {}, "regenerate docs/iam with IAM_POLICIES_WRITE=1"
    assert stale == [], "policy files for a module or role that made no call in the flow"


def test_the_drills_called_what_they_document(site_calls):
    """A sanity check of the attribution itself: each drill's own API call is in its policy."""
    logged, unused = actions_by_subject(*site_calls, ignore=FIXTURES)
    assert "rds:RebootDBInstance" in logged["rds_failover_test"]
    assert "rds:RestoreDBInstanceToPointInTime" in logged["rds_restore_drill"]
    assert "rds:DeleteDBInstance" in logged["rds_restore_drill"]
    assert "rds:CreateDBInstance" in logged["rds_provision"]
    assert "cloudwatch:PutMetricAlarm" in logged["rds_monitoring"]
    assert "secretsmanager:GetSecretValue" in logged["rds_users"]

# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``make demo``: the whole dbre.rds flow against the local lab, then a summary a person reads at a glance.

Starts the lab (state under .lab/demo), prepares its network and the login secrets (playbooks/demo/prepare_lab.yml),
provisions orders-db, loads sample orders (playbooks/demo/load_sample_data.yml), runs playbooks/site.yml with
playbooks/vars/example.yml and a summary file, prints the summary, and always stops the lab, also on Ctrl-C or
SIGTERM. Logs, drill reports and the summary stay in .build/demo/.
"""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
STATE_DIR = REPO / ".lab" / "demo"
OUTPUT_DIR = REPO / ".build" / "demo"
PYTHON = sys.executable
ANSIBLE_PLAYBOOK = str(pathlib.Path(PYTHON).parent / "ansible-playbook")

# What the demo changes in playbooks/vars/example.yml (besides the lab's network, from prepare_lab.yml): where files
# go, quicker polling, and a reboot for the static parameter the tuning step sets.
DEMO_VARS = {
    "dbre_rds_report_dir": str(OUTPUT_DIR / "reports"),
    "dbre_rds_progress_log": str(OUTPUT_DIR / "reports" / "drills.log"),
    "dbre_rds_summary_file": str(OUTPUT_DIR / "site-summary.json"),
    "dbre_rds_tune_reboot": "if_pending",
    "dbre_rds_poll_interval": 0.5,
    "dbre_rds_async_poll": 1,
    "dbre_rds_failover_settle_seconds": 2,
}


class Stopped(Exception):
    """Raised by the signal handler so that ``finally`` stops the lab."""


def _on_signal(signum, unused_frame):
    raise Stopped(signal.Signals(signum).name)


class Demo:
    def __init__(self):
        self.env = None
        self.child = None
        self.log = OUTPUT_DIR / "demo.log"

    def lab(self, action):
        env = dict(os.environ, LAB_STATE_DIR=str(STATE_DIR))
        return subprocess.run([PYTHON, "-m", "tests.lab", action], cwd=REPO, env=env, check=False,
                              capture_output=True, text=True)

    def start_lab(self):
        result = self.lab("up")
        if result.returncode != 0:
            raise RuntimeError(f"the lab did not start:\n{result.stdout}{result.stderr}")
        env = dict(os.environ)
        for line in (STATE_DIR / "env.sh").read_text().splitlines():
            if line.startswith("export "):
                key, value = line[len("export "):].split("=", 1)
                env[key] = value
            elif line.startswith("unset "):
                for key in line.split()[1:]:
                    env.pop(key, None)
        env.update({
            "LAB_STATE_DIR": str(STATE_DIR),
            "ANSIBLE_COLLECTIONS_PATH": str(REPO / ".build"),
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
            "ANSIBLE_PIPELINING": "1",
            "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
        })
        self.env = env
        return env["LAB_URL"]

    def stop_lab(self):
        if self.child and self.child.poll() is None:
            self.child.terminate()
            try:
                self.child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.child.kill()
        result = self.lab("down")
        return result.returncode == 0

    def playbook(self, title, path, *extra, app_id=None):
        started = time.monotonic()
        print(f"  {title} ...", end="", flush=True)
        network = OUTPUT_DIR / "network.yml"
        command = [ANSIBLE_PLAYBOOK, str(REPO / path),
                   "-e", f"@{REPO / 'playbooks/vars/example.yml'}",
                   *(["-e", f"@{network}"] if network.exists() else []),
                   "-e", f"@{OUTPUT_DIR / 'demo_vars.json'}", *extra]
        env = dict(self.env, AWS_SDK_UA_APP_ID=app_id) if app_id else self.env
        with open(self.log, "a", encoding="utf-8") as log:
            log.write(f"\n### {title}: {' '.join(command)}\n")
            log.flush()
            self.child = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
            code = self.child.wait()
            self.child = None
        print(f" {'ok' if code == 0 else 'FAILED'} ({time.monotonic() - started:.1f} s)")
        if code != 0:
            tail = self.log.read_text(encoding="utf-8").splitlines()[-40:]
            raise RuntimeError(f"{title} failed (exit {code}); the end of {self.log}:\n" + "\n".join(tail))

    def run(self):
        OUTPUT_DIR.mkdir(parents=True, exist_ok=True)
        for stale in ("site-summary.json", "demo.log", "network.yml"):
            (OUTPUT_DIR / stale).unlink(missing_ok=True)
        reports = OUTPUT_DIR / "reports"
        if reports.exists():
            for path in reports.iterdir():
                if path.is_dir():  # reports/fleet/ of the fleet report
                    shutil.rmtree(path)
                else:
                    path.unlink()
        (OUTPUT_DIR / "demo_vars.json").write_text(json.dumps(DEMO_VARS, indent=2) + "\n")
        url = self.start_lab()
        print(f"Lab up at {url} (state in {STATE_DIR.relative_to(REPO)}, log in {self.log.relative_to(REPO)})")
        self.playbook("prepare the lab: VPC, two subnets, app security group, login secrets",
                      "playbooks/demo/prepare_lab.yml", "-e", f"demo_network_file={OUTPUT_DIR / 'network.yml'}",
                      app_id="dbre.rds.demo")
        self.playbook("provision orders-db (playbooks/provision_rds.yml)", "playbooks/provision_rds.yml")
        self.playbook("load sample orders (playbooks/demo/load_sample_data.yml)", "playbooks/demo/load_sample_data.yml",
                      app_id="dbre.rds.demo")
        self.playbook("run playbooks/site.yml: provision, users, monitoring, tuning, failover and restore drills",
                      "playbooks/site.yml")
        return json.loads((OUTPUT_DIR / "site-summary.json").read_text())


def _seconds(value):
    if value is None:
        return "n/a"
    shown = f"{value:.1f}"
    return f"{'0.0' if shown == '-0.0' else shown} s"


def _verdict(passed):
    return {True: "PASSED", False: "FAILED"}.get(passed, "not judged")


def render_summary(summary, reports_dir):
    """The lines a person reads after the demo."""
    lines = ["", "=" * 78, f"dbre.rds demo: {summary['instance']}", "=" * 78]
    endpoint = summary["endpoint"]
    lines.append(f"Endpoint      {endpoint['address']}:{endpoint['port']}  master {endpoint['master_username']} "
                 f"(password in Secrets Manager: {endpoint['master_secret']})")
    users = summary.get("users") or {}
    logins = users.get("logins", [])
    iam = set(users.get("iam_logins", []))
    lines.append(f"Logins        {len(logins)} in database {', '.join(users.get('databases', []))}: "
                 + ", ".join(f"{name} (IAM)" if name in iam else name for name in logins))
    alarms = summary.get("alarms") or []
    lines.append(f"Alarms        {len(alarms)} CloudWatch alarms, to SNS:")
    for alarm in alarms:
        symbols = {"GreaterThanOrEqualToThreshold": ">=", "GreaterThanThreshold": ">",
                   "LessThanThreshold": "<", "LessThanOrEqualToThreshold": "<="}
        comparison = symbols.get(alarm.get("comparison"), alarm.get("comparison"))
        threshold = alarm.get("threshold")
        shown = f"{threshold:,.0f}" if isinstance(threshold, (int, float)) and threshold >= 1000 else threshold
        lines.append(f"                {alarm['metric_name']:<28} {comparison} {shown} {alarm.get('unit') or ''}".rstrip())
    parameters = summary.get("parameters")
    if parameters:
        changed = parameters["changed"]
        lines.append(f"Parameters    {len(changed)} changed in {parameters['group']}"
                     + (": " + ", ".join(f"{c['name']}={c['after']} ({c['apply_method']})" for c in changed) if changed else ""))
        lines.append(f"                pending reboot: {', '.join(parameters['pending_reboot']) or 'none'}; "
                     f"rebooted: {', '.join(parameters['rebooted']) or 'none'}")
    failover = summary.get("failover")
    if failover:
        lines.append(f"Failover      {_verdict(failover['passed'])}: clients saw {_seconds(failover['observed_downtime_seconds'])}"
                     f" of downtime (objective {_seconds(failover['max_downtime_seconds'])}), "
                     f"{failover['lost_writes']} acknowledged writes lost; writer AZ {failover['az_before']} -> "
                     f"{failover['az_after']}; API said done after {_seconds(failover['api_failover_seconds'])}")
    else:
        lines.append("Failover      skipped")
    restore = summary.get("restore")
    if restore:
        point = restore.get("recovery_point") or {}
        lines.append(f"Restore       {_verdict(restore['passed'])}: RTO {_seconds(restore['rto_seconds'])} (objective "
                     f"{_seconds(restore['max_rto_seconds'])}), RPO {_seconds(restore['rpo_seconds'])} (objective "
                     f"{_seconds(restore['max_rpo_seconds'])}); {point.get('type', '?')} restore, "
                     f"{sum(1 for check in restore['checks'] if check['passed'])}/{len(restore['checks'])} checks passed; "
                     f"removed {', '.join(restore['cleanup_removed']) or 'nothing'}")
    else:
        lines.append("Restore       skipped")
    markdown = sorted(str(path.relative_to(REPO)) for path in reports_dir.glob("*.md")) if reports_dir.exists() else []
    lines.append("Reports       " + ("\n              ".join(markdown) if markdown else "none written"))
    lines.append(f"Summary JSON  {(OUTPUT_DIR / 'site-summary.json').relative_to(REPO)}")
    return "\n".join(lines)


def leftover_processes():
    """Processes still running from the demo's lab (moto server or PostgreSQL under its state directory)."""
    result = subprocess.run(["pgrep", "-af", str(STATE_DIR)], check=False, capture_output=True, text=True)
    return [line for line in result.stdout.splitlines() if line.strip() and str(os.getpid()) != line.split()[0]]


def main():
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    started = time.monotonic()
    demo = Demo()
    code = 0
    summary = None
    try:
        summary = demo.run()
    except Stopped as stop:
        print(f"\nInterrupted ({stop}); stopping the lab.")
        code = 130
    except (RuntimeError, OSError, ValueError) as error:
        print(f"\nThe demo failed: {error}")
        code = 1
    finally:
        # A second signal while stopping must not leave the lab running.
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        stopped = demo.stop_lab()
        left = leftover_processes()
    if summary:
        print(render_summary(summary, OUTPUT_DIR / "reports"))
        if not (summary.get("failover") or {}).get("passed") or not (summary.get("restore") or {}).get("passed"):
            code = code or 1
    print(f"\nLab {'stopped' if stopped and not left else 'NOT fully stopped'}: "
          f"{'no lab process left' if not left else 'still running: ' + '; '.join(left)}. "
          f"Wall time {time.monotonic() - started:.0f} s.")
    return code or (0 if stopped and not left else 1)


if __name__ == "__main__":
    sys.exit(main())

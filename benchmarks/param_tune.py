# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""API calls and wall time of dbre.rds.rds_param_tune beside amazon.aws.rds_instance_param_group, on the lab.

For 1, 10 and 50 parameter groups, each tool creates its own groups and sets the same final values (this module's
recommendation for db.r6g.large, oltp), then runs again on the same groups (nothing left to change). API calls come
from the lab's call log, wall time from the ansible-playbook run. Both tools run against one lab in one run.

    .venv/bin/python benchmarks/param_tune.py [--groups 1 10 50] [--lab-url URL]

Without --lab-url (or LAB_URL) a private lab is started and stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.lab.__main__ import lab_env, start_daemon, stop_daemon  # noqa: E402
from tests.lab.control import LabControl  # noqa: E402

INSTANCE_CLASS = "db.r6g.large"
WORKLOAD = "oltp"

OURS = """---
- name: rds_param_tune on {count} groups
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Tune each group
      dbre.rds.rds_param_tune:
        db_parameter_group_name: "bench-ours-{count}-{{{{ item }}}}"
        family: postgres15
        db_instance_class: {instance_class}
        workload: {workload}
      loop: "{{{{ range({count}) | list }}}}"
"""

AMAZON = """---
- name: amazon.aws.rds_instance_param_group on {count} groups
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Set the same values on each group
      amazon.aws.rds_instance_param_group:
        name: "bench-aws-{count}-{{{{ item }}}}"
        engine: postgres15
        description: benchmark
        params: "{{{{ bench_values }}}}"
        state: present
      loop: "{{{{ range({count}) | list }}}}"
"""


def run_playbook(text, env, workdir, extra_vars=None):
    playbook = workdir / f"play-{time.monotonic_ns()}.yml"
    playbook.write_text(text)
    command = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), str(playbook), "-i", "localhost,", "-c", "local"]
    if extra_vars:
        command += ["-e", "@" + str(extra_vars)]
    started = time.monotonic()
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=3600,
                            check=False)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-5000:] + result.stderr[-3000:])
        raise SystemExit(f"playbook failed: {playbook}")
    return seconds


def measure(control, text, env, workdir, extra_vars=None):
    control.clear_calls()
    seconds = run_playbook(text, env, workdir, extra_vars)
    calls = control.calls()
    actions = [c["action"] for c in calls]
    return {
        "seconds": seconds,
        "calls": len(calls),
        "modify": sum(a.startswith("Modify") for a in actions),
        "mutating": sum(not a.startswith(("Describe", "List")) for a in actions),
    }


def user_values(rds, group):
    values, marker = {}, None
    while True:
        kwargs = {"DBParameterGroupName": group, "Source": "user"}
        if marker:
            kwargs["Marker"] = marker
        page = rds.describe_db_parameters(**kwargs)
        values.update({p["ParameterName"]: p["ParameterValue"] for p in page["Parameters"]})
        marker = page.get("Marker")
        if not marker:
            return values


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 10, 50])
    parser.add_argument("--lab-url", default=os.environ.get("LAB_URL"))
    args = parser.parse_args()

    state_dir, process = None, None
    url = args.lab_url
    if not url:
        state_dir = pathlib.Path(tempfile.mkdtemp(prefix="dbre-bench-lab-"))
        process, info = start_daemon(state_dir, parent_pid=os.getpid())
        url = info["url"]
    try:
        import boto3

        control = LabControl(url)
        env = dict(os.environ, **lab_env(url), ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build"),
                   ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_NOCOLOR="1")
        rds = boto3.client("rds", endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                           aws_secret_access_key="testing")
        rows = []
        with tempfile.TemporaryDirectory(prefix="dbre-bench-") as scratch:
            workdir = pathlib.Path(scratch)
            for count in args.groups:
                ours = OURS.format(count=count, instance_class=INSTANCE_CLASS, workload=WORKLOAD)
                first = measure(control, ours, env, workdir)
                again = measure(control, ours, env, workdir)
                values = user_values(rds, f"bench-ours-{count}-0")
                vars_file = workdir / f"values-{count}.json"
                vars_file.write_text(json.dumps({"bench_values": values}))
                amazon = AMAZON.format(count=count)
                amazon_first = measure(control, amazon, env, workdir, vars_file)
                amazon_again = measure(control, amazon, env, workdir, vars_file)
                same = all(user_values(rds, f"bench-aws-{count}-{i}") == values
                           and user_values(rds, f"bench-ours-{count}-{i}") == values for i in range(count))
                rows.append((count, "dbre.rds.rds_param_tune", "first", first, len(values), same))
                rows.append((count, "dbre.rds.rds_param_tune", "again", again, len(values), same))
                rows.append((count, "amazon.aws.rds_instance_param_group", "first", amazon_first, len(values), same))
                rows.append((count, "amazon.aws.rds_instance_param_group", "again", amazon_again, len(values), same))
    finally:
        if state_dir is not None:
            stop_daemon(state_dir, process.pid if process else None)

    print(f"Parameter groups set to the same {rows[0][4]} values ({INSTANCE_CLASS}, {WORKLOAD}); lab at {url}")
    header = f"{'groups':>6}  {'tool':<36} {'run':<5} {'API calls':>9} {'modify':>6} {'mutating':>8} " \
             f"{'wall s':>7} {'s/group':>7}  same values"
    print(header)
    print("-" * len(header))
    for count, tool, run, m, _values, same in rows:
        print(f"{count:>6}  {tool:<36} {run:<5} {m['calls']:>9} {m['modify']:>6} {m['mutating']:>8} "
              f"{m['seconds']:>7.1f} {m['seconds'] / count:>7.2f}  {'yes' if same else 'NO'}")
    print()
    print("command: " + " ".join(shlex.quote(a) for a in [".venv/bin/python", "benchmarks/param_tune.py", "--groups",
                                                          *map(str, args.groups)]))


if __name__ == "__main__":
    main()

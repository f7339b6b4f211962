# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""API calls and wall time of dbre.rds.rds_param_tune beside amazon.aws.rds_instance_param_group, on the lab.

For 1, 10 and 50 parameter groups, each tool creates its own groups and sets the same final values (this module's
recommendation for db.r6g.large, oltp), then runs again on the same groups (nothing left to change). API calls come
from the lab's call log, wall time from the ansible-playbook run. Both tools run against one lab in one run, after
one unmeasured warm-up run of each. rds_param_tune runs once for all the groups (``parameter_groups``), as a fleet
is tuned; amazon.aws's module has no such option and runs once per group in a loop. ``--loop`` adds rows for
rds_param_tune in the same loop (one run per group).

    .venv/bin/python benchmarks/param_tune.py [--groups 1 10 50] [--loop] [--lab-url URL]

Without --lab-url (or LAB_URL) a private lab is started and stopped.

One run on 2026-11-29, on a 2-core machine shared with other jobs (load average 7 to 11, so every figure is several
times a quiet machine's; the comparison within the run is what counts):

    groups  tool                                 run   API calls modify mutating  wall s s/group  same values
    ---------------------------------------------------------------------------------------------------------
         1  dbre.rds.rds_param_tune (fleet)      first         9      2        3    17.7   17.72  yes
         1  dbre.rds.rds_param_tune (fleet)      again         7      0        0    17.4   17.39  yes
         1  amazon.aws.rds_instance_param_group  first        10      2        3    10.5   10.53  yes
         1  amazon.aws.rds_instance_param_group  again         7      0        0     8.2    8.19  yes
        10  dbre.rds.rds_param_tune (fleet)      first        45     20       30    11.9    1.19  yes
        10  dbre.rds.rds_param_tune (fleet)      again        26      0        0    12.3    1.23  yes
        10  amazon.aws.rds_instance_param_group  first       100     20       30    34.4    3.44  yes
        10  amazon.aws.rds_instance_param_group  again        70      0        0    38.6    3.86  yes
        50  dbre.rds.rds_param_tune (fleet)      first       205    100      150    20.3    0.41  yes
        50  dbre.rds.rds_param_tune (fleet)      again       106      0        0    17.1    0.34  yes
        50  amazon.aws.rds_instance_param_group  first       500    100      150   147.9    2.96  yes
        50  amazon.aws.rds_instance_param_group  again       350      0        0   165.6    3.31  yes

         1 groups: fleet run NOT faster than amazon.aws, no more API calls
        10 groups: fleet run faster than amazon.aws, no more API calls
        50 groups: fleet run faster than amazon.aws, no more API calls

The fleet run reads the engine defaults once per family (4 pages here), sizes each class once (one EC2 call) and lists
the instances using the groups once; per group it costs a DescribeDBParameterGroups, a CreateDBParameterGroup and two
modify calls on the first run, and a DescribeDBParameterGroups and one DescribeDBParameters (Source=user) on the
second. A single group still pays the module's start-up and the EC2 client's creation once, which amazon.aws's module
does not (it never sizes anything), so at one group it is slower; `sizing_source: table` skips the EC2 client.
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

# The fleet form: one module run for every group, the metadata and the sizing read once.
OURS = """---
- name: rds_param_tune on {count} groups
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Tune every group in one run
      dbre.rds.rds_param_tune:
        family: postgres15
        db_instance_class: {instance_class}
        workload: {workload}
        parameter_groups: {groups}
"""

# The single-group form in a loop, as before the fleet option: one module run per group.
OURS_LOOP = """---
- name: rds_param_tune on {count} groups, one run each
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Tune each group
      dbre.rds.rds_param_tune:
        db_parameter_group_name: "bench-loop-{count}-{{{{ item }}}}"
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
        name: "{prefix}-{{{{ item }}}}"
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
    parser.add_argument("--loop", action="store_true",
                        help="also run rds_param_tune once per group in a loop (the single-group form)")
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
            # One unmeasured run of each tool first, so neither pays the cold start of the lab's services.
            warm_up = workdir / "warm-up.json"
            warm_up.write_text(json.dumps({"bench_values": {"work_mem": "4096"}}))
            run_playbook(OURS.format(count=1, instance_class=INSTANCE_CLASS, workload=WORKLOAD,
                                     groups=json.dumps([{"db_parameter_group_name": "bench-warm-up-ours"}])),
                         env, workdir)
            run_playbook(AMAZON.format(count=1, prefix="bench-warm-up-aws"), env, workdir, warm_up)
            for count in args.groups:
                names = [{"db_parameter_group_name": f"bench-ours-{count}-{i}"} for i in range(count)]
                ours = OURS.format(count=count, instance_class=INSTANCE_CLASS, workload=WORKLOAD,
                                   groups=json.dumps(names))
                first = measure(control, ours, env, workdir)
                again = measure(control, ours, env, workdir)
                values = user_values(rds, f"bench-ours-{count}-0")
                vars_file = workdir / f"values-{count}.json"
                vars_file.write_text(json.dumps({"bench_values": values}))
                amazon = AMAZON.format(count=count, prefix=f"bench-aws-{count}")
                amazon_first = measure(control, amazon, env, workdir, vars_file)
                amazon_again = measure(control, amazon, env, workdir, vars_file)
                prefixes = ["bench-aws", "bench-ours"]
                if args.loop:
                    loop = OURS_LOOP.format(count=count, instance_class=INSTANCE_CLASS, workload=WORKLOAD)
                    loop_first = measure(control, loop, env, workdir)
                    loop_again = measure(control, loop, env, workdir)
                    prefixes.append("bench-loop")
                same = all(user_values(rds, f"{prefix}-{count}-{i}") == values
                           for prefix in prefixes for i in range(count))
                rows.append((count, "dbre.rds.rds_param_tune (fleet)", "first", first, len(values), same))
                rows.append((count, "dbre.rds.rds_param_tune (fleet)", "again", again, len(values), same))
                if args.loop:
                    rows.append((count, "dbre.rds.rds_param_tune (loop)", "first", loop_first, len(values), same))
                    rows.append((count, "dbre.rds.rds_param_tune (loop)", "again", loop_again, len(values), same))
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
    for count in args.groups:
        fleet = {run: m for c, tool, run, m, _v, _s in rows if c == count and tool.endswith("(fleet)")}
        amazon = {run: m for c, tool, run, m, _v, _s in rows if c == count and tool.startswith("amazon")}
        faster = all(fleet[run]["seconds"] < amazon[run]["seconds"] for run in fleet)
        fewer = all(fleet[run]["calls"] <= amazon[run]["calls"] for run in fleet)
        print(f"{count:>6} groups: fleet run {'faster' if faster else 'NOT faster'} than amazon.aws, "
              f"{'no more' if fewer else 'MORE'} API calls")
    print("command: " + " ".join(shlex.quote(a) for a in [".venv/bin/python", "benchmarks/param_tune.py", "--groups",
                                                          *map(str, args.groups)] + (["--loop"] if args.loop else [])))


if __name__ == "__main__":
    main()

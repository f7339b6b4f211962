# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bad inputs, run as a user runs them: many cases in one ansible-playbook run against the lab.

A case is ``{"id": "short-name", "args": {...}}`` for a module (or ``"vars": {...}`` for a role) and
``"expect": ["fragment", ...]``: every fragment must appear in the error message (case-insensitive). Each case runs
in its own block whose rescue records the failure, so one run answers for all of them. What must hold for each case:

- the task failed, and its message names the problem (every ``expect`` fragment);
- the lab's call log shows no mutating call during the whole run (only Describe*, List*, Get*, Download*);
- ansible-core reports no deprecated use (the next ansible-core would break it);
- nothing changed: the lab's resources (instances, clusters, parameter groups and their values, snapshots,
  subscriptions) are the same after the run as before it.

``assert_all_refused`` checks the three at once and reports every case that broke a rule, not only the first.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = str(pathlib.Path(sys.executable).parent / "ansible-playbook")
# Query and JSON actions by name; REST calls (Route 53, S3) are logged as "<METHOD> <path>": GET and HEAD read.
READ_ONLY_PREFIXES = ("Describe", "List", "Get", "Download", "GET ", "HEAD ")
# Password-like values given in cases are masked by no_log; the harness still checks that they are not in the output.


def module_env(lab, extra=None):
    env = dict(os.environ)
    env.update(lab.env)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build"), ANSIBLE_ROLES_PATH=str(ROOT / "roles"),
               ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
               ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_NOCOLOR="1", ANSIBLE_DEPRECATION_WARNINGS="1")
    env.update(extra or {})
    return env


def _case_block(case, task):
    key = case["id"]
    return {
        "name": f"case {key}",
        "block": [task],
        "rescue": [{
            "name": f"record {key}",
            "ansible.builtin.set_fact": {
                "__bad_input_results": "{{ __bad_input_results | combine({'%s': {'failed': true, 'msg': "
                                       "(ansible_failed_result.msg | default('') | string)}}) }}" % key,
            },
        }],
    }


def _module_task(module, case):
    task = {"name": f"{case['id']}: {module}", module: case.get("args") or {}}
    if case.get("check_mode"):
        task["check_mode"] = True
    return task


def _role_task(role, case):
    task = {"name": f"{case['id']}: role {role}", "ansible.builtin.include_role": {"name": role}}
    if case.get("vars"):
        task["vars"] = case["vars"]
    return task


def _playbook(tasks, play_vars=None):
    return [{
        "name": "Bad inputs",
        "hosts": "localhost",
        "connection": "local",
        "gather_facts": False,
        "vars": dict({"__bad_input_results": {}}, **(play_vars or {})),
        "tasks": tasks + [{"name": "results", "ansible.builtin.debug": {"var": "__bad_input_results"}}],
    }]


def deprecations(stdout):
    """Every deprecation ansible-core reported for a task of the run (json callback output)."""
    found = []
    for play in json.loads(stdout).get("plays", []):
        for task in play.get("tasks", []):
            for result in task.get("hosts", {}).values():
                found += [d.get("msg") for d in result.get("deprecations") or []]
    return found


def run_cases(lab, tasks, play_vars=None, timeout=900):
    """Run the blocks in one playbook; returns ({case id: {"failed", "msg"}}, stdout)."""
    with tempfile.TemporaryDirectory(prefix="dbre-bad-inputs-") as tmp:
        path = pathlib.Path(tmp) / "bad_inputs.yml"
        path.write_text(yaml.safe_dump(_playbook(tasks, play_vars), sort_keys=False))
        done = subprocess.run([ANSIBLE_PLAYBOOK, "-i", "localhost,", str(path)], env=module_env(lab), cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout, check=False)
    try:
        plays = json.loads(done.stdout)["plays"]
        last = plays[-1]["tasks"][-1]["hosts"]["localhost"]
        return last["__bad_input_results"], done.stdout
    except (ValueError, KeyError, IndexError):
        raise AssertionError(f"no results in the playbook output:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}") \
            from None


def run_module_cases(lab, module, cases, play_vars=None):
    """Every case as a task of ``module`` (FQCN); returns ({id: result}, stdout)."""
    return run_cases(lab, [_case_block(c, _module_task(module, c)) for c in cases], play_vars)


def run_role_cases(lab, role, cases, play_vars=None):
    """Every case as ``include_role: role`` with the case's ``vars``; returns ({id: result}, stdout)."""
    return run_cases(lab, [_case_block(c, _role_task(role, c)) for c in cases], play_vars)


def mutating_calls(lab, since=None):
    """Calls the lab served since ``since`` (epoch seconds) that are not reads."""
    return [c for c in lab.control.calls(since=since) if not str(c.get("action", "")).startswith(READ_ONLY_PREFIXES)
            and not c.get("action", "").startswith("_")]


def lab_snapshot(lab):
    """What a bad input must not change: the lab's resources and their settings, as comparable data."""
    rds = lab.client("rds")
    state = {
        "instances": sorted((i["DBInstanceIdentifier"], i["DBInstanceStatus"], i["DBInstanceClass"],
                             i.get("DBParameterGroups", [{}])[0].get("DBParameterGroupName"))
                            for i in rds.describe_db_instances()["DBInstances"]),
        "clusters": sorted((c["DBClusterIdentifier"], c["Status"]) for c in rds.describe_db_clusters()["DBClusters"]),
        "snapshots": sorted(s["DBSnapshotIdentifier"] for s in rds.describe_db_snapshots()["DBSnapshots"]),
        "cluster_snapshots": sorted(s["DBClusterSnapshotIdentifier"]
                                    for s in rds.describe_db_cluster_snapshots()["DBClusterSnapshots"]),
        "subscriptions": sorted(s["CustSubscriptionId"]
                                for s in rds.describe_event_subscriptions()["EventSubscriptionsList"]),
        "parameter_groups": {},
    }
    for group in rds.describe_db_parameter_groups()["DBParameterGroups"]:
        name = group["DBParameterGroupName"]
        if name.startswith("default."):
            continue
        values = rds.get_paginator("describe_db_parameters").paginate(DBParameterGroupName=name, Source="user")
        state["parameter_groups"][name] = sorted((p["ParameterName"], p.get("ParameterValue"))
                                                 for page in values for p in page["Parameters"])
    return state


def assert_all_refused(lab, runner, target, cases, play_vars=None, secrets=()):
    """Run ``cases`` through ``runner`` (run_module_cases / run_role_cases) and check every rule for every case."""
    ids = [c["id"] for c in cases]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    before = lab_snapshot(lab)
    since = time.time()
    results, stdout = runner(lab, target, cases, play_vars)
    problems = []
    for case in cases:
        result = results.get(case["id"])
        if not result or not result.get("failed"):
            problems.append(f"{case['id']}: was not refused")
            continue
        message = str(result.get("msg") or "")
        missing = [f for f in case["expect"] if f.lower() not in message.lower()]
        if missing:
            problems.append(f"{case['id']}: message {message!r} does not name {missing}")
        if "output has been hidden" in message:
            problems.append(f"{case['id']}: the error is hidden by no_log: {message!r}")
    problems += [f"deprecated use reported by ansible-core: {msg}" for msg in deprecations(stdout)]
    mutating = mutating_calls(lab, since)
    if mutating:
        problems.append("mutating calls were made: " + ", ".join(sorted({c['action'] for c in mutating})))
    after = lab_snapshot(lab)
    if after != before:
        problems.append(f"the lab changed:\nbefore {before}\nafter  {after}")
    for secret in secrets:
        if secret and secret in stdout:
            problems.append(f"a secret given in the cases appears in the output: {secret[:3]}...")
    _record(target, cases, problems)
    assert not problems, f"{len(problems)} of {len(cases)} bad inputs broke a rule:\n" + "\n".join(problems)
    return results


def _record(target, cases, problems):
    """With DBRE_RELIABILITY_LOG set (benchmarks/reliability.py), append what was tried and how it ended."""
    path = os.environ.get("DBRE_RELIABILITY_LOG")
    if not path:
        return
    broken = {p.split(":", 1)[0] for p in problems}
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({"kind": "bad_inputs", "target": target, "tried": len(cases),
                                 "refused_cleanly": len([c for c in cases if c["id"] not in broken]),
                                 "run_problems": len([p for p in problems if p.split(":", 1)[0] not in
                                                      {c["id"] for c in cases}])}) + "\n")

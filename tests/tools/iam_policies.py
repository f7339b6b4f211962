# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Least-privilege IAM policies from the lab's call log: one ``docs/iam/<subject>.json`` per module, role, and
``playbooks`` for the tasks of the playbooks under ``playbooks/`` outside any role.

The integration suite (tests/integration/conftest.py) records two journals per pytest worker:

- the lab's calls (``LAB_CALL_LOG_DIR``, tests/lab/calllog.py): time, service, action and user agent of each call;
- the start of every task of every ansible-playbook run (``DBRE_RDS_IAM_TRACE_DIR``, the callback plugin
  tests/tools/callback_plugins/dbre_rds_iam_trace.py): its process, task file, and role (name, collection, path).

A call belongs to:

- the module named by ``dbre.rds/<module>`` in its user agent (``plugins/module_utils/aws_clients.py`` adds it to
  every client of the collection's modules), whoever ran the module;
- when an Ansible process made it (``Ansible/`` in the user agent: amazon.aws, community.aws and dbre.rds modules,
  and lookups), the role of every task that was running at that time (from its start to the next task of the same
  ansible-playbook process) if the role is one of dbre.rds's, or ``playbooks`` if the task is in a playbook of
  ``playbooks/`` (not ``demo/`` or ``awx/``). Time rather than a user agent tag, because amazon.aws and community.aws
  set the whole user agent of their clients (botocore's ``app/<AWS_SDK_UA_APP_ID>`` never reaches the wire) and
  lookups run in the controller. Each pytest worker has its own lab and runs one test at a time, so the only
  processes whose tasks overlap are those one test runs side by side.

Calls of the tests themselves (boto3 user agent) and of the tests' own playbooks outside dbre.rds's roles are
fixtures: they belong to no one.

Each policy has one statement per IAM service prefix (the signing name, except ``monitoring`` which is
``cloudwatch``), its actions sorted, and ``Resource: "*"`` to be scoped down to the account's ARNs.

    python -m tests.tools.iam_policies --run-dir DIR [--write | --add]

reads a run directory (``<worker>/calls``, ``<worker>/tasks``, as the integration suite leaves it with
``DBRE_RDS_IAM_RUN_DIR`` set) and checks every attributed call against docs/iam, or writes the policies. ``--add``
reads the ``<worker>/attributed.tsv`` files that a partial ``IAM_POLICIES_WRITE=1`` run leaves in a run directory
of your own and adds their actions to the policies in docs/iam, removing nothing: for new test files between two
``make iam-policies`` runs (only the whole suite can find an action no longer needed).
"""

import argparse
import functools
import json
import math
import os
import pathlib
import re
import sys

import botocore.exceptions
import botocore.session

REPO = pathlib.Path(__file__).resolve().parents[2]
IAM_DIR = REPO / "docs" / "iam"
MODULE_TAG = re.compile(r"dbre\.rds/([A-Za-z0-9_]+)")
ANSIBLE_TAG = re.compile(r"(^|\s)Ansible/")
PLAYBOOKS = "playbooks"
# Playbooks under playbooks/ that are not the collection's operations: the demo's fixtures, the AWX setup.
NOT_OPERATIONS = ("demo", "awx")
# Signing name (the SigV4 credential scope's service) to IAM action prefix, where they differ.
IAM_PREFIX = {"monitoring": "cloudwatch", "email": "ses", "execute-api": "apigateway"}
# S3 operations whose IAM action has another name (the Service Authorization Reference's "Actions defined by Amazon
# S3" table); every other operation is its own action.
S3_ACTIONS = {
    "ListObjects": "ListBucket", "ListObjectsV2": "ListBucket", "HeadBucket": "ListBucket",
    "ListObjectVersions": "ListBucketVersions", "HeadObject": "GetObject", "CopyObject": "PutObject",
    "CreateMultipartUpload": "PutObject", "UploadPart": "PutObject", "CompleteMultipartUpload": "PutObject",
    "DeleteObjects": "DeleteObject", "GetBucketLifecycleConfiguration": "GetLifecycleConfiguration",
    "PutBucketLifecycleConfiguration": "PutLifecycleConfiguration",
}


def _under(path, folder):
    if not path:
        return False
    try:
        pathlib.Path(os.path.realpath(path)).relative_to(os.path.realpath(folder))
        return True
    except ValueError:
        return False


def task_subject(record, repo=REPO):
    """The role (of dbre.rds) or ``playbooks`` a traced task runs for, or None for the tests' own tasks."""
    if record.get("role"):
        if record.get("role_collection") == "dbre.rds" or _under(record.get("role_path"), pathlib.Path(repo) / "roles"):
            return record["role"]
        return None
    playbooks = pathlib.Path(repo) / "playbooks"
    path = record.get("path")
    if _under(path, playbooks) and not any(_under(path, playbooks / name) for name in NOT_OPERATIONS):
        return PLAYBOOKS
    return None


def task_windows(records, repo=REPO):
    """``[{"subject", "start", "end", "task"}]``: each task of a dbre.rds role or playbook, from its start to the next
    event of the same process (``end`` infinite for the last task of a run that was killed)."""
    by_process = {}
    for record in records:
        by_process.setdefault(record["pid"], []).append(record)
    windows = []
    for events in by_process.values():
        events.sort(key=lambda record: record["epoch"])
        for index, record in enumerate(events):
            if record.get("event") != "task":
                continue
            subject = task_subject(record, repo)
            if subject:
                end = events[index + 1]["epoch"] if index + 1 < len(events) else math.inf
                windows.append({"subject": subject, "start": record["epoch"], "end": end,
                                "task": f"{record.get('task')} ({record.get('path')})"})
    return windows


def attribution(entry, windows=()):
    """The subjects (module, and role or ``playbooks``) a logged call is made for."""
    user_agent = entry.get("user_agent") or ""
    subjects = set(MODULE_TAG.findall(user_agent))
    if ANSIBLE_TAG.search(user_agent):
        subjects.update(window["subject"] for window in windows if window["start"] <= entry["epoch"] <= window["end"])
    return sorted(subjects)


@functools.lru_cache(maxsize=None)
def _rest_operations(service):
    """``[(method, compiled path pattern, names the request must carry, operation name)]`` of a REST service, from
    botocore's own model: the query names of its request URI (S3's ``/{Bucket}?ownershipControls``) and its required
    query and header members (AbortMultipartUpload's ``uploadId``, CopyObject's ``x-amz-copy-source``)."""
    try:
        model = botocore.session.get_session().get_service_model(service)
    except botocore.exceptions.UnknownServiceError:
        return []
    operations = []
    for name in model.operation_names:
        operation = model.operation_model(name)
        template, _unused, query = operation.http["requestUri"].partition("?")
        pattern = "".join(("[^/]+" if not part.endswith("+}") else ".+") if part.startswith("{") else re.escape(part)
                          for part in re.split(r"(\{[^}]+\})", template.rstrip("/")))
        needs = {f"?{item.split('=', 1)[0]}" for item in query.split("&") if item}
        shape = operation.input_shape
        for member in (shape.required_members if shape else ()):
            serialization = shape.members[member].serialization
            if serialization.get("location") == "header":
                needs.add(serialization["name"].lower())
            elif serialization.get("location") == "querystring":
                needs.add(f"?{serialization['name']}")
        operations.append((operation.http["method"], re.compile(f"^{pattern}/?$"), frozenset(needs), name))
    return operations


def iam_action(entry):
    """``service:Action`` for a logged call. A REST call (logged as ``METHOD /path``, with the names of its query and
    x-amz-* headers in ``params``) is named by the operation of botocore's model whose method and request URI match
    and whose required query names and headers it carries, the most specific one when several do (S3's
    ``GET /bucket`` is ListObjects, ``GET /bucket?list-type=2`` ListObjectsV2); ValueError when none or several
    equally specific ones do."""
    prefix = IAM_PREFIX.get(entry["service"], entry["service"])
    if entry.get("protocol") == "rest" or " /" in entry["action"]:
        method, _unused, path = entry["action"].partition(" ")
        params = entry.get("params") or {}
        carried = {f"?{key}" for key in params.get("query_keys") or ()} | set(params.get("header_keys") or ())
        matches = [(len(needs), name) for verb, pattern, needs, name in _rest_operations(entry["service"])
                   if verb == method and pattern.match(path.split("?", 1)[0]) and needs <= carried]
        best = max((size for size, _name in matches), default=None)
        names = [name for size, name in matches if size == best]
        if len(names) != 1:
            raise ValueError(f"cannot name the IAM action of a REST call: {entry['service']} {entry['action']}"
                             + (f" (it could be any of {', '.join(sorted(names))})" if names else ""))
        return f"{prefix}:{S3_ACTIONS.get(names[0], names[0]) if prefix == 's3' else names[0]}"
    return f"{prefix}:{entry['action']}"


def attributed_calls(calls, windows=()):
    """``[(subject, action, entry)]`` for every call some module, role or ``playbooks`` made."""
    found = []
    for entry in calls:
        for subject in attribution(entry, windows):
            found.append((subject, iam_action(entry), entry))
    return found


def actions_by_subject(calls, windows=()):
    """``{subject: set of IAM actions}`` for the calls of the log."""
    subjects = {}
    for subject, action, _entry in attributed_calls(calls, windows):
        subjects.setdefault(subject, set()).add(action)
    return subjects


def policy_document(actions):
    """An IAM policy: one Allow statement per service, actions sorted, Resource ``*``."""
    services = {}
    for action in actions:
        services.setdefault(action.split(":", 1)[0], []).append(action)
    statements = [
        {"Sid": re.sub(r"[^A-Za-z0-9]", "", service.title()), "Effect": "Allow", "Action": sorted(names),
         "Resource": "*"}
        for service, names in sorted(services.items())
    ]
    return {"Version": "2012-10-17", "Statement": statements}


def policy_actions(document):
    """The set of actions a policy document allows."""
    found = set()
    for statement in document["Statement"]:
        listed = statement["Action"]
        found.update([listed] if isinstance(listed, str) else listed)
    return found


def allowed_actions(subject, iam_dir=IAM_DIR):
    """The actions ``<iam_dir>/<subject>.json`` allows (none when the file does not exist)."""
    path = pathlib.Path(iam_dir) / f"{subject}.json"
    return policy_actions(json.loads(path.read_text())) if path.exists() else set()


def violations(found, iam_dir=IAM_DIR):
    """The ``(subject, action, entry)`` of ``found`` that the subject's policy file does not allow."""
    allowed = {}
    denied = []
    for subject, action, entry in found:
        if subject not in allowed:
            allowed[subject] = allowed_actions(subject, iam_dir)
        if action not in allowed[subject]:
            denied.append((subject, action, entry))
    return denied


def describe_violations(denied, iam_dir=IAM_DIR):
    """One line per (subject, action) not allowed, with a call that needed it."""
    lines, seen = [], set()
    for subject, action, entry in denied:
        if (subject, action) in seen:
            continue
        seen.add((subject, action))
        path = pathlib.Path(iam_dir) / f"{subject}.json"
        where = path.relative_to(REPO) if _under(path, REPO) else path
        lines.append(f"{where} does not allow {action} (user agent: {(entry.get('user_agent') or '')[-60:]})")
    return lines


class Journal:
    """The JSON lines appended to the ``*.jsonl`` files of a directory since the last :meth:`drain`."""

    def __init__(self, directory):
        self.directory = pathlib.Path(directory)
        self._offsets = {}

    def drain(self):
        records = []
        for path in sorted(self.directory.glob("*.jsonl")):
            with open(path, "rb") as journal:
                journal.seek(self._offsets.get(path, 0))
                data = journal.read()
            complete = data[:data.rfind(b"\n") + 1]  # a line still being written waits for the next drain
            self._offsets[path] = self._offsets.get(path, 0) + len(complete)
            records.extend(json.loads(line) for line in complete.splitlines() if line.strip())
        return records


def read_run(run_dir):
    """(calls, task records) of every worker of a run directory, all at once."""
    calls, tasks = [], []
    for worker in sorted(path for path in pathlib.Path(run_dir).iterdir() if path.is_dir()):
        calls.extend(Journal(worker / "calls").drain())
        tasks.extend(Journal(worker / "tasks").drain())
    return calls, tasks


def write_policies(subjects, out_dir, remove_stale=False):
    """Write ``<out_dir>/<subject>.json`` for each subject; with ``remove_stale``, delete the other policy files."""
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, actions in sorted(subjects.items()):
        path = out / f"{name}.json"
        path.write_text(json.dumps(policy_document(actions), indent=2) + "\n")
        written.append(path)
    if remove_stale:
        for path in out.glob("*.json"):
            if path.stem not in subjects:
                path.unlink()
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--run-dir", required=True,
                        help="a run directory: <worker>/calls/*.jsonl, <worker>/tasks/*.jsonl")
    parser.add_argument("--iam-dir", default=str(IAM_DIR), help="the policy files (default docs/iam)")
    parser.add_argument("--write", action="store_true", help="write the policy files instead of checking the calls")
    parser.add_argument("--add", action="store_true",
                        help="add the actions of <run-dir>/*/attributed.tsv to the policy files, removing nothing")
    args = parser.parse_args(argv)
    if args.add:
        subjects = {}
        for journal in pathlib.Path(args.run_dir).glob("*/attributed.tsv"):
            for row in journal.read_text().splitlines():
                subject, action = row.split("\t")
                subjects.setdefault(subject, allowed_actions(subject, args.iam_dir)).add(action)
        for path in write_policies(subjects, args.iam_dir):
            print(f"wrote {path} ({len(subjects[path.stem])} actions)")
        return 0
    calls, tasks = read_run(args.run_dir)
    found = attributed_calls(calls, task_windows(tasks))
    if args.write:
        subjects = {}
        for subject, action, _entry in found:
            subjects.setdefault(subject, set()).add(action)
        for path in write_policies(subjects, args.iam_dir):
            print(f"wrote {path} ({len(subjects[path.stem])} actions)")
        return 0
    lines = describe_violations(violations(found, args.iam_dir), args.iam_dir)
    for line in lines:
        print(line, file=sys.stderr)
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())

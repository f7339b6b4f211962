# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Least-privilege IAM policies from the lab's call log: one ``docs/iam/<subject>.json`` per module, role or playbook.

Every AWS call the lab serves is logged with its time and the caller's user agent. A call belongs to:

- the module named by ``dbre.rds/<module>`` in its user agent (``plugins/module_utils/aws_clients.py`` adds it to
  every client of the collection's modules), and
- the role or playbook whose run it fell in: ``windows`` lists ``{"subject", "start", "end"}`` (epoch seconds) of
  playbook runs made one after the other, for instance ``rds_users`` for ``playbooks/configure_users.yml``.
  Time windows rather than a user agent tag, because amazon.aws and community.aws set the whole user agent
  themselves (botocore's ``app/<AWS_SDK_UA_APP_ID>`` never reaches the wire) and lookups run in the controller.

Each policy has one statement per IAM service prefix (the signing name, except ``monitoring`` which is
``cloudwatch``), its actions sorted, and ``Resource: "*"`` to be scoped down to the account's ARNs.

    python tests/tools/iam_policies.py --calls calls.json --windows windows.json --out docs/iam [--ignore demo]
"""

import argparse
import json
import pathlib
import re
import sys
import urllib.request

MODULE_TAG = re.compile(r"dbre\.rds/([A-Za-z0-9_]+)")
# Signing name (the SigV4 credential scope's service) to IAM action prefix, where they differ.
IAM_PREFIX = {"monitoring": "cloudwatch", "email": "ses", "execute-api": "apigateway"}


def attribution(entry, windows=()):
    """The subjects (module, and role or playbook) a logged call is made for."""
    subjects = set(MODULE_TAG.findall(entry.get("user_agent") or ""))
    subjects.update(window["subject"] for window in windows if window["start"] <= entry["epoch"] <= window["end"])
    return sorted(subjects)


def iam_action(entry):
    """``service:Action`` for a logged call; ValueError for a REST call whose action name the log does not hold."""
    if entry.get("protocol") == "rest" or " /" in entry["action"]:
        raise ValueError(f"cannot name the IAM action of a REST call: {entry['service']} {entry['action']}")
    prefix = IAM_PREFIX.get(entry["service"], entry["service"])
    return f"{prefix}:{entry['action']}"


def actions_by_subject(calls, windows=(), ignore=()):
    """({subject: set of IAM actions}, [calls attributed to nobody]) for the calls of the log."""
    subjects, unattributed = {}, []
    for entry in calls:
        found = attribution(entry, windows)
        names = [name for name in found if name not in ignore]
        if not names:
            if not set(found) & set(ignore):
                unattributed.append(entry)
            continue
        action = iam_action(entry)
        for name in names:
            subjects.setdefault(name, set()).add(action)
    return subjects, unattributed


def policy_document(actions):
    """An IAM policy: one Allow statement per service, actions sorted, Resource ``*``."""
    services = {}
    for action in actions:
        services.setdefault(action.split(":", 1)[0], []).append(action)
    statements = [
        {"Sid": re.sub(r"[^A-Za-z0-9]", "", service.title()), "Effect": "Allow", "Action": sorted(names), "Resource": "*"}
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


def read_calls(calls_file=None, lab_url=None):
    """The call log entries, from a saved ``GET /_lab/calls`` answer (``{"calls": [...]}``) or a running lab."""
    if calls_file:
        data = json.loads(pathlib.Path(calls_file).read_text())
    else:
        with urllib.request.urlopen(f"{lab_url.rstrip('/')}/_lab/calls", timeout=30) as response:
            data = json.loads(response.read())
    return data["calls"] if isinstance(data, dict) else data


def write_policies(subjects, out_dir):
    out = pathlib.Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, actions in sorted(subjects.items()):
        path = out / f"{name}.json"
        path.write_text(json.dumps(policy_document(actions), indent=2) + "\n")
        written.append(path)
    return written


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--calls", help="call log JSON (GET {LAB_URL}/_lab/calls, saved)")
    source.add_argument("--lab-url", help="read the call log from a running lab")
    parser.add_argument("--windows", help="JSON list of {subject, start, end}: the playbook runs, one after the other")
    parser.add_argument("--out", default="docs/iam", help="directory of the policy files (default docs/iam)")
    parser.add_argument("--ignore", action="append", default=[],
                        help="subject whose calls are fixtures, not the collection's: no policy")
    args = parser.parse_args(argv)
    windows = json.loads(pathlib.Path(args.windows).read_text()) if args.windows else []
    subjects, unattributed = actions_by_subject(read_calls(args.calls, args.lab_url), windows, ignore=set(args.ignore))
    for path in write_policies(subjects, args.out):
        print(f"wrote {path} ({len(subjects[path.stem])} actions)")
    for entry in unattributed:
        print(f"unattributed call: {entry['service']} {entry['action']} ({entry.get('user_agent', '')[:80]})",
              file=sys.stderr)
    return 1 if unattributed else 0


if __name__ == "__main__":
    sys.exit(main())

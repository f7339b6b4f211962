#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rds_drill_history_info
short_description: Which databases have not passed a drill of a kind within N days, from the stored reports
version_added: "0.2.0"
description:
  - Reads the reports the collection stored, in a local directory (O(report_dir)) and in S3 (O(report_s3)), and
    answers, for each database and each kind of run in O(kinds), when a run of that kind last passed on it, how many
    days ago that was, and whether that is within O(max_age_days) of O(as_of). This is the fleet's compliance view
    that AWS Backup restore testing gives for its own jobs only.
  - Two kinds of stored report are read. The fleet reports the fleet playbooks write after every run
    (C(fleet/fleet-<playbook>-<time>.json), format C(dbre.rds.fleet_report/1); docs/guides/fleet.md), one line per
    database with its kind, verdict and finish time, and the last passed run of each kind their run could see. And
    the drills' own reports (M(dbre.rds.rds_restore_drill), M(dbre.rds.rds_failover_test), M(dbre.rds.rds_dr_drill),
    M(dbre.rds.rds_upgrade_drill) with C(report_dir)), which name the database but not its region; such a report
    counts for the database of that name in the one region the fleet reports know it in.
  - A run passed when its report says so; failed runs and runs that never ran (C(not_run), a batch stopped after a
    breach) never count as passed, whatever their age. Runs that finished after O(as_of) are not counted.
  - A checklist-only run of M(dbre.rds.rds_upgrade_drill) (C(checks_only=true)) rehearses no upgrade, so its report
    (kind C(upgrade_checklist), or an C(upgrade_drill) report with C(measurements.rehearsed=false) or no C(upgraded)
    measurement) is never an C(upgrade) run; it is listed in the C(ignored) list of RV(reports).
  - Other JSON files (a capacity report, a fleet report of a newer format) are skipped and listed in the C(ignored)
    list of RV(reports). A damaged report of ours (a finish time that is no time, a fleet report with no list of
    databases) fails the module with every such problem named, since the answer would be wrong without it.
  - Read-only; runs the same in check mode.
author:
  - dbre.rds maintainers (@dbre-rds)
options:
  report_dir:
    description:
      - Directory on the managed node the reports were written to (the fleet playbooks' C(dbre_rds_report_dir), the
        drills' O(report_dir)). Its C(*.json) files and those of its C(fleet/) folder are read.
      - At least one of O(report_dir) and O(report_s3) is required; with both, the reports of both are read.
    type: path
  report_s3:
    description:
      - Where the fleet playbooks put their reports in S3 (their C(dbre_rds_report_s3)), as C(s3://<bucket>/<prefix>)
        or C(<bucket>/<prefix>), or as a dict with C(bucket), C(prefix) and C(region); the fleet reports are read
        from C(<prefix>/fleet/).
      - The bucket is read in the dict's C(region), else in the module's O(region).
    type: raw
  kinds:
    description:
      - The kinds of run to answer for. C(restore), C(failover), C(dr) and C(upgrade) are drills; C(tune), C(users)
        and C(monitoring) are the configuration playbooks, which pass when their run succeeded.
    type: list
    elements: str
    choices: [restore, failover, dr, upgrade, tune, users, monitoring]
    default: [restore]
  max_age_days:
    description:
      - A database is out of compliance for a kind when no run of that kind passed on it within this many days
        before O(as_of). More than 0, at most 3660.
    type: float
    default: 30
  identifiers:
    description:
      - The databases to answer for (DB instance or DB cluster identifiers, as the inventory's C(identifier)
        hostvar). A database named here with no report at all is out of compliance for every kind in O(kinds).
      - Empty (the default) answers for every database the reports name.
    type: list
    elements: str
    default: []
  as_of:
    description:
      - The time the view is computed for, ISO 8601 (C(2026-11-30T07:00:00Z)); default now. Ages are counted back
        from it, and runs that finished after it are left out, so an audit can ask what the view was on a date.
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - "IAM actions with O(report_s3): C(s3:ListBucket) on the bucket (for the prefix) and C(s3:GetObject) on
    C(<prefix>/fleet/*). None without it."
  - Times in the reports are UTC. Ages are in days with three decimals.
seealso:
  - module: dbre.rds.rds_restore_drill
  - module: dbre.rds.rds_failover_test
  - module: amazon.aws.s3_object
  - module: amazon.aws.backup_restore_job_info
"""

EXAMPLES = r"""
- name: Which databases of the monthly group have not passed a restore drill in 30 days
  dbre.rds.rds_drill_history_info:
    report_dir: /var/lib/dbre/reports
    # amazon.aws.aws_rds names each host by its DB instance or DB cluster identifier
    identifiers: "{{ groups['dbre_drill_monthly'] }}"
    kinds: [restore]
    max_age_days: 30
  register: drill_history
  delegate_to: localhost
  run_once: true

- name: Fail the compliance job when any database is overdue
  ansible.builtin.assert:
    that: drill_history.compliant
    fail_msg: "No passed restore drill within 30 days: {{ drill_history.out_of_compliance.restore | join(', ') }}"

- name: Restore and failover compliance from the reports in S3, as of the end of the last quarter
  dbre.rds.rds_drill_history_info:
    report_s3: s3://dbre-reports/prod
    region: us-east-1
    kinds: [restore, failover]
    max_age_days: 90
    as_of: "2026-09-30T23:59:59Z"
  check_mode: true
"""

RETURN = r"""
as_of:
  description: The time the view was computed for (ISO 8601, UTC).
  returned: always
  type: str
  sample: "2026-11-30T07:00:00.000Z"
max_age_days:
  description: O(max_age_days).
  returned: always
  type: float
  sample: 30
kinds:
  description: O(kinds).
  returned: always
  type: list
  elements: str
  sample: [restore]
compliant:
  description: Whether every database answered for is compliant for every kind.
  returned: always
  type: bool
  sample: false
out_of_compliance:
  description: For each kind in O(kinds), the identifiers of the databases with no passed run of that kind within
    O(max_age_days), sorted.
  returned: always
  type: dict
  sample: {"restore": ["billing-db", "orders-db"]}
databases:
  description: One item per database, sorted by identifier and region.
  returned: always
  type: list
  elements: dict
  contains:
    identifier:
      description: The DB instance or DB cluster identifier.
      type: str
      sample: orders-db
    region:
      description: Its region, from the fleet reports; null when only drill reports (or O(identifiers)) name it.
      type: str
      sample: us-east-1
    host:
      description: Its inventory host name in the fleet reports, or null.
      type: str
      sample: orders-db
    compliant:
      description: Whether it is compliant for every kind in O(kinds).
      type: bool
      sample: false
    out_of_compliance:
      description: The kinds it is out of compliance for.
      type: list
      elements: str
      sample: [restore]
    kinds:
      description:
        - By kind, C(last_passed_at) (ISO 8601, or null), C(age_days) (days from that to RV(as_of), or null),
          C(last_passed_source) (the report file or S3 URL it came from), C(last_run_at) and C(last_run_verdict)
          (the newest run of the kind, passed or not), C(runs) (how many runs are on record), C(compliant) and
          C(reason) (why not, or null).
      type: dict
      sample: {"restore": {"last_passed_at": "2026-10-02T03:10:00.000Z", "age_days": 59.16,
                           "last_passed_source": "/var/lib/dbre/fleet/fleet-restore_drill-20261002T030000Z.json",
                           "last_run_at": "2026-11-29T03:12:00.000Z", "last_run_verdict": "failed", "runs": 2,
                           "compliant": false,
                           "reason": "last passed restore run 59.16 days ago, more than 30; the last run since failed"}}
reports:
  description: What was read. C(read) counts the reports used, C(sources) names them (paths and C(s3://) URLs), and
    C(ignored) lists the JSON files skipped, each with its C(source) and C(reason).
  returned: always
  type: dict
  sample: {"read": 3, "sources": ["/var/lib/dbre/reports/fleet/fleet-restore_drill-20261129T030000Z.json"],
           "ignored": [{"source": "/var/lib/dbre/reports/capacity-orders-db-20261101T000000Z.json",
                        "reason": "neither a fleet report nor a drill report"}]}
"""

import datetime
import glob
import json
import os

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.dbre.rds.plugins.module_utils import drill_history
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import aws_client
from ansible_collections.dbre.rds.plugins.module_utils.fleet_report import FLEET_DIR
from ansible_collections.dbre.rds.plugins.module_utils.fleet_report import s3_location


def local_documents(module, directory):
    """[(path, text)] of the JSON files in ``directory`` and its fleet/ folder, oldest name first."""
    if not os.path.isdir(directory):
        module.fail_json(msg=f"Reading the stored reports in {directory} failed: no such directory; give the "
                             "report_dir the drills and fleet playbooks wrote to (dbre_rds_report_dir)")
    paths = sorted(set(glob.glob(os.path.join(directory, "*.json")))
                   | set(glob.glob(os.path.join(directory, FLEET_DIR, "*.json"))))
    documents = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as handle:
                documents.append((path, handle.read()))
        except OSError as exc:
            module.fail_json(msg=f"Reading the stored report {path} failed: {exc}; make it readable to the user "
                                 "the module runs as")
    return documents


def s3_documents(module, location):
    """[(s3 URL, text)] of the .json objects under the location's prefix."""
    bucket, prefix = location["bucket"], location["prefix"]
    client = aws_client(module, "s3", region=location.get("region"))
    try:
        listing = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix).build_full_result()
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg=f"Listing the stored reports in s3://{bucket}/{prefix} failed: check report_s3, "
                                    "the region and that the role may s3:ListBucket")
    keys = sorted(item["Key"] for item in listing.get("Contents", []) if item["Key"].endswith(".json")
                  and "/" not in item["Key"][len(prefix):])
    documents = []
    for key in keys:
        try:
            body = client.get_object(Bucket=bucket, Key=key, aws_retry=True)["Body"].read()
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
            module.fail_json_aws(e, msg=f"Reading the stored report s3://{bucket}/{key} failed: check that the role "
                                        "may s3:GetObject on the prefix")
        documents.append((f"s3://{bucket}/{key}", body.decode("utf-8", errors="replace")))
    return documents


def read_records(documents):
    """(records, sources, ignored, problems) of every document."""
    records, sources, ignored, problems = [], [], [], []
    for source, text in documents:
        try:
            document = json.loads(text)
        except ValueError as exc:
            problems.append(f"{source} is not valid JSON ({exc})")
            continue
        found, reason, damaged = drill_history.records_of(document, source)
        if reason:
            ignored.append({"source": source, "reason": reason})
            continue
        problems += damaged
        records += found
        sources.append(source)
    return records, sources, ignored, problems


def main():
    argument_spec = dict(
        report_dir=dict(type="path"),
        report_s3=dict(type="raw"),
        kinds=dict(type="list", elements="str", default=["restore"],
                   choices=["restore", "failover", "dr", "upgrade", "tune", "users", "monitoring"]),
        max_age_days=dict(type="float", default=30),
        identifiers=dict(type="list", elements="str", default=[]),
        as_of=dict(type="str"),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True,
                              required_one_of=[("report_dir", "report_s3")])
    params = module.params
    problems = drill_history.history_argument_problems(params)
    location = None
    if params["report_s3"] is not None:
        try:
            location = s3_location(params["report_s3"])
        except ValueError as exc:
            problems.append(str(exc).replace("dbre_rds_report_s3", "report_s3"))
    if problems:
        module.fail_json(msg="Invalid options: " + "; ".join(problems))

    documents = local_documents(module, params["report_dir"]) if params["report_dir"] else []
    if location:
        documents += s3_documents(module, location)
    records, sources, ignored, problems = read_records(documents)
    if problems:
        module.fail_json(msg="Reading the stored reports failed: " + "; ".join(problems)
                         + ". Fix or remove these files: the view would be wrong without them")
    as_of = params["as_of"] or datetime.datetime.now(datetime.timezone.utc)
    view = drill_history.compliance(records, kinds=params["kinds"], max_age_days=params["max_age_days"],
                                    as_of=as_of, identifiers=params["identifiers"])
    module.exit_json(changed=False, reports={"read": len(sources), "sources": sources, "ignored": ignored}, **view)


if __name__ == "__main__":
    main()

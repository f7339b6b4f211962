#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# Makes no AWS call: it reads and writes report files on the runner, and the playbooks put the renderings in S3 with
# amazon.aws.s3_object. It is an AnsibleAWSModule all the same, so module_defaults of group/dbre.rds.rds apply to it
# as to every module of the collection.

from __future__ import annotations

DOCUMENTATION = r"""
module: rds_fleet_report
short_description: Write the fleet report of a playbook run over many RDS databases
version_added: "0.3.0"
description:
  - Turns the results a playbook registered on each database of a fleet (each database a host of an
    C(amazon.aws.aws_rds) inventory) into one report with a line per database, the verdict, downtime, RTO and RPO,
    the parameters changed and the last passed run of each kind (restore, failover, ...).
  - Writes it to O(report_dir)C(/fleet/) as JSON (the stored format, read back by later runs and by
    M(dbre.rds.rds_drill_history_info)), Markdown, HTML and JUnit XML, with the stem
    C(fleet-<playbook>-<UTC start time>[-<run_id>]). The last passed runs come from this run and the JSON reports
    already there.
  - A database whose task never ran (the batches after a breach) is C(not_run).
  - Writing a report changes nothing the collection manages, so the module never reports a change; in check mode it
    builds the report and writes nothing.
  - The fleet playbooks call it once per batch from C(playbooks/tasks/fleet_report.yml).
author:
  - dbre.rds maintainers (@dbre-rds)
options:
  databases:
    description:
      - The databases of the run, in its order.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: The inventory host name.
        type: str
        required: true
      identifier:
        description: The DB instance or DB cluster identifier; default O(databases[].name).
        type: str
      region:
        description: The database's AWS region.
        type: str
      cluster:
        description: The Aurora cluster the database is or belongs to.
        type: str
      result:
        description:
          - The result the playbook registered for the database (a drill's result holds its drill report); leave
            out or null when the task never ran there.
        type: dict
  kind:
    description:
      - What the run did to each database.
    type: str
    required: true
    choices: [restore, failover, dr, upgrade, tune, users, monitoring]
  playbook:
    description:
      - The playbook's name (C(restore_drill), C(tune_parameters), ...), part of the file names.
    type: str
    required: true
  started_at:
    description:
      - When the run started, ISO 8601 (UTC unless an offset is given); the same for every batch of one run, so each
        batch rewrites the run's report.
    type: str
    required: true
  targets:
    description:
      - The host pattern or limit the run was given, shown in the report.
    type: str
  report_dir:
    description:
      - Directory on the runner whose C(fleet/) subdirectory (created if missing) receives the four files.
      - Without it nothing is written and no earlier report is read; the report is still returned.
    type: path
  run_id:
    description:
      - Tells apart runs that start in the same second, so they do not overwrite each other's files (the slices of
        an AWX sliced job start together); appended to the stem. The same for every batch of one run.
      - The playbooks give the AWX job id (C(awx-<awx_job_id>)) when set, else a suffix drawn once per run.
    type: str
  report_s3:
    description:
      - Where the playbook copies the renderings in S3, checked and returned as RV(s3); this module writes nothing
        there. One of C(s3://<bucket>[/<prefix>]), C(<bucket>[/<prefix>]) or a dict with C(bucket), C(prefix) and
        C(region). The keys are C(<prefix>/fleet/<stem>.<format>).
    type: raw
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
seealso:
  - module: dbre.rds.rds_restore_drill
  - module: dbre.rds.rds_failover_test
  - module: amazon.aws.s3_object
notes:
  - Makes no AWS call.
"""

EXAMPLES = r"""
- name: Write the report of a restore drill over two databases
  dbre.rds.rds_fleet_report:
    kind: restore
    playbook: restore_drill
    started_at: "2026-11-30T07:00:00Z"
    targets: dbre_drill_monthly
    report_dir: /var/lib/dbre/reports
    databases:
      - name: orders-db
        region: us-east-1
        result: "{{ orders_restore_drill }}"
      - name: billing-db
        region: us-west-2
        result: "{{ billing_restore_drill }}"
  register: fleet_report

- name: Show the verdicts
  ansible.builtin.debug:
    msg: "{{ fleet_report.report.databases | items2dict(key_name='identifier', value_name='verdict') }}"

- name: Build the report only, to read it
  dbre.rds.rds_fleet_report:
    kind: tune
    playbook: tune_parameters
    started_at: "2026-11-30T07:00:00Z"
    databases:
      - name: orders-db
        result: {changed: true, changes: [{name: work_mem}]}
  check_mode: true
"""

RETURN = r"""
report:
  description:
    - The fleet report; its JSON rendering is the stored format.
  returned: always
  type: dict
  contains:
    format:
      description: C(dbre.rds.fleet_report/1).
      type: str
    summary:
      description: Counts of databases, C(passed), C(failed), C(changed), C(unchanged) and C(not_run).
      type: dict
    databases:
      description:
        - A line per database, keys C(host), C(identifier), C(region), C(cluster), C(kind), C(verdict) (C(passed),
          C(failed), C(changed), C(unchanged), C(not_run)), C(passed), C(started_at), C(finished_at),
          C(rto_seconds), C(rpo_seconds), C(downtime_seconds), C(parameters_changed), C(failure), C(report_files)
          and C(last_passed) (kind to the finish time of the newest passed run of that kind).
      type: list
      elements: dict
  sample: {"format": "dbre.rds.fleet_report/1", "playbook": "restore_drill", "kind": "restore",
           "summary": {"databases": 1, "passed": 1, "failed": 0, "changed": 0, "unchanged": 0, "not_run": 0}}
report_files:
  description: Paths of the files written, by format (C(json), C(md), C(html), C(xml)); empty without O(report_dir)
    or in check mode.
  returned: always
  type: dict
  sample: {"json": "/var/lib/dbre/reports/fleet/fleet-restore_drill-20261130T070000Z.json"}
s3:
  description: The S3 location of O(report_s3), or null without it.
  returned: always
  type: dict
  contains:
    bucket:
      description: The bucket.
      type: str
    prefix:
      description: The key prefix, ending in C(fleet/).
      type: str
    region:
      description: The bucket's region when O(report_s3) gave one, else null.
      type: str
  sample: {"bucket": "dbre-reports", "prefix": "drills/fleet/", "region": null}
renderings:
  description: The four renderings by format, and C(stem), the file name stem, for a copy elsewhere (S3).
  returned: always
  type: dict
  contains:
    stem:
      description: C(fleet-<playbook>-<UTC start time>[-<run_id>]).
      type: str
    json:
      description: The stored JSON.
      type: str
    md:
      description: Markdown.
      type: str
    html:
      description: HTML.
      type: str
    xml:
      description: JUnit XML.
      type: str
"""

import datetime
import glob
import json
import os

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.dbre.rds.plugins.module_utils.clock import parse_utc
from ansible_collections.dbre.rds.plugins.module_utils.clock import utc_iso
from ansible_collections.dbre.rds.plugins.module_utils.fleet_report import FLEET_DIR
from ansible_collections.dbre.rds.plugins.module_utils.fleet_report import KINDS
from ansible_collections.dbre.rds.plugins.module_utils.fleet_report import RENDERINGS
from ansible_collections.dbre.rds.plugins.module_utils.fleet_report import build_fleet_report
from ansible_collections.dbre.rds.plugins.module_utils.fleet_report import render
from ansible_collections.dbre.rds.plugins.module_utils.fleet_report import s3_location


def argument_spec():
    return dict(
        databases=dict(type="list", elements="dict", required=True, options=dict(
            name=dict(type="str", required=True),
            identifier=dict(type="str"),
            region=dict(type="str"),
            cluster=dict(type="str"),
            result=dict(type="dict"),
        )),
        kind=dict(type="str", required=True, choices=list(KINDS)),
        playbook=dict(type="str", required=True),
        started_at=dict(type="str", required=True),
        targets=dict(type="str"),
        run_id=dict(type="str"),
        report_dir=dict(type="path"),
        report_s3=dict(type="raw"),
    )


def read_previous(module, fleet_dir):
    """The stored JSON reports of earlier runs (unreadable files are skipped with a warning)."""
    reports = []
    for path in sorted(glob.glob(os.path.join(fleet_dir, "fleet-*.json"))):
        try:
            with open(path, encoding="utf-8") as handle:
                reports.append(json.load(handle))
        except (OSError, ValueError) as error:
            module.warn(f"Skipping the unreadable fleet report {path}: {error}")
    return reports


def write(module, fleet_dir, renderings):
    written = {}
    try:
        os.makedirs(fleet_dir, exist_ok=True)
        for fmt in RENDERINGS:
            path = os.path.join(fleet_dir, f"{renderings['stem']}.{fmt}")
            with open(path + ".tmp", "w", encoding="utf-8") as handle:
                handle.write(renderings[fmt])
            os.replace(path + ".tmp", path)
            written[fmt] = path
    except OSError as error:
        module.fail_json(msg=f"Writing the fleet report to {fleet_dir} failed: {error}: check that the directory is "
                             "writable or set another report_dir")
    return written


def main():
    module = AnsibleAWSModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    try:
        started_at = utc_iso(parse_utc(params["started_at"]))
    except ValueError:
        module.fail_json(msg=f"started_at {params['started_at']!r} is no ISO 8601 time: give e.g. "
                             "2026-11-30T07:00:00Z")
    s3 = None
    if params["report_s3"] not in (None, ""):
        try:
            s3 = s3_location(params["report_s3"])
        except ValueError as error:
            module.fail_json(msg=str(error))
    names = [database["name"] for database in params["databases"]]
    if len(set(names)) != len(names):
        module.fail_json(msg="databases names a host twice: give each host once")
    fleet_dir = os.path.join(params["report_dir"], FLEET_DIR) if params["report_dir"] else None
    previous = read_previous(module, fleet_dir) if fleet_dir else []
    databases = [{key: value for key, value in database.items() if key != "result"}
                 for database in params["databases"]]
    results = {database["name"]: database["result"] for database in params["databases"]
               if database.get("result") is not None}
    report = build_fleet_report(playbook=params["playbook"], kind=params["kind"], started_at=started_at,
                                finished_at=utc_iso(datetime.datetime.now(datetime.timezone.utc)),
                                targets=params["targets"], hosts=databases, results=results,
                                previous_reports=previous)
    renderings = render(report, params["run_id"])
    written = write(module, fleet_dir, renderings) if fleet_dir and not module.check_mode else {}
    module.exit_json(changed=False, report=report, report_files=written, renderings=renderings, s3=s3)


if __name__ == "__main__":
    main()

# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet report: one line per database of a playbook run, as JSON (stored), Markdown, HTML and JUnit XML.

The stored JSON is read back by later runs (the last passed drill of each kind) and by
dbre.rds.rds_drill_history_info; /work/notes/fleet-report-format.md and docs/guides/fleet.md describe it:

    {format, playbook, started_at, finished_at, targets, summary: {databases, passed, failed, not_run},
     databases: [{host, identifier, region, kind, verdict, passed, started_at, finished_at, rto_seconds, rpo_seconds,
                  downtime_seconds, parameters_changed, failure, report_files, last_passed: {kind: finished_at}}]}

A database's line comes from the task result its playbook registered (a drill's result carries the drill report of
plugins/module_utils/drill_report.py); a host whose task never ran (the batch was stopped after a breach) is
``not_run``.
"""

from __future__ import annotations

import html
import json
import re
from xml.etree import ElementTree

from ansible_collections.dbre.rds.plugins.module_utils.clock import parse_utc

FORMAT = "dbre.rds.fleet_report/1"
FLEET_DIR = "fleet"
RENDERINGS = ("json", "md", "html", "xml")
# Drill report kinds (drill_report.build_report's ``kind``) and the fleet report's names for them.
DRILL_KINDS = {"restore_drill": "restore", "failover_test": "failover", "dr_drill": "dr", "upgrade_drill": "upgrade"}
KINDS = ("restore", "failover", "dr", "upgrade", "tune", "users", "monitoring")
VERDICTS = ("passed", "failed", "changed", "unchanged", "not_run")


def _plain(text):
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(text))


def report_stem(playbook, started_at, run_id=None):
    """``fleet-<playbook>-<YYYYmmddTHHMMSSZ>[-<run id>]``: the four files' name, sorting by time.

    ``run_id`` tells apart runs that start in the same second (the slices of an AWX sliced job start together and
    would otherwise overwrite each other's report): the AWX job id, else a suffix the playbook draws once per run.
    """
    stamp = parse_utc(started_at).strftime("%Y%m%dT%H%M%SZ")
    suffix = f"-{_plain(run_id)[:64]}" if run_id not in (None, "") else ""
    return f"fleet-{_plain(playbook)}-{stamp}{suffix}"


def _number(value):
    if value is None or isinstance(value, bool):
        return None
    try:
        return round(float(value), 3)
    except (TypeError, ValueError):
        return None


def _failure(result):
    failure = result.get("failure")
    if isinstance(failure, dict):
        failure = failure.get("message")
    return failure or (result.get("msg") if result.get("failed") else None)


def database_line(host, kind, result, fallback_time):
    """The line of one database: ``host`` is {name, identifier, region, cluster}, ``result`` the registered result
    of its task (None when the task never ran), ``fallback_time`` when the result names no finish time."""
    line = {
        "host": host.get("name"),
        "identifier": host.get("identifier") or host.get("name"),
        "region": host.get("region"),
        "cluster": host.get("cluster"),
        "kind": kind,
        "verdict": "not_run",
        "passed": None,
        "started_at": None,
        "finished_at": None,
        "rto_seconds": None,
        "rpo_seconds": None,
        "downtime_seconds": None,
        "parameters_changed": [],
        "failure": None,
        "report_files": {},
    }
    if not isinstance(result, dict) or result.get("skipped") or not result:
        return line
    report = result.get("report") if isinstance(result.get("report"), dict) else {}
    measurements = result.get("measurements") if isinstance(result.get("measurements"), dict) else {}
    line["started_at"] = report.get("started_at")
    line["finished_at"] = report.get("finished_at") or fallback_time
    line["report_files"] = dict(result.get("report_files") or {})
    line["rto_seconds"] = _number(result.get("rto_seconds", measurements.get("rto_seconds")))
    line["rpo_seconds"] = _number(result.get("rpo_seconds", measurements.get("rpo_seconds")))
    line["downtime_seconds"] = _number(measurements.get("observed_downtime_seconds"))
    line["parameters_changed"] = sorted({str(change.get("name")) for change in result.get("changes") or []
                                         if isinstance(change, dict) and change.get("name")})
    line["failure"] = _failure(result)
    if "passed" in result:
        line["passed"] = bool(result["passed"]) and line["failure"] is None
        line["verdict"] = "passed" if line["passed"] else "failed"
    elif result.get("failed"):
        line["passed"], line["verdict"] = False, "failed"
    elif kind in DRILL_KINDS.values():
        # A drill passes only when its result says so (a check-mode plan says "planned"): the stored history must
        # never gain a pass no drill gave.
        line["passed"], line["verdict"] = False, "not_run"
    else:
        line["passed"] = True
        line["verdict"] = "changed" if result.get("changed") else "unchanged"
    return line


def last_passed(previous_reports, lines):
    """{(identifier, region): {kind: finished_at}}: the newest passed run of each kind, over the stored reports and
    this run's lines."""
    best = {}

    def note(identifier, region, kind, finished_at):
        if not (identifier and kind and finished_at):
            return
        slot = best.setdefault((identifier, region), {})
        try:
            newer = kind not in slot or parse_utc(finished_at) > parse_utc(slot[kind])
        except ValueError:
            return
        if newer:
            slot[kind] = finished_at

    for report in previous_reports:
        if not isinstance(report, dict) or report.get("format") != FORMAT:
            continue
        for line in report.get("databases") or []:
            for kind, finished_at in (line.get("last_passed") or {}).items():
                note(line.get("identifier"), line.get("region"), kind, finished_at)
            if line.get("passed"):
                note(line.get("identifier"), line.get("region"), line.get("kind"), line.get("finished_at"))
    for line in lines:
        if line["passed"]:
            note(line["identifier"], line["region"], line["kind"], line["finished_at"])
    return best


def build_fleet_report(*, playbook, kind, started_at, finished_at, targets, hosts, results, previous_reports=()):
    """The report of one run: ``hosts`` in the run's order ({name, identifier, region, cluster}), ``results`` maps
    a host name to its registered result (absent: the task never ran there)."""
    lines = [database_line(host, kind, results.get(host["name"]), finished_at) for host in hosts]
    history = last_passed(previous_reports, lines)
    for line in lines:
        line["last_passed"] = dict(sorted(history.get((line["identifier"], line["region"]), {}).items()))
    counted = {verdict: sum(1 for line in lines if line["verdict"] == verdict) for verdict in VERDICTS}
    return {
        "format": FORMAT,
        "playbook": playbook,
        "kind": kind,
        "started_at": started_at,
        "finished_at": finished_at,
        "targets": targets,
        "summary": {"databases": len(lines), "passed": counted["passed"], "failed": counted["failed"],
                    "changed": counted["changed"], "unchanged": counted["unchanged"], "not_run": counted["not_run"]},
        "databases": lines,
    }


# ---------------------------------------------------------------------------------------------------- rendering

COLUMNS = ("Database", "Region", "Verdict", "Downtime (s)", "RTO (s)", "RPO (s)", "Parameters changed",
           "Last passed", "Failure")


def _text(value):
    if value is None or value == [] or value == {}:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if isinstance(value, dict):
        return ", ".join(f"{key} {item}" for key, item in value.items())
    return str(value)


def _cells(line):
    return [line["identifier"], line["region"], line["verdict"].upper().replace("_", " "), line["downtime_seconds"],
            line["rto_seconds"], line["rpo_seconds"], line["parameters_changed"], line.get("last_passed"),
            line["failure"]]


def _title(report):
    summary = report["summary"]
    counts = [f"{summary[verdict]} {verdict.replace('_', ' ')}" for verdict in VERDICTS
              if summary[verdict] or verdict in ("failed", "not_run")]
    return (f"Fleet report: {report['playbook']} on {report['targets'] or '-'} - {', '.join(counts)} "
            f"of {summary['databases']}")


def render_json(report):
    return json.dumps(report, indent=2, sort_keys=True, default=str) + "\n"


def render_markdown(report):
    lines = [f"# {_title(report)}", "", f"- Started: {report['started_at']}", f"- Finished: {report['finished_at']}",
             "", "| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    for line in report["databases"]:
        cells = [_text(cell).replace("|", "\\|").replace("\n", " ") for cell in _cells(line)]
        cells[0] = f"`{cells[0]}`"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def render_html(report):
    head = "".join(f"<th>{html.escape(column)}</th>" for column in COLUMNS)
    rows = []
    for line in report["databases"]:
        cells = "".join(f"<td>{html.escape(_text(cell))}</td>" for cell in _cells(line))
        rows.append(f'<tr class="{html.escape(line["verdict"])}">{cells}</tr>')
    title = html.escape(_title(report))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + title + "</title>"
            "<style>table{border-collapse:collapse}td,th{border:1px solid #999;padding:2px 6px}"
            ".failed{background:#fdd}.not_run{background:#eee}.passed{background:#dfd}</style></head><body>"
            f"<h1>{title}</h1><p>Started {html.escape(str(report['started_at']))}, finished "
            f"{html.escape(str(report['finished_at']))}</p><table><thead><tr>{head}</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></body></html>\n")


def render_junit(report):
    summary = report["summary"]
    suite = ElementTree.Element("testsuite", name=f"dbre.rds.fleet.{report['playbook']}",
                                tests=str(summary["databases"]), failures=str(summary["failed"]),
                                skipped=str(summary["not_run"]), errors="0", timestamp=str(report["started_at"]))
    for line in report["databases"]:
        case = ElementTree.SubElement(suite, "testcase", classname=f"{line['region']}.{line['identifier']}",
                                      name=str(line["kind"]))
        if line["verdict"] == "failed":
            message = line["failure"] or "failed"
            ElementTree.SubElement(case, "failure", message=str(message)).text = str(message)
        elif line["verdict"] == "not_run":
            ElementTree.SubElement(case, "skipped", message="not run: the batch was stopped or the host was skipped")
    return ElementTree.tostring(suite, encoding="unicode") + "\n"


RENDERERS = {"json": render_json, "md": render_markdown, "html": render_html, "xml": render_junit}


def render(report, run_id=None):
    """{"stem": file name stem, "json"|"md"|"html"|"xml": text}; ``run_id`` as in report_stem."""
    rendered = {fmt: RENDERERS[fmt](report) for fmt in RENDERINGS}
    rendered["stem"] = report_stem(report["playbook"], report["started_at"], run_id)
    return rendered


def s3_location(setting):
    """``s3://bucket/prefix``, ``bucket/prefix`` or {bucket, prefix, region} -> {bucket, prefix, region}; the prefix
    ends in ``fleet/``, region is None unless given."""
    region = None
    if isinstance(setting, dict):
        bucket, prefix, region = setting.get("bucket"), setting.get("prefix") or "", setting.get("region")
    else:
        text = str(setting or "").strip()
        text = text[len("s3://"):] if text.startswith("s3://") else text
        bucket, prefix = (text.split("/", 1) + [""])[:2]
    if not bucket or not re.match(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", str(bucket)):
        raise ValueError(f"dbre_rds_report_s3 {setting!r} names no S3 bucket: give s3://<bucket>[/<prefix>] or "
                         "{bucket: ..., prefix: ...}")
    prefix = str(prefix).strip("/")
    return {"bucket": bucket, "prefix": (f"{prefix}/" if prefix else "") + f"{FLEET_DIR}/", "region": region}

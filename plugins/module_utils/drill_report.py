# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one drill report: a single result rendered as JSON (machines), Markdown (people) and JUnit XML (CI, AWX).

A report is a plain dict:
    title, kind, target, started_at, finished_at (ISO 8601 UTC), passed (bool), failure (str or None),
    objectives: [{name, objective, observed, unit, held}],
    timeline: [{at, elapsed_seconds, event}],
    measurements: {name: value}, details: {...} (anything JSON-serialisable).
"""

from __future__ import annotations

import json
import os
import re
from xml.etree import ElementTree

from ansible_collections.dbre.rds.plugins.module_utils.clock import parse_utc

REPORT_FORMATS = ("json", "md", "xml")


def report_argument_spec():
    """Options documented by the ``dbre.rds.report`` doc fragment."""
    return dict(
        report_dir=dict(type="path"),
        report_name=dict(type="str"),
    )


def report_name_problems(name):
    """``report_name`` is a file name stem: no directory parts, nothing hidden, nothing a shell would trip on."""
    if name is None:
        return []
    if not str(name).strip():
        return ["report_name must not be blank: leave it out for the default name"]
    if not re.match(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}$", str(name)) or ".." in str(name):
        return [f"report_name {name!r} must be a plain file name stem (letters, digits, '.', '_', '-'; no '/', "
                "no '..'): the reports go to report_dir"]
    return []


def build_report(*, kind, title, target, started_at, finished_at, passed, objectives, measurements, timeline=(),
                 details=None, failure=None):
    """The report in the shared shape above; ``passed`` is false whenever there is a ``failure``."""
    return {
        "title": title,
        "kind": kind,
        "target": target,
        "started_at": started_at,
        "finished_at": finished_at,
        "passed": bool(passed) and failure is None,
        "failure": failure,
        "objectives": list(objectives or []),
        "timeline": sorted(timeline or [], key=lambda e: (e.get("elapsed_seconds") is None,
                                                          e.get("elapsed_seconds") or 0)),
        "measurements": dict(measurements or {}),
        "details": details or {},
    }


def check_rows(checks, *, objective="objective", observed="measured"):
    """Checks (each with ``name``, ``passed``, ``unit`` and the keys named by ``objective`` and ``observed``) as the
    report's objectives rows ``{name, objective, observed, unit, held}``, one per check; an observed dict or list is
    written as text of at most 200 characters."""
    rows = []
    for check in checks:
        value = check[observed]
        if isinstance(value, (dict, list)):
            value = str(value)
            value = value if len(value) <= 200 else value[:197] + "..."
        rows.append({"name": check["name"], "objective": check[objective], "observed": value, "unit": check["unit"],
                     "held": check["passed"]})
    return rows


def report_basename(kind, target, started_at):
    """A file name stem that sorts by time: ``<kind>-<target>-<YYYYmmddTHHMMSSZ>``."""
    stamp = parse_utc(started_at).strftime("%Y%m%dT%H%M%SZ")
    safe_target = re.sub(r"[^A-Za-z0-9_.-]", "_", str(target))
    return f"{kind}-{safe_target}-{stamp}"


def render_json(report):
    return json.dumps(report, indent=2, sort_keys=True, default=str) + "\n"


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True, default=str)
    return str(value).replace("|", "\\|").replace("\n", " ")


def _verdict(report):
    return "PASSED" if report.get("passed") else "FAILED"


def render_markdown(report):
    lines = [f"# {report.get('title') or report.get('kind')}: {_verdict(report)}", ""]
    lines += [
        f"- Target: `{report.get('target')}`",
        f"- Started: {report.get('started_at')}",
        f"- Finished: {report.get('finished_at')}",
    ]
    if report.get("failure"):
        lines.append(f"- Failure: {_cell(report['failure'])}")
    lines += ["", "## Verdict", "", "| Objective | Target | Observed | Held |", "| --- | --- | --- | --- |"]
    for item in report.get("objectives") or []:
        unit = f" {item['unit']}" if item.get("unit") else ""
        objective = "-" if item.get("objective") is None else f"{_cell(item.get('objective'))}{unit}"
        observed = "-" if item.get("observed") is None else f"{_cell(item.get('observed'))}{unit}"
        held = "yes" if item.get("held") else "**no**"
        lines.append(f"| {_cell(item.get('name'))} | {objective} | {observed} | {held} |")
    timeline = report.get("timeline") or []
    if timeline:
        lines += ["", "## Timeline", "", "| Time (UTC) | +s | Event |", "| --- | --- | --- |"]
        for entry in sorted(timeline, key=lambda e: (e.get("elapsed_seconds") is None, e.get("elapsed_seconds") or 0)):
            lines.append(f"| {_cell(entry.get('at'))} | {_cell(entry.get('elapsed_seconds'))} | {_cell(entry.get('event'))} |")
    measurements = report.get("measurements") or {}
    if measurements:
        lines += ["", "## Measurements", "", "| Measurement | Value |", "| --- | --- |"]
        for name in sorted(measurements):
            lines.append(f"| {name} | {_cell(measurements[name])} |")
    details = report.get("details")
    if details:
        lines += ["", "## Details", "", "```json", json.dumps(details, indent=2, sort_keys=True, default=str), "```"]
    return "\n".join(lines) + "\n"


def render_junit(report):
    objectives = report.get("objectives") or []
    failures = [item for item in objectives if not item.get("held")]
    errors = 1 if report.get("failure") and not failures else 0
    duration = report.get("measurements", {}).get("duration_seconds")
    suite = ElementTree.Element(
        "testsuite",
        name=f"dbre.rds.{report.get('kind')}",
        tests=str(max(len(objectives), 1)),
        failures=str(len(failures)),
        errors=str(errors),
        timestamp=str(report.get("started_at")),
    )
    if duration is not None:
        suite.set("time", f"{float(duration):.3f}")
    if not objectives:
        ElementTree.SubElement(suite, "testcase", classname=str(report.get("target")), name=str(report.get("kind")))
    for item in objectives:
        case = ElementTree.SubElement(suite, "testcase", classname=str(report.get("target")), name=str(item.get("name")))
        if not item.get("held"):
            unit = f" {item['unit']}" if item.get("unit") else ""
            message = f"observed {item.get('observed')}{unit}, objective {item.get('objective')}{unit}"
            ElementTree.SubElement(case, "failure", message=message).text = message
    if errors:
        error_case = suite.find("testcase")
        ElementTree.SubElement(error_case, "error", message=str(report["failure"]))
    return ElementTree.tostring(suite, encoding="unicode") + "\n"


RENDERERS = {"json": render_json, "md": render_markdown, "xml": render_junit}


def write_report(report, report_dir, basename):
    """Write the three renderings to ``report_dir`` (created if missing); returns {"json": path, "md": ..., "xml": ...}."""
    os.makedirs(report_dir, exist_ok=True)
    written = {}
    for fmt in REPORT_FORMATS:
        path = os.path.join(report_dir, f"{basename}.{fmt}")
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(RENDERERS[fmt](report))
        os.replace(tmp, path)
        written[fmt] = path
    return written

# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drill history: from stored reports, the last passed drill of each kind per database, and who is out of compliance.

Two kinds of stored report are read (both JSON; anything else is ignored and said so):

- the fleet report of plugins/module_utils/fleet_report.py (``format: dbre.rds.fleet_report/1``): one line per
  database of a fleet playbook run, each with its ``kind``, ``passed`` and ``finished_at``, and ``last_passed``
  ({kind: finished_at}) carried from the reports its run could see;
- a drill's own report of plugins/module_utils/drill_report.py (written by rds_restore_drill, rds_failover_test,
  rds_dr_drill, rds_upgrade_drill with ``report_dir``): ``kind`` (restore_drill...), ``target``, ``passed``,
  ``finished_at``; it names no region. A checklist-only upgrade report (kind ``upgrade_checklist``, or an
  ``upgrade_drill`` report that rehearsed nothing) is skipped: it never counts as an upgrade drill.

:func:`records_of` turns one document into flat records {identifier, region, host, kind, passed, verdict,
finished_at (None: never ran), source, carried}; :func:`compliance` folds the records of every document into the
answer. Pure: no file, no S3, no clock (``as_of`` is given).
"""

from __future__ import annotations

from ansible_collections.dbre.rds.plugins.module_utils.clock import parse_utc
from ansible_collections.dbre.rds.plugins.module_utils.clock import utc_iso
from ansible_collections.dbre.rds.plugins.module_utils.fleet_report import DRILL_KINDS
from ansible_collections.dbre.rds.plugins.module_utils.fleet_report import FORMAT
from ansible_collections.dbre.rds.plugins.module_utils.fleet_report import KINDS

FORMAT_NAME = FORMAT.rsplit("/", 1)[0]
SECONDS_PER_DAY = 86400.0
# reports of runs that rehearse nothing (rds_upgrade_drill checks_only / check mode): read, never counted as a drill
NOT_REHEARSED_KINDS = ("upgrade_checklist",)


def history_argument_problems(params):
    """What is wrong with the module's options, every problem at once (empty when they are usable)."""
    problems = []
    if params.get("max_age_days") is not None and not 0 < params["max_age_days"] <= 3660:
        problems.append(f"max_age_days must be more than 0 and at most 3660 days, not {params['max_age_days']}")
    unknown = sorted(set(params.get("kinds") or []) - set(KINDS))
    if unknown:
        problems.append(f"kinds {', '.join(unknown)} unknown: choose from {', '.join(KINDS)}")
    if not params.get("kinds"):
        problems.append(f"kinds must name at least one kind of run ({', '.join(KINDS)})")
    if params.get("as_of") not in (None, ""):
        try:
            parse_utc(params["as_of"])
        except (TypeError, ValueError):
            problems.append(f"as_of {params['as_of']!r} is not an ISO 8601 time: give e.g. 2026-11-30T07:00:00Z")
    blank = [name for name in params.get("identifiers") or [] if not str(name).strip()]
    if blank:
        problems.append("identifiers must not hold blank names")
    return problems


def _when(value, source, what, problems):
    """``value`` as an aware UTC datetime; None when missing; a problem when it is no time."""
    if value in (None, ""):
        return None
    try:
        return parse_utc(value)
    except (TypeError, ValueError):
        problems.append(f"{source}: {what} has finished_at {value!r}, which is not an ISO 8601 time")
        return None


def records_of(document, source):
    """(records, ignored_reason, problems) of one stored JSON document.

    ``ignored_reason`` is set when the document is not a report this module reads (a capacity report, a newer
    fleet format...): it is skipped, never guessed at. ``problems`` are reports of ours that are damaged."""
    problems = []
    if not isinstance(document, dict):
        return [], "not a JSON object", problems
    fmt = document.get("format")
    if isinstance(fmt, str) and fmt.startswith(FORMAT_NAME + "/"):
        if fmt != FORMAT:
            return [], f"fleet report format {fmt} is not {FORMAT}, the one this module reads", problems
        return _fleet_records(document, source, problems), None, problems
    if document.get("kind") in NOT_REHEARSED_KINDS or _upgrade_not_rehearsed(document):
        # rds_upgrade_drill checks_only: the checklist alone, no upgrade was rehearsed; never a passed upgrade drill
        return [], "an upgrade checklist run alone: nothing was rehearsed, so it is no upgrade drill", problems
    kind = DRILL_KINDS.get(document.get("kind"))
    if kind and "target" in document and "passed" in document:
        finished = _when(document.get("finished_at"), source, f"the {document.get('kind')} report", problems)
        if not document.get("target"):
            problems.append(f"{source}: the {document.get('kind')} report names no target")
            return [], None, problems
        record = {"identifier": str(document["target"]), "region": None, "host": None, "kind": kind,
                  "passed": document.get("passed") is True, "finished_at": finished, "source": source,
                  "carried": False}
        record["verdict"] = "passed" if record["passed"] else "failed"
        return ([record] if finished else []), None, problems
    return [], f"neither a fleet report ({FORMAT}) nor a drill report ({', '.join(sorted(DRILL_KINDS))})", problems


def _upgrade_not_rehearsed(document):
    """An ``upgrade_drill`` report of a checklist-only run: marked ``rehearsed: false``, or (reports written before
    that marker) with no ``upgraded`` measurement, which every rehearsal records from its start."""
    if document.get("kind") != "upgrade_drill":
        return False
    measurements = document.get("measurements")
    if not isinstance(measurements, dict):
        return True
    return measurements.get("rehearsed") is False or "upgraded" not in measurements


def _fleet_records(document, source, problems):
    records = []
    lines = document.get("databases")
    if not isinstance(lines, list):
        problems.append(f"{source}: the fleet report has no list of databases")
        return records
    for number, line in enumerate(lines):
        if not isinstance(line, dict) or not line.get("identifier") or line.get("kind") not in KINDS:
            problems.append(f"{source}: database line {number} has no identifier or no known kind "
                            f"({', '.join(KINDS)})")
            continue
        where = f"database {line['identifier']}"
        base = {"identifier": str(line["identifier"]), "region": line.get("region") or None,
                "host": line.get("host"), "source": source}
        finished = _when(line.get("finished_at"), source, where, problems)
        passed = line.get("passed") is True and finished is not None
        # a line with no finish time (not_run: its batch was stopped) still says the database is in the fleet
        records.append(dict(base, kind=line["kind"], passed=passed, finished_at=finished, carried=False,
                            verdict=line.get("verdict") or ("passed" if passed else "failed")))
        for kind, finished_at in (line.get("last_passed") or {}).items():
            carried = _when(finished_at, source, f"{where} (last_passed {kind})", problems)
            if kind in KINDS and carried is not None:
                records.append(dict(base, kind=kind, passed=True, finished_at=carried, carried=True,
                                    verdict="passed"))
    return records


def _database_keys(records, identifiers):
    """{(identifier, region)}: a record without a region (a drill's own report) belongs to the one region its
    identifier is known in, else stands alone; names in ``identifiers`` with no record at all are added."""
    regions = {}
    for record in records:
        if record["region"]:
            regions.setdefault(record["identifier"], set()).add(record["region"])
    for record in records:
        if not record["region"] and len(regions.get(record["identifier"], ())) == 1:
            record["region"] = next(iter(regions[record["identifier"]]))
    keys = {(r["identifier"], r["region"]) for r in records}
    if identifiers:
        wanted = set(identifiers)
        keys = {key for key in keys if key[0] in wanted}
        keys |= {(name, None) for name in wanted if name not in {key[0] for key in keys}}
    return keys


def _age_days(as_of, moment):
    return round((as_of - moment).total_seconds() / SECONDS_PER_DAY, 3)


def _kind_view(records, kind, as_of, max_age_days):
    mine = [r for r in records if r["kind"] == kind and r["finished_at"] is not None and r["finished_at"] <= as_of]
    passes = [r for r in mine if r["passed"]]
    runs = [r for r in mine if not r["carried"]]
    best = max(passes, key=lambda r: r["finished_at"]) if passes else None
    last = max(runs, key=lambda r: r["finished_at"]) if runs else None
    view = {
        "last_passed_at": utc_iso(best["finished_at"]) if best else None,
        "age_days": _age_days(as_of, best["finished_at"]) if best else None,
        "last_passed_source": best["source"] if best else None,
        "last_run_at": utc_iso(last["finished_at"]) if last else None,
        "last_run_verdict": last["verdict"] if last else None,
        "runs": len(runs),
    }
    view["compliant"] = best is not None and view["age_days"] <= max_age_days
    if best is None:
        view["reason"] = f"no passed {kind} run on record" + (f" ({len(runs)} failed)" if runs else "")
    elif not view["compliant"]:
        view["reason"] = (f"last passed {kind} run {view['age_days']:g} days ago, more than {max_age_days:g}"
                          + (f"; the last run since {last['verdict']}" if last and last is not best
                             and last["finished_at"] > best["finished_at"] else ""))
    else:
        view["reason"] = None
    return view


def compliance(records, *, kinds, max_age_days, as_of, identifiers=()):
    """The compliance view: {databases: [...], out_of_compliance: {kind: [identifier, ...]}, compliant: bool}.

    A database is compliant for a kind when a run of that kind passed on it within ``max_age_days`` before
    ``as_of`` (runs after ``as_of`` are not counted: the view is as of that time). With ``identifiers`` only those
    databases are answered for, and one with no report at all is out of compliance for every kind."""
    as_of = parse_utc(as_of)
    records = [dict(r) for r in records]
    keys = _database_keys(records, list(identifiers or ()))
    databases = []
    out = {kind: set() for kind in kinds}
    for identifier, region in sorted(keys, key=lambda key: (key[0], key[1] or "")):
        mine = [r for r in records if r["identifier"] == identifier and r["region"] == region]
        hosts = sorted({r["host"] for r in mine if r.get("host")})
        views = {kind: _kind_view(mine, kind, as_of, max_age_days) for kind in kinds}
        missing = [kind for kind in kinds if not views[kind]["compliant"]]
        for kind in missing:
            out[kind].add(identifier)
        databases.append({"identifier": identifier, "region": region, "host": hosts[0] if hosts else None,
                          "kinds": views, "compliant": not missing, "out_of_compliance": missing})
    return {
        "as_of": utc_iso(as_of),
        "max_age_days": max_age_days,
        "kinds": list(kinds),
        "databases": databases,
        "out_of_compliance": {kind: sorted(names) for kind, names in out.items()},
        "compliant": not any(out.values()),
    }

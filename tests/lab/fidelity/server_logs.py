# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Server log files as RDS serves them: DescribeDBLogFiles and DownloadDBLogFilePortion read the real PostgreSQL
log behind an instance (``LabControl.server_log()`` serves the same text).

RDS PostgreSQL rotates its log every hour into ``error/postgresql.log.<YYYY-MM-DD-HH>`` (UTC); the lab keeps one file
and splits it by the hour of each line's timestamp (``log_line_prefix`` starts with ``%m``, ``log_timezone`` is UTC),
a line without a timestamp belonging to the hour before it. ``Size`` is the bytes of that hour, ``LastWritten`` the
time of its last line in epoch milliseconds. DownloadDBLogFilePortion follows RDS's markers: no ``Marker`` gives the
last ``NumberOfLines`` lines (default 10000), ``Marker`` "0" starts at the beginning, and each answer's ``Marker``
continues while ``AdditionalDataPending`` is true. moto 5.2.5 describes one fake 123-byte file and downloads nothing.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from moto.rds import responses as rds_responses
from moto.rds.exceptions import DBInstanceNotFoundError, RDSClientError

from tests.lab.fidelity._support import replace, serving_pg

_STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2}) (\d{2}):(\d{2}:\d{2}(?:\.\d+)?) UTC ")
PREFIX = "error/postgresql.log."
MAX_LINES = 10000


def log_files_of(text: str) -> dict[str, dict]:
    """{file name: {"lines": [...], "last_written": epoch ms}} of a server log, one file per UTC hour."""
    files: dict[str, dict] = {}
    current = None
    for line in text.splitlines(keepends=True):
        match = _STAMP.match(line)
        if match:
            day, hour, rest = match.groups()
            current = f"{PREFIX}{day}-{hour}"
            stamp = datetime.fromisoformat(f"{day}T{hour}:{rest}").replace(tzinfo=timezone.utc)
            entry = files.setdefault(current, {"lines": [], "last_written": 0})
            entry["last_written"] = max(entry["last_written"], int(stamp.timestamp() * 1000))
        elif current is None:
            continue  # pg_ctl's own output before the first log line
        files[current]["lines"].append(line)
    return files


def _log_text(backend, identifier: str) -> str:
    database = backend.databases.get(identifier) if identifier else None
    if database is None:
        raise DBInstanceNotFoundError(identifier)
    pg = serving_pg(database)
    if pg is None:
        return ""
    try:
        return pg.log_file.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def server_log_files() -> None:
    """DescribeDBLogFiles / DownloadDBLogFilePortion serve the real PostgreSQL log by the hour."""

    def describe_db_log_files(self):
        params = self.params
        files = log_files_of(_log_text(self.backend, params.get("DBInstanceIdentifier")))
        rows = [{"LogFileName": name, "LastWritten": item["last_written"],
                 "Size": sum(len(line.encode()) for line in item["lines"])} for name, item in sorted(files.items())]
        if params.get("FilenameContains"):
            rows = [r for r in rows if params["FilenameContains"] in r["LogFileName"]]
        if params.get("FileLastWritten"):
            rows = [r for r in rows if r["LastWritten"] >= int(params["FileLastWritten"])]
        if params.get("FileSize"):
            rows = [r for r in rows if r["Size"] >= int(params["FileSize"])]
        return rds_responses.ActionResult({"DescribeDBLogFiles": rows})

    def download_db_log_file_portion(self):
        params = self.params
        files = log_files_of(_log_text(self.backend, params.get("DBInstanceIdentifier")))
        name = params.get("LogFileName")
        if name not in files:
            raise RDSClientError("DBLogFileNotFoundFault", f"DBLog File: {name}, is not found on the DB instance")
        lines = files[name]["lines"]
        count = min(int(params.get("NumberOfLines") or MAX_LINES), MAX_LINES)
        marker = params.get("Marker")
        if marker is None:
            start = max(0, len(lines) - count)
        else:
            try:
                start = int(str(marker).rsplit(":", 1)[-1])
            except ValueError:
                raise RDSClientError("InvalidParameterValue", f"Invalid marker: {marker}") from None
        end = min(len(lines), start + count)
        return rds_responses.ActionResult({"LogFileData": "".join(lines[start:end]), "Marker": str(end),
                                           "AdditionalDataPending": end < len(lines)})

    replace(rds_responses.RDSResponse, "describe_db_log_files", describe_db_log_files)
    replace(rds_responses.RDSResponse, "download_db_log_file_portion", download_db_log_file_portion)

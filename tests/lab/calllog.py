# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's call log: every AWS API request it received, with time, parameters (secrets masked), HTTP status and
AWS error code; a request that crashed moto is logged too (status 500, ``error`` InternalFailure, ``crash``).

With ``LAB_CALL_LOG_DIR`` set when the lab starts, every call is also appended (time, service, action, user agent,
status, error; no parameters) to ``<dir>/calls-<pid>.jsonl``, which a reset does not clear: the integration suite
reads it to check each call against the IAM policy of the module or role that made it (tests/tools/iam_policies.py).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from datetime import datetime, timezone
from urllib.parse import parse_qs

SECRET_KEY = re.compile(r"password|secretstring|token", re.IGNORECASE)
MASK = "********"
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
_XML_ERROR_CODE = re.compile(rb"<Code>\s*([^<\s]+)\s*</Code>")


def mask_secrets(value):
    """Replace the value of every key that names a password, secret string or token."""
    if isinstance(value, dict):
        return {k: (MASK if SECRET_KEY.search(str(k)) else mask_secrets(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_secrets(v) for v in value]
    return value


def describe_request(environ: dict, body: bytes) -> dict:
    """Service, action, protocol and parameters of one AWS API request, whatever its protocol."""
    headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
    content_type = environ.get("CONTENT_TYPE", "") or ""
    path = environ.get("PATH_INFO", "/") or "/"
    service = None
    match = _CREDENTIAL_SCOPE.search(headers.get("authorization", ""))
    if match:
        service = match.group(1)
    target = headers.get("x-amz-target")
    params: dict = {}
    if target:
        protocol, action = "json", target.rsplit(".", 1)[-1]
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            params = {}
    elif path.startswith("/service/") and "/operation/" in path:
        protocol, action = "rpc-v2-cbor", path.rstrip("/").rsplit("/", 1)[-1]
        params = _decode_cbor(body)
    elif "form-urlencoded" in content_type or (body and b"Action=" in body[:4096]):
        protocol = "query"
        parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        form = {k: v[0] if len(v) == 1 else v for k, v in parsed.items()}
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        form = {**query, **form}
        action = form.pop("Action", None) or "Unknown"
        form.pop("Version", None)
        params = form
    else:
        protocol, action = "rest", f"{environ.get('REQUEST_METHOD', 'GET')} {path}"
        # The names (never the values) of the query and of the x-amz-* headers tell REST operations of one path
        # apart: S3's GET /bucket is ListObjects, ListObjectsV2 (list-type) or a sub-resource (?ownershipControls),
        # and PUT /bucket/key is PutObject or, with x-amz-copy-source, CopyObject.
        params = {"query_keys": sorted(parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)),
                  "header_keys": sorted(name for name in headers if name.startswith("x-amz-"))}
    return {"service": service or "unknown", "action": action, "protocol": protocol, "params": mask_secrets(params),
            "user_agent": headers.get("user-agent", "")}


def error_code(body: bytes, protocol: str) -> str | None:
    """The AWS error code of an error answer (``<Code>`` of the XML document, ``__type`` of a JSON one)."""
    if protocol == "json":
        try:
            code = json.loads(body or b"{}").get("__type")
        except (ValueError, AttributeError):
            code = None
        return code.rsplit("#", 1)[-1] if isinstance(code, str) else None
    match = _XML_ERROR_CODE.search(body or b"")
    return match.group(1).decode("utf-8", "replace") if match else None


def _decode_cbor(body: bytes) -> dict:
    try:
        import cbor2  # optional: only newer botocore speaks CBOR, and moto may not
        decoded = cbor2.loads(body)
        return decoded if isinstance(decoded, dict) else {}
    except Exception:  # undecodable or cbor2 missing: the action name is still logged
        return {}


class CallLog:
    def __init__(self, limit: int = 100000):
        self._entries: list[dict] = []
        self._lock = threading.Lock()
        self._limit = limit
        directory = os.environ.get("LAB_CALL_LOG_DIR")
        self._journal = os.path.join(directory, f"calls-{os.getpid()}.jsonl") if directory else None

    def record(self, request: dict, status: int, fault: str | None, seconds: float, error: str | None = None,
               crash: str | None = None) -> dict:
        now = time.time()
        entry = {
            "at": datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "epoch": now,
            "service": request["service"],
            "action": request["action"],
            "params": request["params"],
            "user_agent": request.get("user_agent", ""),
            "status": status,
            "fault": fault,
            "error": error,
            "seconds": round(seconds, 4),
        }
        if crash:
            entry["crash"] = crash
        with self._lock:
            self._entries.append(entry)
            if self._journal:
                kept = {key: entry[key] for key in ("epoch", "service", "action", "user_agent", "status", "error")}
                os.makedirs(os.path.dirname(self._journal), exist_ok=True)
                with open(self._journal, "a", encoding="utf-8") as journal:
                    journal.write(json.dumps(kept) + "\n")
            if len(self._entries) > self._limit:
                del self._entries[: len(self._entries) - self._limit]
        return entry

    def entries(self, action: str | None = None, since: float | None = None, service: str | None = None) -> list[dict]:
        with self._lock:
            entries = list(self._entries)
        if action:
            entries = [e for e in entries if e["action"] == action]
        if service:
            entries = [e for e in entries if e["service"] == service]
        if since is not None:
            entries = [e for e in entries if e["epoch"] >= since]
        return entries

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

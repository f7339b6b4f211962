# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""API faults on demand: a share of calls answered with Throttling or a 5xx, slowed down, or answered too late.

A rule: {"kind": "throttle" | "error" | "latency" | "lost_answer", "share": 0..1, "actions": [...] | None,
"service": str | None, "status": 500 | 503 (for "error"), "seconds": float (for "latency" and "lost_answer"),
"count": int | None (at most this many)}.
"latency" waits ``seconds`` BEFORE the call is carried out. "lost_answer" carries the call out (and logs it, with
``fault`` "lost_answer") and then holds the answer back for ``seconds``: a client whose read timeout is shorter gives
up although the call happened, as when an answer is lost on the way back. A held answer is released at once by
clear() (and so by the lab's reset). An "error" or "throttle" rule that fires first wins: the call is not carried
out and no "lost_answer" rule fires.
An "error" rule may name the error instead: "code" (e.g. AccessDenied, UnauthorizedOperation), "message", and
"status" any 4xx/5xx (default 403 for access errors, else 400), so a test sees what a user without permission sees.
"""

from __future__ import annotations

import random
from http import HTTPStatus
import threading
import uuid

KINDS = ("throttle", "error", "latency", "lost_answer")
ACCESS_ERRORS = ("AccessDenied", "AccessDeniedException", "UnauthorizedOperation")

_QUERY_NAMESPACES = {"rds": "http://rds.amazonaws.com/doc/2014-10-31/",
                     "monitoring": "http://monitoring.amazonaws.com/doc/2010-08-01/",
                     "cloudwatch": "http://monitoring.amazonaws.com/doc/2010-08-01/"}


class FaultInjector:
    def __init__(self):
        self._rules: list[dict] = []
        self._lock = threading.Lock()
        self._random = random.Random()
        self._released = threading.Event()

    def add(self, spec: dict) -> dict:
        kind = spec.get("kind", "throttle")
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {', '.join(KINDS)}")
        actions = spec.get("actions", spec.get("action"))
        if isinstance(actions, str):
            actions = [actions]
        rule = {
            "id": uuid.uuid4().hex[:8],
            "kind": kind,
            "share": float(spec.get("share", 1.0)),
            "actions": list(actions) if actions else None,
            "service": spec.get("service"),
            "status": int(spec.get("status", 503 if kind == "error" else 400)),
            "seconds": float(spec.get("seconds", spec.get("latency", 0.0))),
            "count": spec.get("count"),
            "fired": 0,
        }
        if kind == "error" and spec.get("code"):
            rule["code"] = str(spec["code"])
            rule["message"] = str(spec.get("message") or f"{rule['code']} (injected by the lab)")
            rule["status"] = int(spec.get("status") or (403 if rule["code"] in ACCESS_ERRORS else 400))
            if not 400 <= rule["status"] <= 599:
                raise ValueError("an error fault with a code answers a 4xx or 5xx status")
        elif kind == "error" and rule["status"] not in (500, 503):
            raise ValueError("an error fault answers 500 or 503 (or give its code)")
        if kind in ("latency", "lost_answer") and rule["seconds"] <= 0:
            raise ValueError(f"a {kind} fault needs seconds > 0")
        if "seed" in spec:
            self._random.seed(spec["seed"])
        with self._lock:
            self._rules.append(rule)
        return dict(rule)

    def rules(self) -> list[dict]:
        with self._lock:
            return [dict(r) for r in self._rules]

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            released, self._released = self._released, threading.Event()
        released.set()

    def hold(self, seconds: float) -> None:
        """Hold a lost answer back for seconds, or until the rules are cleared."""
        with self._lock:
            released = self._released
        released.wait(seconds)

    def decide(self, service: str, action: str) -> tuple[float, dict | None, float]:
        """(latency before the call, the error rule to answer with or None, seconds to hold the answer back after
        the call) for one call."""
        latency, error, hold, lost = 0.0, None, 0.0, []
        with self._lock:
            for rule in self._rules:
                if rule["actions"] and action not in rule["actions"]:
                    continue
                if rule["service"] and rule["service"] != service:
                    continue
                if rule["count"] is not None and rule["fired"] >= int(rule["count"]):
                    continue
                if self._random.random() >= rule["share"]:
                    continue
                if rule["kind"] == "latency":
                    latency += rule["seconds"]
                    rule["fired"] += 1
                elif rule["kind"] == "lost_answer":
                    lost.append(rule)
                elif error is None:
                    error = rule
                    rule["fired"] += 1
            if error is None:
                for rule in lost:
                    hold += rule["seconds"]
                    rule["fired"] += 1
        return latency, error, hold


def error_response(rule: dict, service: str, protocol: str) -> tuple[str, list[tuple[str, str]], bytes]:
    """The HTTP status line, headers and body AWS would send for this fault."""
    request_id = str(uuid.uuid4())
    if rule["kind"] == "throttle":
        status, code, message, sender = 400, "Throttling", "Rate exceeded", "Sender"
    elif rule.get("code"):
        status, code, message = rule["status"], rule["code"], rule["message"]
        sender = "Sender" if status < 500 else "Receiver"
    elif rule["status"] == 500:
        status, code, message, sender = 500, "InternalFailure", "An internal error occurred.", "Receiver"
    else:
        status, code, message, sender = 503, "ServiceUnavailable", "Service is unavailable. Try again later.", \
            "Receiver"
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    if protocol == "json":
        import json
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", request_id),
                   ("x-amzn-ErrorType", code)]
    elif service == "ec2":  # EC2's query protocol has its own error document
        body = (f"<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors>"
                f"<RequestID>{request_id}</RequestID></Response>").encode()
        headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
    else:
        namespace = _QUERY_NAMESPACES.get(service, "")
        body = (f'<ErrorResponse xmlns="{namespace}"><Error><Type>{sender}</Type><Code>{code}</Code>'
                f"<Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>").encode()
        headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)]
    headers.append(("Content-Length", str(len(body))))
    return f"{status} {reason}", headers, body

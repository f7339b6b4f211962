# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Client of the lab's ``/_lab/`` control API (standard library only)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request


class LabControlError(RuntimeError):
    pass


class LabControl:
    def __init__(self, url: str | None = None, timeout: float = 60.0):
        self.url = (url or os.environ["LAB_URL"]).rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, route: str, payload: dict | None = None, query: dict | None = None):
        url = f"{self.url}/_lab/{route}"
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(url, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise LabControlError(f"{method} /_lab/{route} answered {exc.code}: {detail}") from None

    # --- call log -------------------------------------------------------------------------------------------
    def calls(self, action: str | None = None, since: float | None = None, service: str | None = None) -> list[dict]:
        """Every API request the lab received, crashed ones included: {"at", "epoch", "service", "action", "params",
        "status" (HTTP), "error" (AWS error code or None), "fault" (injected fault kind or None), "crash" (only when
        moto or a patch raised: the exception)}."""
        return self._call("GET", "calls", query={"action": action, "since": since, "service": service})["calls"]

    def clear_calls(self) -> None:
        self._call("DELETE", "calls")

    # --- faults ---------------------------------------------------------------------------------------------
    def set_fault(self, kind: str = "throttle", share: float = 1.0, actions=None, **spec) -> dict:
        """Add a fault rule: kind "throttle" (HTTP 400 Throttling), "error" (status 500/503, or ``code=`` such as
        "AccessDenied" with ``status=`` 403 and ``message=``), "latency" (``seconds`` waited before the call) or
        "lost_answer" (the call is carried out, then its answer is held back ``seconds``: a client with a shorter
        read timeout gives up although the call happened); ``share`` of matching calls; ``actions`` limits it to
        some actions; ``count`` caps it."""
        return self._call("POST", "faults", dict(spec, kind=kind, share=share, actions=actions))["fault"]

    def faults(self) -> list[dict]:
        return self._call("GET", "faults")["faults"]

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def stick(self, identifier: str, status: str | None, kind: str | None = None, region: str = "us-east-1") -> dict:
        """Keep a DB instance (or cluster) of ``region`` in ``status`` until unstuck (status None)."""
        return self._call("POST", "stuck", {"identifier": identifier, "status": status, "kind": kind,
                                            "region": region})

    def unstick(self, identifier: str, kind: str | None = None, region: str = "us-east-1") -> dict:
        return self.stick(identifier, None, kind, region=region)

    def refuse_connections(self, identifier: str, seconds: float, region: str = "us-east-1") -> dict:
        """Make the PostgreSQL behind an instance or cluster of ``region`` refuse connections for ``seconds``."""
        return self._call("POST", "refuse_connections", {"identifier": identifier, "seconds": seconds,
                                                         "region": region})

    def outage(self, identifier: str, seconds: float, region: str = "us-east-1") -> dict:
        """Stop the PostgreSQL behind an instance or cluster of ``region`` for ``seconds`` (the API status does not
        change)."""
        return self._call("POST", "outage", {"identifier": identifier, "seconds": seconds, "region": region})

    def arm_lossy_failover(self, identifier: str, freeze_seconds: float = 1.0) -> dict:
        """Make the next failover of this instance/cluster promote a standby that stopped replicating
        ``freeze_seconds`` before the primary died: the writes of that window are lost."""
        return self._call("POST", "lossy_failover", {"identifier": identifier, "freeze_seconds": freeze_seconds})

    def server_log(self, identifier: str, region: str = "us-east-1") -> str:
        """The text of the PostgreSQL server log behind a DB instance or Aurora cluster of ``region`` (what RDS serves
        as ``error/postgresql.log.*``), e.g. to check that no password reached it."""
        return self._call("GET", "server_log", query={"identifier": identifier, "region": region})["log"]

    def failover_log(self) -> list[dict]:
        """Failovers the lab performed, with timestamps (``pg_stopped_at`` / ``pg_ready_at``: when PostgreSQL really
        went down and accepted connections again; ``endpoint_ready_at``: when the instance's endpoint accepted TCP
        logins again, ``dns_propagation`` later) and, for lossy ones, dropped_rows / dropped_total."""
        return self._call("GET", "failovers")["failovers"]

    def set_snapshot_create_time(self, identifier: str, at, region: str = "us-east-1", kind: str = "db") -> dict:
        """Date a DB (``kind="db"``) or cluster snapshot in the past (``at``: a datetime), to test retention rules."""
        return self._call("POST", "snapshot_create_time",
                          {"identifier": identifier, "at": at.isoformat(), "region": region, "kind": kind})

    def status_history(self, identifier: str | None = None, region: str = "us-east-1") -> dict:
        """Status transitions per resource of ``region`` ("db:<id>" / "cluster:<id>" in us-east-1, "db:<id>@<region>"
        / "cluster:<id>@<region>" elsewhere): [{"status", "at" (ISO 8601 UTC)}, ...]."""
        return self._call("GET", "status_history", query={"identifier": identifier, "region": region})["history"]

    def load_metric_history(self, identifier: str | None, metric: str, points=None, spec: dict | None = None,
                            region: str = "us-east-1", kind: str = "db", namespace: str = "AWS/RDS",
                            dimensions: dict | None = None, unit: str | None = None, replace: bool = True,
                            exclusive: bool = True) -> dict:
        """Load a past CloudWatch series that GetMetricStatistics / GetMetricData then return as if published.

        ``points``: [(epoch or ISO 8601 time, value), ...] or [{"timestamp", "value"}]; or ``spec``, a pattern over
        ``days`` (14) with a point every ``period`` seconds (300) up to ``end`` (now): {"pattern": "daily", "low",
        "high", "peak_hour" (14, UTC), "noise" (0: a share of high - low), "seed"}, {"pattern": "linear", "start"
        (value at the first point), "per_day"} or {"pattern": "constant", "value"}. The series is ``metric`` in
        ``namespace`` with dimension DBInstanceIdentifier (``kind="db"``) or DBClusterIdentifier (``kind="cluster"``)
        = ``identifier``, or exactly ``dimensions``; ``unit`` defaults to the metric's AWS unit. ``replace`` drops
        what the series held before; ``exclusive`` stops the lab's live samples of that series until a reset."""
        if points is not None:  # datetimes as ISO 8601
            pairs = ((p["timestamp"], p["value"]) if isinstance(p, dict) else p for p in points)
            points = [[at.isoformat() if hasattr(at, "isoformat") else at, value] for at, value in pairs]
        payload = {"identifier": identifier, "metric": metric, "points": points, "spec": spec, "region": region,
                   "kind": kind, "namespace": namespace, "dimensions": dimensions, "unit": unit, "replace": replace,
                   "exclusive": exclusive}
        return self._call("POST", "load_metric_history", payload)

    def replication_log(self) -> list[dict]:
        """The lab's truth about promotions (kind "promote") and global switchovers/failovers: {kind, identifier,
        region, requested_at, writable_at (epochs: the request, and when the promoted PostgreSQL accepted writes),
        lag_seconds_at_request, lost_rows ({table: rows the source had that the promoted copy lacks}), lost_total}."""
        return self._call("GET", "replication_log")["replication_log"]

    def pause_replay(self, identifier: str, region: str = "us-east-1", kind: str | None = None) -> dict:
        """Hold WAL replay on a read replica (``kind="cluster"``: a global database's secondary cluster) while the
        source keeps writing: its lag grows honestly. Returns its replication status."""
        return self._call("POST", "pause_replay", {"identifier": identifier, "region": region, "kind": kind})

    def resume_replay(self, identifier: str, region: str = "us-east-1", kind: str | None = None) -> dict:
        """Replay again (ends a pause and a delay): the replica catches up."""
        return self._call("POST", "resume_replay", {"identifier": identifier, "region": region, "kind": kind})

    def delay_replay(self, identifier: str, seconds: float, region: str = "us-east-1", kind: str | None = None) -> dict:
        """Apply each commit on the replica only ``seconds`` after the source made it (0 ends the delay)."""
        return self._call("POST", "delay_replay",
                          {"identifier": identifier, "seconds": seconds, "region": region, "kind": kind})

    def replication_status(self, identifier: str, region: str = "us-east-1", kind: str | None = None) -> dict:
        """A replica's standby now: replay/receive/source LSNs, lag_bytes, lag_seconds, paused, streaming."""
        return self._call("GET", "replication_status",
                          query={"identifier": identifier, "region": region, "kind": kind})

    # --- timing and lifecycle -------------------------------------------------------------------------------
    def set_timing(self, **durations) -> dict:
        """Durations in seconds before LAB_TIME_SCALE (``scale=`` changes the scale): create, backing_up, modify,
        delete, snapshot, param_apply, reboot, failover, restore, start_stop, proxy (RDS Proxy statuses), snapshot_copy,
        replica (read replicas creating), promote (PromoteReadReplica until writable), dns_propagation (after a
        failover's new writer is ready, its endpoint refuses TCP logins this much longer, as clients still resolve
        the old primary; RDS Proxy reaches the new writer at once); not statuses: metrics
        (CloudWatch metrics published this often, 0 pauses), pi_sample (Performance Insights sampling)."""
        return self._call("POST", "timing", durations)

    def timing(self) -> dict:
        return self._call("GET", "timing")

    def reset_timing(self) -> dict:
        return self._call("DELETE", "timing")

    def state(self) -> dict:
        return self._call("GET", "state")

    def ca_cert(self) -> str:
        """Path of the lab CA's certificate, which signed every PostgreSQL server certificate: pass it as
        ``sslrootcert`` with ``sslmode=verify-full`` (also ``LAB_CA_CERT`` in the lab's environment)."""
        health = self.health()
        if not health.get("ca_cert"):
            raise LabControlError("this lab serves no TLS (plain moto, LAB_FIDELITY=off)")
        return health["ca_cert"]

    def health(self) -> dict:
        return self._call("GET", "health")

    def wait_jobs(self, timeout: float = 30.0) -> list[dict]:
        """Wait for background work (reboots, failovers) to finish."""
        return self._call("POST", "wait_jobs", {"timeout": timeout})["jobs"]

    def reset(self) -> None:
        """Drop every AWS resource and PostgreSQL cluster; clear faults, timing, stuck states and the call log."""
        self._call("POST", "reset", {})

    def blue_green_log(self) -> list[dict]:
        """Blue/green switchovers the lab performed (tests.lab.fidelity.blue_green; entries of kind
        ``blue_green_switchover`` of the replication log): {identifier (bgd-...), name, region, blue, green,
        timeout_seconds, requested_at, writes_stopped_at, caught_up_at, switched_at (epochs; None when not reached),
        ok, rolled_back, reason, lost_rows ({table: rows blue had that green lacked}), lost_total, sequences_synced}."""
        return [entry for entry in self.replication_log() if entry.get("kind") == "blue_green_switchover"]

    def upgrade_log(self) -> list[dict]:
        """Engine upgrades the lab ran (tests.lab.fidelity.upgrades; entries of kind ``engine_upgrade`` of the
        replication log): {identifier, region, upgrade ("major"/"minor"), from_version, to_version, ok (None while
        running), requested_at, down_at, up_at, finished_at (epochs; down_at/up_at None when PostgreSQL never went
        down), check_seconds (RDS pre-checks and pg_upgrade --check), pg_upgrade_seconds, blockers ([{check, message,
        objects}]), error}."""
        return [entry for entry in self.replication_log() if entry.get("kind") == "engine_upgrade"]

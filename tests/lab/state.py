# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the lab knows beyond moto: its state directory, the PostgreSQL behind each resource, timing, faults,
the call log and the background work (reboots, failovers) that outlives a request.

One LabState per server process (moto's backends are process-wide too); patches reach it through ``current()``.
"""

from __future__ import annotations

import logging
import os
import pathlib
import shutil
import threading
import time
import traceback
from datetime import datetime, timezone

from tests.lab.calllog import CallLog
from tests.lab.faults import FaultInjector

LOG = logging.getLogger("tests.lab")

# Seconds before LAB_TIME_SCALE. amazon.aws waits 60 s between describes, so whatever it creates, modifies or
# deletes is final by default; what this collection's own modules poll for (restores, reboots, failovers) takes a
# short real time.
DEFAULT_DURATIONS = {
    "create": 0.0,        # creating
    "backing_up": 0.0,    # backing-up, after creating
    "modify": 0.0,        # modifying
    "delete": 0.0,        # deleting (the resource disappears afterwards)
    "snapshot": 0.0,      # snapshot creating
    "param_apply": 0.0,   # ParameterApplyStatus applying
    "reboot": 0.5,        # rebooting (PostgreSQL restarts meanwhile)
    "failover": 2.0,      # PostgreSQL outage during a Multi-AZ or Aurora failover
    "restore": 1.0,       # creating, for restores from snapshot or to a point in time
    "start_stop": 0.0,    # starting / stopping
    "proxy": 0.0,         # RDS Proxy creating / modifying / deleting, proxy endpoints, targets REGISTERING
    "dns_propagation": 0.0,  # after a failover, the endpoint refuses TCP logins this long (clients resolve the old
                             # primary); RDS Proxy reaches the new writer at once
    "snapshot_copy": 1.0,  # snapshot copies creating (PercentProgress), same region or across regions
    "metrics": 5.0,       # CloudWatch metrics published from each instance's PostgreSQL this often (0: paused)
    "pi_sample": 1.0,     # Performance Insights samples each PI-enabled instance's sessions this often (0: paused)
    "replica": 1.0,       # creating, for read replicas (at least: the standby's base backup and first stream)
    "promote": 1.0,       # PromoteReadReplica: from the request until the promoted PostgreSQL accepts writes
}

_CURRENT: LabState | None = None


def current() -> LabState:
    if _CURRENT is None:
        raise RuntimeError("the lab is not running in this process")
    return _CURRENT


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Timing:
    def __init__(self):
        self.scale = float(os.environ.get("LAB_TIME_SCALE", "1") or 1)
        self.durations = dict(DEFAULT_DURATIONS)

    def seconds(self, name: str) -> float:
        return max(0.0, float(self.durations.get(name, 0.0)) * self.scale)

    def update(self, values: dict) -> dict:
        for key, value in values.items():
            if key == "scale":
                self.scale = float(value)
            elif key in self.durations:
                self.durations[key] = float(value)
            else:
                raise KeyError(f"unknown timing {key!r}; known: scale, {', '.join(sorted(self.durations))}")
        return self.as_dict()

    def reset(self) -> None:
        self.scale = float(os.environ.get("LAB_TIME_SCALE", "1") or 1)
        self.durations = dict(DEFAULT_DURATIONS)

    def as_dict(self) -> dict:
        return {"scale": self.scale, "durations": dict(self.durations)}


class Job:
    """Background work attached to a resource's status phase (a reboot, a failover, a delayed delete)."""

    def __init__(self, lab: LabState, name: str, target):
        self.name = name
        self.done = False
        self.error: str | None = None
        self._target = target
        self._thread = threading.Thread(target=self._run, name=f"lab-{name}", daemon=True)
        self._lab = lab

    def start(self) -> Job:
        self._lab.jobs.append(self)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._target()
        except Exception:  # a failed job must not kill the server; it is reported by /_lab/jobs
            self.error = traceback.format_exc()
            LOG.error("lab job %s failed:\n%s", self.name, self.error)
        finally:
            self.done = True

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)


class LabState:
    def __init__(self, root: pathlib.Path, fidelity: bool = True):
        global _CURRENT
        self.root = pathlib.Path(root).resolve()
        self.fidelity = fidelity
        self.lock = threading.RLock()
        self.timing = Timing()
        self.faults = FaultInjector()
        self.calls = CallLog()
        self.pg: dict[str, object] = {}           # "db:<id>" / "cluster:<id>" -> PgCluster
        self.stuck: dict[str, str] = {}           # "db:<id>" / "cluster:<id>" -> status
        self.lossy: dict[str, dict] = {}          # armed lossy failovers
        self.failovers: list[dict] = []
        self.clamps: dict[str, list] = {}
        self.jobs: list[Job] = []
        self.failover_listeners: list = []        # callables (phase, entry): "started"/"completed" of each failover
        self.generation = 0                       # bumped by reset(): stale jobs stop touching state
        for sub in ("clusters", "snapshots", "logs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        self.ca_cert: pathlib.Path | None = None  # the CA of every PostgreSQL's server certificate
        if fidelity:
            from tests.lab.tls import lab_ca
            self.ca_cert = lab_ca(self.root)
        _CURRENT = self

    # --- places -------------------------------------------------------------------------------------------------
    @property
    def clusters_root(self) -> pathlib.Path:
        return self.root / "clusters"

    @property
    def snapshots_root(self) -> pathlib.Path:
        return self.root / "snapshots"

    # --- PostgreSQL registry ------------------------------------------------------------------------------------
    def pg_for(self, key: str):
        return self.pg.get(key)

    def set_pg(self, key: str, cluster) -> None:
        self.pg[key] = cluster

    def drop_pg(self, key: str, destroy: bool = True) -> None:
        cluster = self.pg.pop(key, None)
        if cluster is not None and destroy:
            try:
                cluster.destroy()
            except Exception:  # best effort: stop_all at shutdown catches what is left
                LOG.exception("destroying %s failed", key)

    def rename_pg(self, old: str, new: str) -> None:
        if old in self.pg:
            self.pg[new] = self.pg.pop(old)

    # --- jobs ---------------------------------------------------------------------------------------------------
    def run_job(self, name: str, target) -> Job:
        self.jobs = [job for job in self.jobs if not job.done]
        return Job(self, name, target).start()

    def wait_jobs(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        for job in list(self.jobs):
            job.join(max(0.0, deadline - time.monotonic()))

    # --- control ------------------------------------------------------------------------------------------------
    def record_failover(self, entry: dict) -> dict:
        self.failover_phase("completed", entry)
        self.failovers.append(entry)
        return entry

    def failover_phase(self, phase: str, entry: dict) -> None:
        """Tell the listeners (RDS Proxy's pooler) that a failover has ``started``, that its new writer is ready
        (``writer_ready``: its PostgreSQL accepts connections, before ``dns_propagation`` ends) or ``completed``."""
        for listener in list(self.failover_listeners):
            try:
                listener(phase, entry)
            except Exception:  # a listener must not break the failover itself
                LOG.exception("failover listener %r failed on %s", listener, phase)

    def record_clamp(self, key: str, clamped) -> None:
        if clamped:
            self.clamps.setdefault(key, []).append({"at": utc_now().isoformat(), "clamped": clamped})

    def describe(self) -> dict:
        clusters = {}
        for key, cluster in self.pg.items():
            info = {"port": getattr(cluster, "port", None), "name": getattr(cluster, "name", None)}
            try:
                info["running"] = bool(cluster.is_running())
            except Exception:  # a cluster being rebuilt answers nothing useful
                info["running"] = None
            info["clamps"] = self.clamps.get(key, [])
            clusters[key] = info
        return {"root": str(self.root), "fidelity": self.fidelity, "timing": self.timing.as_dict(),
                "stuck": dict(self.stuck), "postgres": clusters,
                "jobs": [{"name": j.name, "done": j.done, "error": j.error} for j in self.jobs]}

    def reset(self) -> None:
        """Drop every AWS resource and PostgreSQL cluster; clear faults, timing, stuck states and the call log."""
        with self.lock:
            self.generation += 1
        self.wait_jobs(timeout=15)
        with self.lock:
            self._stop_proxies()
            for key in list(self.pg):
                self.drop_pg(key)
            self.pg.clear()
            self.stuck.clear()
            self.lossy.clear()
            self.failovers.clear()
            self.clamps.clear()
            self.jobs.clear()
            self.faults.clear()
            self.timing.reset()
            from moto.moto_api._internal.models import moto_api_backend
            moto_api_backend.reset()
            for sub in ("clusters", "snapshots"):
                shutil.rmtree(self.root / sub, ignore_errors=True)
                (self.root / sub).mkdir(parents=True, exist_ok=True)
            self.calls.clear()

    def _stop_proxies(self) -> None:
        try:
            from tests.lab.pgbouncer import stop_all
            stop_all(self.root)
            shutil.rmtree(self.root / "proxies", ignore_errors=True)
        except Exception:  # best effort: __main__'s stop_daemon runs stop_all again
            LOG.exception("stopping the proxies' PgBouncers failed")

    def shutdown(self) -> None:
        with self.lock:
            self.generation += 1
        self.wait_jobs(timeout=10)
        self._stop_proxies()
        for key in list(self.pg):
            self.drop_pg(key)
        try:
            from tests.lab.postgres import stop_all
            stop_all(self.root)
        except Exception:  # nothing to stop, or postgres.py not importable
            LOG.exception("stop_all failed")

# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab's HTTP server: moto (threaded, 127.0.0.1 only) behind a WSGI middleware that logs calls, injects
faults and serves the ``/_lab/`` control API."""

from __future__ import annotations

import io
import json
import logging
import os
import pathlib
import signal
import sys
import threading
import time
from urllib.parse import parse_qs

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from tests.lab.calllog import describe_request, error_code
from tests.lab.faults import error_response
from tests.lab.state import LabState

LOG = logging.getLogger("tests.lab")
HOST = "127.0.0.1"
# Services moto 5.2.5 lacks, by signing name: handler(environ, body, start_response) -> body parts (WSGI style).
# Fidelity patches register them (performance_insights: "pi"); with LAB_FIDELITY=off none is served.
LAB_SERVICES: dict = {}


class LabMiddleware:
    def __init__(self, app, lab: LabState):
        self.app = app
        self.lab = lab

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/_lab/") or path == "/_lab":
            return self._control(environ, start_response)
        if not self.lab.fidelity:
            # Plain moto, for showing what the lab adds: no call log, no faults.
            return self.app(environ, start_response)
        body = self._read_body(environ)
        request = describe_request(environ, body)
        started = time.monotonic()
        latency, rule, hold = self.lab.faults.decide(request["service"], request["action"])
        if latency:
            time.sleep(latency)
        if rule is not None:
            status, headers, payload = error_response(rule, request["service"], request["protocol"])
            self.lab.calls.record(request, int(status.split()[0]), rule["kind"], time.monotonic() - started,
                                  error=error_code(payload, request["protocol"]))
            start_response(status, headers)
            return [payload]
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"], captured["headers"] = status, headers
            return lambda data: None  # moto's Flask app returns its body; nothing writes through this

        try:
            if request["service"] in LAB_SERVICES:  # a service moto lacks, served by a fidelity module
                result = b"".join(LAB_SERVICES[request["service"]](environ, body, capture))
            elif request["service"] == "rds":
                # One RDS request at a time: the patches touch moto models and PostgreSQL clusters together.
                with self.lab.lock:
                    result = b"".join(self.app(environ, capture))
            else:
                result = b"".join(self.app(environ, capture))
        except Exception as exc:  # moto (or a patch) crashed: answer as AWS does, and log the call all the same
            LOG.exception("%s %s crashed", request["service"], request["action"])
            crash = {"kind": "error", "status": 500, "code": "InternalFailure",
                     "message": f"The lab crashed serving this request: {type(exc).__name__}: {exc}"}
            status, headers, payload = error_response(crash, request["service"], request["protocol"])
            self.lab.calls.record(request, 500, None, time.monotonic() - started, error="InternalFailure",
                                  crash=f"{type(exc).__name__}: {exc}")
            start_response(status, headers)
            return [payload]
        status_code = int(str(captured.get("status", "200")).split()[0])
        self.lab.calls.record(request, status_code, "lost_answer" if hold else None, time.monotonic() - started,
                              error=error_code(result, request["protocol"]) if status_code >= 400 else None)
        if hold:
            # A lost answer: the call is carried out and logged; its answer comes late (after a client timeout).
            self.lab.faults.hold(hold)
        start_response(captured["status"], captured["headers"])
        return [result]

    @staticmethod
    def _read_body(environ) -> bytes:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(length) if length > 0 else b""
        # moto reads the body again: put it back or it hangs waiting for bytes already consumed.
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        return body

    # --- control API --------------------------------------------------------------------------------------------
    def _control(self, environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET")
        route = environ.get("PATH_INFO", "")[len("/_lab/"):].strip("/")
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        body = self._read_body(environ)
        try:
            payload = json.loads(body) if body else {}
            if not self.lab.fidelity and route not in PLAIN_ROUTES:
                raise KeyError(f"/_lab/{route} is not served by plain moto (LAB_FIDELITY=off)")
            status, result = 200, control_action(self.lab, method, route, query, payload)
        except KeyError as exc:
            status, result = 404 if route not in CONTROL_ROUTES else 400, {"error": str(exc)}
        except (ValueError, TypeError, LookupError) as exc:
            status, result = 400, {"error": str(exc)}
        except Exception as exc:  # report, never kill the server
            LOG.exception("control %s %s failed", method, route)
            status, result = 500, {"error": f"{type(exc).__name__}: {exc}"}
        data = json.dumps(result, default=str).encode()
        start_response(f"{status} {'OK' if status == 200 else 'Error'}",
                       [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]


PLAIN_ROUTES = ("health", "reset", "shutdown", "state")
# Served by the function of the same name in tests/lab/fidelity/control.py: (lab, method, query and body as one dict).
FIDELITY_ROUTES = ("stuck", "refuse_connections", "outage", "lossy_failover", "server_log", "load_metric_history",
                   "replication_log", "pause_replay", "resume_replay", "delay_replay", "replication_status")
CONTROL_ROUTES = ("health", "calls", "faults", "timing", "reset", "state", "failovers", "shutdown", "wait_jobs",
                  "status_history", "snapshot_create_time") + FIDELITY_ROUTES


def control_action(lab: LabState, method: str, route: str, query: dict, payload: dict):
    """One control API call; JSON in, JSON out."""
    if route == "health":
        health = {"ok": True, "fidelity": lab.fidelity, "pid": os.getpid(), "root": str(lab.root)}
        if lab.ca_cert:
            health["ca_cert"] = str(lab.ca_cert)
        return health
    if route == "calls":
        if method == "DELETE":
            lab.calls.clear()
            return {"cleared": True}
        since = query.get("since")
        return {"calls": lab.calls.entries(action=query.get("action"), since=float(since) if since else None,
                                           service=query.get("service"))}
    if route == "faults":
        if method == "DELETE":
            lab.faults.clear()
            return {"faults": []}
        if method == "POST":
            return {"fault": lab.faults.add(payload), "faults": lab.faults.rules()}
        return {"faults": lab.faults.rules()}
    if route == "timing":
        if method == "POST":
            return lab.timing.update(payload)
        if method == "DELETE":
            lab.timing.reset()
        return lab.timing.as_dict()
    if route == "reset":
        lab.reset()
        return {"reset": True}
    if route == "state":
        return lab.describe()
    if route == "failovers":
        return {"failovers": list(lab.failovers)}
    if route == "wait_jobs":
        lab.wait_jobs(float(payload.get("timeout", 30)))
        return {"jobs": [{"name": j.name, "done": j.done, "error": j.error} for j in lab.jobs]}
    if route == "shutdown":
        threading.Thread(target=lambda: (time.sleep(0.1), os.kill(os.getpid(), signal.SIGTERM)), daemon=True).start()
        return {"stopping": True}
    if route == "status_history":
        from tests.lab.fidelity import status_history
        return status_history.history(lab, method, dict(query, **payload))
    if route == "snapshot_create_time":
        from tests.lab.fidelity import snapshot_copy
        return snapshot_copy.snapshot_create_time(lab, method, dict(query, **payload))
    if route in FIDELITY_ROUTES:
        from tests.lab.fidelity import control as fidelity_control
        return getattr(fidelity_control, route)(lab, method, dict(query, **payload))
    raise KeyError(f"no control route /_lab/{route}")


class LabServer(ThreadedMotoServer):
    """moto's ThreadedMotoServer with the lab's middleware around the dispatcher; loopback only."""

    def __init__(self, lab: LabState, port: int = 0):
        super().__init__(ip_address=HOST, port=port, verbose=False)
        self.lab = lab

    def _server_entry(self) -> None:
        app = LabMiddleware(DomainDispatcherApplication(create_backend_app), self.lab)
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=QuietRequestHandler)
        self._server_ready_event.set()
        self._server.serve_forever()

    @property
    def url(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"


class QuietRequestHandler(MotoRequestHandler):
    def log_request(self, code="-", size="-"):  # the call log records what matters
        pass


def serve(state_dir: pathlib.Path, port: int = 0, fidelity: bool = True, parent_pid: int | None = None) -> None:
    """Run the lab in this process until SIGTERM/SIGINT (or until parent_pid is gone)."""
    state_dir = pathlib.Path(state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(filename=str(state_dir / "lab.log"), level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    lab = LabState(state_dir, fidelity=fidelity)
    if fidelity:
        from tests.lab.fidelity import apply_all
        apply_all()
    server = LabServer(lab, port=port)
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    info = {"url": server.url, "pid": os.getpid(), "fidelity": fidelity, "root": str(state_dir)}
    if lab.ca_cert:
        info["ca_cert"] = str(lab.ca_cert)
    tmp = state_dir / "server.json.tmp"
    tmp.write_text(json.dumps(info))
    tmp.rename(state_dir / "server.json")
    LOG.info("lab serving at %s", server.url)
    try:
        while not stop.wait(0.5):
            if parent_pid and not _alive(parent_pid):
                LOG.info("parent %s is gone: stopping", parent_pid)
                break
    finally:
        try:
            server.stop()
        finally:
            lab.shutdown()
            (state_dir / "server.json").unlink(missing_ok=True)
            LOG.info("lab stopped")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


if __name__ == "__main__":  # pragma: no cover - used through python -m tests.lab serve
    serve(pathlib.Path(sys.argv[1]))

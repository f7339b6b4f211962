# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``python -m tests.lab up|down|status`` (and ``serve``, which ``up`` runs in the background).

The same :func:`main` is the ``dbre-rds-lab`` command of the packaged lab (``lab/``, docs/lab.md "Installing the
lab"): there the lab's tree lies inside the installed package, and the state directory defaults to ``.lab`` in the
current directory instead of the repository's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import pathlib
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = pathlib.Path(__file__).resolve().parents[2]
REGION = "us-east-1"


def state_dir() -> pathlib.Path:
    """``LAB_STATE_DIR``, else ``.lab`` at the repository root in a checkout of the collection, else (the installed
    ``dbre-rds-lab``, whose tree lies in site-packages) ``.lab`` in the current directory."""
    if os.environ.get("LAB_STATE_DIR"):
        return pathlib.Path(os.environ["LAB_STATE_DIR"]).resolve()
    if (REPO / "galaxy.yml").exists():
        return (REPO / ".lab").resolve()
    return (pathlib.Path.cwd() / ".lab").resolve()


def lab_env(url: str, ca_cert: str | None = None) -> dict[str, str]:
    """Environment for boto3, amazon.aws and the collection's modules to talk to the lab.

    ``LAB_CA_CERT`` is the CA of the lab's PostgreSQL server certificates (asked from the running lab unless given);
    plain moto (LAB_FIDELITY=off) has none.
    """
    env = {
        "AWS_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "LAB_URL": url,
    }
    ca_cert = ca_cert or (health(url) or {}).get("ca_cert")
    if ca_cert:
        env["LAB_CA_CERT"] = ca_cert
    return env


def write_env_file(directory: pathlib.Path, url: str) -> pathlib.Path:
    lines = ["# Written by `dbre-rds-lab up` (python -m tests.lab up): source it to point AWS clients at the lab.",
             "unset AWS_PROFILE AWS_SESSION_TOKEN AWS_SECURITY_TOKEN"]
    lines += [f"export {key}={shlex.quote(value)}" for key, value in lab_env(url).items()]
    path = directory / "env.sh"
    path.write_text("\n".join(lines) + "\n")
    return path


def health(url: str, timeout: float = 2.0) -> dict | None:
    try:
        with urllib.request.urlopen(f"{url}/_lab/health", timeout=timeout) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def running_info(directory: pathlib.Path) -> dict | None:
    info_file = directory / "server.json"
    if not info_file.exists():
        return None
    try:
        info = json.loads(info_file.read_text())
    except ValueError:
        return None
    return info if health(info["url"]) else None


def start_daemon(directory: pathlib.Path, *, fidelity: bool = True, parent_pid: int | None = None,
                 timeout: float = 60.0, port: int = 0) -> tuple[subprocess.Popen, dict]:
    """Start ``serve`` as a separate process (its own session) and wait until it answers (on ``port``, 0: any)."""
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)
    (directory / "server.json").unlink(missing_ok=True)
    log = open(directory / "server.out", "ab")
    command = [sys.executable, "-m", "tests.lab", "serve", "--state-dir", str(directory)]
    if not fidelity:
        command.append("--plain")
    if parent_pid:
        command += ["--parent-pid", str(parent_pid)]
    if port:
        command += ["--port", str(port)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    process = subprocess.Popen(command, cwd=str(REPO), stdout=log, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True, env=env)
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the lab exited with {process.returncode}; see {directory / 'server.out'}")
        info = running_info(directory)
        if info:
            return process, info
        time.sleep(0.1)
    process.terminate()
    raise RuntimeError(f"the lab did not answer within {timeout:.0f} s; see {directory / 'server.out'}")


def stop_daemon(directory: pathlib.Path, pid: int | None, timeout: float = 30.0) -> None:
    """Stop the server (it stops its PostgreSQL clusters), then anything left under the state directory."""
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pid = None
    deadline = time.monotonic() + timeout
    while pid and _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid and _alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if directory.exists():
        try:
            from tests.lab.pgbouncer import stop_all as stop_poolers
            stop_poolers(directory)
            from tests.lab.postgres import stop_all
            stop_all(directory)
        except ImportError:
            pass


@contextlib.contextmanager
def benchmark_lab(prefix: str = "dbre-rds-bench-"):
    """The lab URL a benchmark runs against: the running lab of LAB_URL when LAB_REUSE is set, else a lab of its own
    in a fresh state directory, stopped and removed afterwards whatever happens."""
    if os.environ.get("LAB_REUSE") and os.environ.get("LAB_URL"):
        yield os.environ["LAB_URL"]
        return
    directory = pathlib.Path(tempfile.mkdtemp(prefix=prefix))
    process = None
    try:
        os.chmod(directory, 0o755)
        process, info = start_daemon(directory, parent_pid=os.getpid())
        yield info["url"]
    finally:
        stop_daemon(directory, process.pid if process else None)
        shutil.rmtree(directory, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)  # a child of ours that exited stays a zombie until reaped
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie nobody reaps (no init in a container) is gone for our purposes
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def cmd_up(args) -> int:
    directory = state_dir()
    info = running_info(directory)
    if info is None:
        info = start_daemon(directory, fidelity=not args.plain, port=args.port)[1]
    elif args.port and not info["url"].endswith(f":{args.port}"):
        print(f"a lab already runs at {info['url']} from {directory}: stop it first (down) to move it to port "
              f"{args.port}", file=sys.stderr)
        return 1
    (directory / "lab.pid").write_text(f"{info['pid']}\n")
    env_file = write_env_file(directory, info["url"])
    print(f"lab up at {info['url']} (pid {info['pid']}); source {env_file}")
    return 0


def cmd_down(args) -> int:
    directory = state_dir()
    pid = None
    for name in ("lab.pid",):
        try:
            pid = int((directory / name).read_text().strip())
        except (OSError, ValueError):
            pass
    if pid is None:
        info = running_info(directory)
        pid = info["pid"] if info else None
    stop_daemon(directory, pid)
    shutil.rmtree(directory, ignore_errors=True)
    print("lab down")
    return 0


def cmd_status(args) -> int:
    info = running_info(state_dir())
    if not info:
        print("lab down")
        return 1
    with urllib.request.urlopen(f"{info['url']}/_lab/state", timeout=5) as response:
        state = json.loads(response.read())
    print(json.dumps({"url": info["url"], "pid": info["pid"], **state}, indent=2))
    return 0


def cmd_serve(args) -> int:
    from tests.lab.server import serve
    serve(pathlib.Path(args.state_dir or state_dir()), port=args.port, fidelity=not args.plain,
          parent_pid=args.parent_pid)
    # Everything is stopped and flushed; do not wait for idle request threads of the HTTP server.
    logging.shutdown()
    sys.stdout.flush()
    os._exit(0)


def main(argv=None, prog: str = "python -m tests.lab") -> int:
    parser = argparse.ArgumentParser(prog=prog, description="The dbre.rds lab: moto + PostgreSQL.",
                                     epilog="LAB_STATE_DIR sets the state directory (default: .lab).")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the lab in the background and write <state directory>/env.sh")
    up.add_argument("--plain", action="store_true", help="plain moto, without the fidelity patches")
    up.add_argument("--port", type=int, default=0,
                    help="listen on this port of 127.0.0.1 (default: a free one; env.sh and status tell which)")
    sub.add_parser("down", help="stop the lab and every PostgreSQL it started; remove the state directory")
    sub.add_parser("status", help="show whether the lab runs, and what it holds")
    serve = sub.add_parser("serve", help="run the lab in the foreground")
    serve.add_argument("--state-dir")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--plain", action="store_true")
    serve.add_argument("--parent-pid", type=int)
    args = parser.parse_args(argv)
    return {"up": cmd_up, "down": cmd_down, "status": cmd_status, "serve": cmd_serve}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())

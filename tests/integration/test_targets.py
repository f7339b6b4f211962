# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run every integration target (tests/integration/targets/<name>/tasks/main.yml) against the lab.

Targets keep ansible-test's layout, so they read as ordinary Ansible tasks. Each one runs as a role in a play on
localhost, with the lab's environment, ``lab_url`` (the lab's control API, for its call log and faults) and
``output_dir`` as variables. A target fails the test by failing a task: its assertions live in the target.
"""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGETS = ROOT / "tests" / "integration" / "targets"
TARGET_NAMES = sorted(p.name for p in TARGETS.iterdir() if (p / "tasks" / "main.yml").exists()) if TARGETS.exists() else []

PLAY = """---
- name: Integration target {name}
  hosts: localhost
  gather_facts: false
  roles:
    - role: {name}
"""


@pytest.mark.parametrize("target", TARGET_NAMES)
def test_target(target, lab, lab_clean, tmp_path):
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAY.format(name=target))
    env = dict(os.environ)
    env.update(lab.env)
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build"),
        ANSIBLE_ROLES_PATH=f"{TARGETS}:{ROOT / 'roles'}",
        ANSIBLE_PYTHON_INTERPRETER=sys.executable,
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_STDOUT_CALLBACK="default",
        ANSIBLE_CALLBACK_RESULT_FORMAT="yaml",
    )
    command = [
        str(pathlib.Path(sys.executable).parent / "ansible-playbook"),
        str(playbook),
        "-i", "localhost,",
        "-c", "local",
        "-e", f"lab_url={lab.control.url}",
        "-e", f"output_dir={tmp_path}",
    ]
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    sys.stdout.write(result.stdout[-20000:])
    sys.stderr.write(result.stderr[-5000:])
    assert result.returncode == 0, f"integration target {target} failed; see the captured output above"

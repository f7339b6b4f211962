# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tests/tools/guides.py reads the guides as docs/README.md ("How the guides are tested") says."""

import pathlib

import pytest

from tests.tools import guides

MARKDOWN = """# A guide

<!-- runnable -->
```console
$ make lab-up && source .lab/env.sh
$ .venv/bin/ansible-playbook playbooks/failover_drill.yml -e @playbooks/vars/example.yml \\
    -e dbre_rds_max_downtime_seconds=60 --check   # check mode first
PLAY [Failover drill] ***
$ make lab-down
```

<!-- runnable: --check --diff -->
```yaml
- name: Tune
  dbre.rds.rds_param_tune:
    db_parameter_group_name: orders-pg15
  register: tuning
- ansible.builtin.debug:
    var: tuning.changes
```

- an indented fragment, not runnable:

  ```yaml
      - name: Restore
        dbre.rds.rds_restore_drill:
          db_instance_identifier: orders-prod
  ```

<!-- runnable -->

```yaml
- name: a marker with a blank line before the fence marks nothing
```
"""


@pytest.fixture
def guide(tmp_path, monkeypatch):
    monkeypatch.setattr(guides, "REPO", tmp_path)
    path = tmp_path / "guide.md"
    path.write_text(MARKDOWN)
    return path


def test_blocks_markers_and_options(guide):
    found = guides.blocks(guide)
    assert [(block.lang, block.runnable, block.options) for block in found] == [
        ("console", True, []), ("yaml", True, ["--check", "--diff"]), ("yaml", False, []), ("yaml", False, [])]
    assert found[2].text.startswith("- name: Restore\n  dbre.rds.rds_restore_drill:")
    assert guides.stray_markers(guide) == ["guide.md:30: runnable marker not right before a fence"]


def test_console_commands_join_continuations_and_drop_output_and_comments(guide):
    commands = guides.console_commands(guides.blocks(guide)[0].text)
    assert commands == [
        "make lab-up && source .lab/env.sh",
        ".venv/bin/ansible-playbook playbooks/failover_drill.yml -e @playbooks/vars/example.yml "
        "-e dbre_rds_max_downtime_seconds=60 --check",
        "make lab-down",
    ]
    assert [guides.is_lab_lifecycle(command) for command in commands] == [True, False, True]


def test_a_quoted_line_break_continues_the_command():
    text = "$ ansible-playbook x -e '{\"a\": 1,\n    \"b\": 2}'\n$ make lab-down\n"
    assert guides.console_commands(text) == ["ansible-playbook x -e '{\"a\": 1, \"b\": 2}'", "make lab-down"]


@pytest.mark.parametrize("text, expected", [
    ("region: eu-west-1", "region: us-east-1"),
    ("db_instance_identifier: orders-prod", "db_instance_identifier: orders-db"),
    ("report_dir: /var/lib/dbre/drills", "report_dir: /work/drills"),
    ("progress_log: /var/log/dbre/x.log", "progress_log: /work/x.log"),
    ("-e @/tmp/network.yml", "-e @/work/network.yml"),
    ("orders-db stays", "orders-db stays"),
])
def test_substitution_rule(text, expected):
    assert guides.substitute(text, pathlib.Path("/work")) == expected


def test_task_lists_become_a_play_and_plays_stay(guide):
    tasks = guides.as_playbook(guides.blocks(guide)[1].text)
    assert tasks[0]["hosts"] == "localhost" and tasks[0]["tasks"][0]["name"] == "Tune"
    play = [{"name": "p", "hosts": "localhost", "tasks": []}]
    assert guides.as_playbook("- name: p\n  hosts: localhost\n  tasks: []\n") == play
    with pytest.raises(ValueError):
        guides.as_playbook("orders: 1\n")


def test_module_uses_and_registered_results(guide):
    tune = guides.blocks(guide)[1]
    assert guides.task_uses(tune) == [("module", "rds_param_tune", {"db_parameter_group_name": "orders-pg15"})]
    assert guides.registered_uses(tune) == [("rds_param_tune", "tuning", [["changes"]])]


def test_extra_vars_and_paths(guide):
    assert [name for name, _command in guides.extra_vars(guide)] == ["dbre_rds_max_downtime_seconds"]
    assert set(guides.named_paths(guide)) == {"playbooks/failover_drill.yml", "playbooks/vars/example.yml"}

# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rds_failover_test glue: documented options match the argument spec."""

import importlib
import pathlib

import yaml

from ansible_collections.dbre.rds.plugins.modules import rds_failover_test as module

FRAGMENTS = pathlib.Path(module.__file__).resolve().parents[1] / "doc_fragments"


def documented_options():
    doc = yaml.safe_load(module.DOCUMENTATION)
    options = {}
    for fragment in doc["extends_documentation_fragment"]:
        if fragment.startswith("dbre.rds."):
            source = importlib.import_module(f"ansible_collections.dbre.rds.plugins.doc_fragments.{fragment[9:]}")
            options.update(yaml.safe_load(source.ModuleDocFragment.DOCUMENTATION)["options"])
    for name, spec in doc["options"].items():
        options[name] = dict(options.get(name, {}), **spec)
    return options


def test_every_option_is_documented_with_its_type_and_default():
    spec = module.argument_spec()
    documented = documented_options()
    assert sorted(spec) == sorted(documented)
    for name, option in spec.items():
        assert documented[name].get("type", "str") == option.get("type", "str"), name
        assert documented[name].get("default") == option.get("default"), name
        assert documented[name].get("choices") == option.get("choices"), name
        assert bool(documented[name].get("no_log", option.get("no_log"))) == bool(option.get("no_log")), name


def test_password_is_no_log():
    assert module.argument_spec()["login_password"]["no_log"] is True


def test_examples_and_return_parse():
    examples = yaml.safe_load(module.EXAMPLES)
    assert all("name" in task for task in examples)
    assert all(any(key.startswith(("dbre.rds.", "ansible.builtin.")) for key in task) for task in examples)
    returned = yaml.safe_load(module.RETURN)
    for key in ("observed_downtime_seconds", "lost_writes", "read_only_errors", "failover_happened",
                "api_failover_seconds", "first_failed_probe_at", "last_failed_probe_at", "first_success_after_at",
                "probes_sent", "probes_failed", "requested_at", "api_available_at", "failover_started_event_at",
                "failover_completed_event_at", "writer_before", "writer_after", "az_before", "az_after"):
        assert key in returned["measurements"]["contains"], key

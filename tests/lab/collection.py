# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's own module_utils, for the lab: one source of truth for the tables both use (instance class
memory, RDS's memory reserve, event categories). Each of these files says in its header that it imports only the
standard library.

The lab server runs with the repository on PYTHONPATH only. With ``make collection-link`` done
(.build/ansible_collections/dbre/rds -> the repository) they are imported as the collection's modules; without it
they are loaded from their files (they import only the standard library)."""

from __future__ import annotations

import importlib
import importlib.util
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
BUILD = REPO / ".build"
MODULE_UTILS = ("event_categories", "instance_classes")


def _load(name: str):
    if (BUILD / "ansible_collections" / "dbre" / "rds").exists():
        if str(BUILD) not in sys.path:
            sys.path.append(str(BUILD))
        return importlib.import_module(f"ansible_collections.dbre.rds.plugins.module_utils.{name}")
    spec = importlib.util.spec_from_file_location(f"dbre_rds_lab_{name}", REPO / "plugins" / "module_utils" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


event_categories = _load("event_categories")
instance_classes = _load("instance_classes")

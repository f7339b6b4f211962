# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's own module_utils, for the lab: one source of truth for the tables both use (instance class
memory, RDS's memory reserve, event categories). The lab server runs with the repository on PYTHONPATH only, so
this puts ``.build`` (``make collection-link``: .build/ansible_collections/dbre/rds -> the repository) there too."""

from __future__ import annotations

import pathlib
import sys

BUILD = pathlib.Path(__file__).resolve().parents[2] / ".build"
if not (BUILD / "ansible_collections" / "dbre" / "rds").exists():
    raise ImportError(f"{BUILD}/ansible_collections/dbre/rds is missing: run `make collection-link`")
if str(BUILD) not in sys.path:
    sys.path.append(str(BUILD))

# pylint: disable=wrong-import-position
from ansible_collections.dbre.rds.plugins.module_utils import event_subscriptions, instance_classes, param_tuning  # noqa: E402

__all__ = ["event_subscriptions", "instance_classes", "param_tuning"]

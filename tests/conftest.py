# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Test-wide setup: import the collection as ansible_collections.dbre.rds and load the lab's fixtures."""

import importlib.util
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
COLLECTIONS = ROOT / ".build"
if not (COLLECTIONS / "ansible_collections" / "dbre" / "rds").exists():
    (COLLECTIONS / "ansible_collections" / "dbre").mkdir(parents=True, exist_ok=True)
    (COLLECTIONS / "ansible_collections" / "dbre" / "rds").symlink_to("../../..")
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))

pytest_plugins = ["tests.lab.fixtures"] if importlib.util.find_spec("tests.lab.fixtures") else []

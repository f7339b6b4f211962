# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module_utils the lab imports outside Ansible import only the standard library, and say so in their header."""
import ast
import pathlib
import sys

import pytest

from tests.lab.collection import MODULE_UTILS

ROOT = pathlib.Path(__file__).resolve().parents[4]


@pytest.mark.parametrize("name", MODULE_UTILS)
def test_lab_shared_module_utils_import_only_the_standard_library(name):
    path = ROOT / "plugins" / "module_utils" / f"{name}.py"
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported - set(sys.stdlib_module_names)
    assert "Standard library only" in ast.get_docstring(tree)

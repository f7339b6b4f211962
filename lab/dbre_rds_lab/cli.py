# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``dbre-rds-lab up|down|status``: the lab's own command line (``tests.lab.__main__.main``), wherever the lab lies.

Installed (pip), the lab's tree is ``dbre_rds_lab/tree`` beside this file (setup.py copies it there); in a checkout
of dbre.rds (``PYTHONPATH=lab python -m dbre_rds_lab``, as the Makefile runs it) it is the repository itself. Either
way the tree goes first on ``sys.path``, so ``tests.lab`` is the lab's and never a ``tests`` package of the caller's.
"""

from __future__ import annotations

import pathlib
import sys

PACKAGE = pathlib.Path(__file__).resolve().parent


def lab_tree() -> pathlib.Path:
    """The folder that holds ``tests/lab``: the installed copy, else the checkout this file lies in."""
    for root in (PACKAGE / "tree", PACKAGE.parents[1]):
        if (root / "tests" / "lab" / "__main__.py").exists():
            return root
    raise SystemExit(f"dbre-rds-lab: the lab's code is missing under {PACKAGE / 'tree'}: reinstall dbre-rds-lab")


def main(argv=None) -> int:
    root = str(lab_tree())
    if sys.path[:1] != [root]:
        sys.path.insert(0, root)
    from tests.lab.__main__ import main as lab_main
    return lab_main(argv, prog="dbre-rds-lab")


if __name__ == "__main__":
    sys.exit(main())

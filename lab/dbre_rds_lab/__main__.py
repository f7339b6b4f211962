# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``python -m dbre_rds_lab``: the ``dbre-rds-lab`` command (the repository's Makefile runs it this way)."""

import sys

from dbre_rds_lab.cli import main

sys.exit(main())

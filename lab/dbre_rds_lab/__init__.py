# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The dbre.rds lab, packaged: ``dbre-rds-lab up|down|status`` (:mod:`dbre_rds_lab.cli`)."""

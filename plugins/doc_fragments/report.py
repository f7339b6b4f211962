# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  report_dir:
    description:
      - Directory on the managed node where the report is written as JSON, Markdown and JUnit XML, created if missing.
      - The same figures are returned in the module result whether or not a report is written.
    type: path
  report_name:
    description:
      - File name stem of the report files. Defaults to C(<drill>-<target>-<UTC timestamp>).
      - A plain name of letters, digits, C(.), C(_) and C(-), with no C(/) and no C(..), since the files always go to
        O(report_dir). Other names are refused before the module does anything.
    type: str
"""

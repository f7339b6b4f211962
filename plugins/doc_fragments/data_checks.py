# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # The SQL data checks of the drills (module_utils/restore_drill.py checks_argument_spec and evaluate_check).
    DOCUMENTATION = r"""
options:
  checks:
    description:
      - SQL checks run against the database the drill validates (the module's description says which). Each returns
        a value (its first row's first column) or rows; a failed check fails the drill's verdict.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - Name of the check, unique in the drill; the report names failed checks by it.
        type: str
        required: true
      sql:
        description:
          - The query.
        type: str
        required: true
      expect:
        description:
          - What the query must return. Exactly one of O(checks[].expect.equals), O(checks[].expect.regex),
            O(checks[].expect.rows), or O(checks[].expect.min) and/or O(checks[].expect.max).
        type: dict
        required: true
        suboptions:
          equals:
            description:
              - The value must equal this (numbers compare as numbers, anything else as text).
            type: raw
          min:
            description:
              - The value must be a number of at least this.
            type: raw
          max:
            description:
              - The value must be a number of at most this.
            type: raw
          regex:
            description:
              - The value, as text, must match this Python regular expression (searched, not anchored).
            type: str
          rows:
            description:
              - The query must return exactly this many rows.
            type: int
"""

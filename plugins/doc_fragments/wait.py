# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  wait_timeout:
    description:
      - How many seconds the module waits, in all, for RDS to reach the state it needs.
      - When the deadline passes the module fails and names the phase that was still waiting.
    type: int
    default: 1800
  poll_interval:
    description:
      - Seconds between two describe calls while waiting.
    type: float
    default: 5.0
"""

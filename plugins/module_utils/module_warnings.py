# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way dbre.rds modules warn, ready for the next ansible-core.

amazon.aws 10.x's ``AnsibleAWSModule.warn`` keeps every warning and passes the list to ``exit_json`` /
``fail_json`` as ``warnings=``, which ansible-core 2.19 reports as deprecated (removed in 2.23). Sending the warning
to the wrapped ``AnsibleModule`` alone shows it to the user once, the way ansible-core expects.
"""

from __future__ import annotations


def warn(module, message):
    """Show ``message`` as a warning of this task (AnsibleAWSModule or plain AnsibleModule)."""
    target = getattr(module, "_module", None) or module
    target.warn(message)

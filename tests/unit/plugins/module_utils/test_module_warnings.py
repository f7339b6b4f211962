# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from ansible_collections.dbre.rds.plugins.module_utils.module_warnings import warn


class Plain:
    def __init__(self):
        self.warnings = []

    def warn(self, message):
        self.warnings.append(message)


class AwsWrapper(Plain):
    """Like amazon.aws's AnsibleAWSModule: its own warn would also hand the list to exit_json."""

    def __init__(self):
        super().__init__()
        self._module = Plain()


def test_warnings_go_to_the_wrapped_module_only():
    module = AwsWrapper()
    warn(module, "careful")
    assert module._module.warnings == ["careful"] and module.warnings == []


def test_plain_modules_warn_themselves():
    module = Plain()
    warn(module, "careful")
    assert module.warnings == ["careful"]

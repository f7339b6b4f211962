# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import aws_client
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import rds_client


class FakeModule:
    _name = "dbre.rds.rds_failover_test"

    def __init__(self):
        self.calls = []

    def client(self, service, retry_decorator=None, **extra):
        self.calls.append((service, retry_decorator, extra))
        return "client"


def test_clients_retry_and_name_the_module_in_the_user_agent():
    module = FakeModule()
    assert rds_client(module) == "client"
    assert aws_client(module, "cloudwatch") == "client"
    (service, decorator, extra), (service2, decorator2, extra2) = module.calls
    assert (service, service2) == ("rds", "cloudwatch")
    assert callable(decorator) and callable(decorator2)
    assert extra["config"].user_agent_extra == "dbre.rds/rds_failover_test"

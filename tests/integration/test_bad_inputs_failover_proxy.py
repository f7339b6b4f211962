# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rds_failover_test's probe_endpoint refuses, before any change, a proxy that is not there, a proxy that does not
lead to the drilled instance, a read-only endpoint for write probes, and options that contradict it. All cases run
in one playbook against one Multi-AZ instance with two proxies (one in front of it, one in front of nothing). The
other option combinations are table-driven in tests/unit/plugins/module_utils/test_failover_probe_endpoint.py."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from bad_inputs import assert_all_refused  # noqa: E402
from bad_inputs import run_module_cases  # noqa: E402
from failover_support import PASSWORD  # noqa: E402
from failover_support import create_instance  # noqa: E402
from failover_support import instance_available  # noqa: E402
from failover_support import wait_for  # noqa: E402
from proxy_support import create_proxy  # noqa: E402
from proxy_support import master_secret  # noqa: E402
from proxy_support import proxy_network  # noqa: E402

MULTI, PROXY, EMPTY_PROXY, READ_ONLY = "bp-multi", "bp-proxy", "bp-empty-proxy", "bp-proxy-ro"
LOGIN = {"login_user": "master", "login_password": PASSWORD}


def case(case_id, expect, **args):
    args = dict(LOGIN, **dict({"db_instance_identifier": MULTI}, **args))
    return {"id": case_id, "args": {k: v for k, v in args.items() if v is not None},
            "expect": expect if isinstance(expect, list) else [expect]}


CASES = [
    case("unknown-proxy", ["refused before any change", "probe_endpoint bp-nowhere is neither an RDS Proxy nor an "
                           "RDS Proxy endpoint in this region"], probe_endpoint="bp-nowhere"),
    case("proxy-of-nothing", ["refused before any change", f"probe_endpoint {EMPTY_PROXY} does not lead to DB "
                              f"instance {MULTI}", "targets nothing", f"register {MULTI} with this proxy"],
         probe_endpoint=EMPTY_PROXY),
    case("read-only-endpoint-for-writes", [f"probe_endpoint {READ_ONLY} is a read-only proxy endpoint",
                                           "set probe_mode=read"], probe_endpoint=READ_ONLY),
    case("bad-name", "probe_endpoint 'bp_proxy' is not a valid RDS identifier", probe_endpoint="bp_proxy"),
    case("without-credentials", "probe_endpoint names the RDS Proxy endpoint the probes connect through, so it needs "
         "probing", probe_endpoint=PROXY, login_user=None, login_password=None),
    case("with-login-host", "probe_endpoint and login_host both say where the probes connect",
         probe_endpoint=PROXY, login_host="127.0.0.1"),
    case("proxy-of-another-target", [f"probe_endpoint {PROXY} does not lead to DB instance bp-nowhere",
                                     "does not exist"], probe_endpoint=PROXY, db_instance_identifier="bp-nowhere"),
    dict(case("check-mode-unknown-proxy", "is neither an RDS Proxy nor an RDS Proxy endpoint",
              probe_endpoint="bp-nowhere"), check_mode=True),
]


def test_bad_probe_endpoints_are_refused_before_any_change(lab):
    lab.control.reset()
    rds = lab.client("rds")
    try:
        create_instance(rds, MULTI, True)
        wait_for(lambda: instance_available(rds, MULTI), timeout=120, what=f"{MULTI} available")
        subnets = proxy_network(lab)
        secret_arn, role_arn = master_secret(lab, "bp-master")
        create_proxy(lab, PROXY, subnets, secret_arn, role_arn, instance=MULTI, endpoints=[(READ_ONLY, "READ_ONLY")])
        create_proxy(lab, EMPTY_PROXY, subnets, secret_arn, role_arn)
        lab.control.wait_jobs()
        results = assert_all_refused(lab, run_module_cases, "dbre.rds.rds_failover_test", CASES)
        # A missing instance is named, and the proxy in front of another instance too, in the same refusal.
        assert f"targets RDS_INSTANCE {MULTI}" in results["proxy-of-another-target"]["msg"]
    finally:
        lab.control.reset()

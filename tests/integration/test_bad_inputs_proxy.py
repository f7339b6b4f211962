# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_proxy refuses bad inputs before its first mutating call, naming the option and the fix.

Every case runs as a task of one playbook (tests/integration/bad_inputs.py) against a lab holding an RDS PostgreSQL
instance, a secret, and a proxy ``bad-proxy-old`` (made with boto3) with a read-only endpoint. For each case the error
must name the problem, the lab's call log must show only reads, and the lab's resources must be as before; afterwards
the lab still holds exactly the one proxy, unchanged.
"""

import json

import pytest

from tests.integration.bad_inputs import assert_all_refused
from tests.integration.bad_inputs import run_module_cases
from tests.lab.clients import MASTER_PASSWORD, MASTER_USER, create_postgres

pytestmark = pytest.mark.lab

MODULE = "dbre.rds.rds_proxy"
INSTANCE = "bad-proxy-db"
EXISTING, EXISTING_READER = "bad-proxy-old", "bad-proxy-old-ro"
ROLE = "arn:aws:iam::123456789012:role/bad-proxy-secrets"


def _proxy_state(rds):
    proxies = rds.describe_db_proxies()["DBProxies"]
    return dict(
        proxies=sorted((p["DBProxyName"], p["RequireTLS"], tuple(sorted(p["VpcSubnetIds"]))) for p in proxies),
        endpoints=sorted((e["DBProxyEndpointName"], e["TargetRole"])
                         for p in proxies for e in rds.describe_db_proxy_endpoints(DBProxyName=p["DBProxyName"])
                         ["DBProxyEndpoints"]),
        pools=[rds.describe_db_proxy_target_groups(DBProxyName=p["DBProxyName"])["TargetGroups"][0]
               ["ConnectionPoolConfig"] for p in proxies],
        targets=sorted(t["RdsResourceId"] for p in proxies
                       for t in rds.describe_db_proxy_targets(DBProxyName=p["DBProxyName"])["Targets"]),
    )


@pytest.fixture(scope="module")
def world(lab):
    """The resources the cases name, made before the cases so the cases' own call log holds only what they did."""
    lab.control.reset()
    rds = lab.client("rds")
    create_postgres(rds, INSTANCE)
    subnets = sorted(s["SubnetId"] for s in lab.client("ec2").describe_subnets()["Subnets"] if s.get("DefaultForAz"))
    secret_arn = lab.client("secretsmanager").create_secret(
        Name="bad-proxy-master",
        SecretString=json.dumps({"username": MASTER_USER, "password": MASTER_PASSWORD}))["ARN"]
    rds.create_db_proxy(DBProxyName=EXISTING, EngineFamily="POSTGRESQL", RoleArn=ROLE, VpcSubnetIds=subnets[:2],
                        RequireTLS=True, Auth=[{"AuthScheme": "SECRETS", "SecretArn": secret_arn,
                                                "IAMAuth": "DISABLED"}])
    rds.create_db_proxy_endpoint(DBProxyName=EXISTING, DBProxyEndpointName=EXISTING_READER,
                                 VpcSubnetIds=subnets[:2], TargetRole="READ_ONLY")
    before = _proxy_state(rds)
    yield dict(subnets=subnets, secret_arn=secret_arn, before=before)
    lab.control.reset()


def cases(world):
    secret, subnets = world["secret_arn"], world["subnets"]
    base = dict(name="bad-proxy-new", role_arn=ROLE, auth=[{"secret_arn": secret}], vpc_subnet_ids=subnets[:2],
                db_instance_identifier=INSTANCE)

    def proxy(**changes):
        """The base arguments with ``changes``; an option changed to None is left out, as a user would."""
        args = dict(base, **changes)
        return {key: value for key, value in args.items() if value is not None}

    def pool(**pool_options):
        return proxy(target_group=pool_options)

    # Problems of one option alone are unit-tested (tests/unit/plugins/module_utils/test_rds_proxy.py); here each
    # kind of refusal runs once as a user meets it, several option problems in one case where they are listed at once.
    return [
        # what only AWS can tell: the secret and the target
        {"id": "unknown_secret", "args": proxy(auth=[{"secret_arn": secret + "x"}]),
         "expect": [f"auth[0].secret_arn {secret}x: no such secret in Secrets Manager", "create the secret"]},
        {"id": "missing_instance", "args": proxy(db_instance_identifier="bad-proxy-nowhere"),
         "expect": ["db_instance_identifier 'bad-proxy-nowhere': no DB instance of that name exists"]},
        {"id": "missing_cluster", "args": proxy(db_instance_identifier=None, db_cluster_identifier="bad-proxy-none"),
         "expect": ["db_cluster_identifier 'bad-proxy-none': no DB cluster of that name exists"]},
        # options
        {"id": "mysql_family", "args": proxy(engine_family="MYSQL"),
         "expect": ["engine_family 'MYSQL' is not supported", "this collection manages PostgreSQL proxies"]},
        {"id": "max_connections_zero", "args": pool(max_connections_percent=0),
         "expect": ["target_group.max_connections_percent must be a whole number from 1 to 100", "got 0"]},
        {"id": "percentages_over_100_and_negative_timeouts",
         "args": dict(pool(max_connections_percent=101, max_idle_connections_percent=150,
                           connection_borrow_timeout=-1), idle_client_timeout=-30),
         "expect": ["target_group.max_connections_percent must be a whole number from 1 to 100 (percent), got 101",
                    "target_group.max_idle_connections_percent must be a whole number from 0 to 100 (percent), got 150",
                    "connection_borrow_timeout must be a whole number from 0 to 3600 seconds, got -1",
                    "idle_client_timeout must be a whole number from 1 to 28800 seconds, got -30"]},
        {"id": "name_double_hyphen", "args": proxy(name="bad--proxy"),
         "expect": ["name 'bad--proxy' is not a valid RDS identifier", "two hyphens in a row"]},
        {"id": "missing_role", "args": proxy(role_arn=None),
         "expect": ["role_arn is required with state=present", "secretsmanager:GetSecretValue"]},
        {"id": "read_only_endpoint_on_an_instance", "args": proxy(endpoints=[{"name": "bad-proxy-new-ro"}]),
         "expect": ["endpoint bad-proxy-new-ro is READ_ONLY, but the proxy's target is the DB instance " + INSTANCE,
                    "give it target_role READ_WRITE"]},
        # changes RDS cannot make to the existing proxy
        {"id": "existing_proxy_new_subnets",
         "args": proxy(name=EXISTING, vpc_subnet_ids=[subnets[0], subnets[2]]),
         "expect": ["vpc_subnet_ids cannot change on an existing proxy", "state=absent"]},
        {"id": "existing_endpoint_new_role",
         "args": proxy(name=EXISTING, endpoints=[{"name": EXISTING_READER, "target_role": "READ_WRITE"}]),
         "expect": [f"endpoint {EXISTING_READER}: target_role cannot change from READ_ONLY"]},
        # in check mode too
        {"id": "check_mode_unknown_secret", "args": proxy(auth=[{"secret_arn": secret + "y"}]), "check_mode": True,
         "expect": ["no such secret in Secrets Manager"]},
    ]


def test_bad_inputs_are_refused_before_any_change(lab, world):
    refused = cases(world)
    results = assert_all_refused(lab, run_module_cases, MODULE, refused, secrets=(MASTER_PASSWORD,))
    assert all(not r["msg"].startswith(("Unexpected", "MODULE FAILURE")) for r in results.values())
    assert all("nothing was changed" in r["msg"] for r in results.values())
    # the proxies, their endpoints, pools and targets are as the fixture left them: no proxy created or changed
    assert _proxy_state(lab.client("rds")) == world["before"]

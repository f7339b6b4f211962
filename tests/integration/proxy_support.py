# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An RDS Proxy in front of a lab instance, made with boto3 as a fixture would: network, master secret, IAM role,
proxy, target registration and extra endpoints, then waiting until the lab says they are available."""

import json

from failover_support import PASSWORD
from failover_support import wait_for

TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "rds.amazonaws.com"},
                                                 "Action": "sts:AssumeRole"}]}


def proxy_network(lab, cidr="10.88"):
    """Two subnets in two zones of a new VPC (the proxy's VpcSubnetIds)."""
    ec2 = lab.client("ec2")
    vpc = ec2.create_vpc(CidrBlock=f"{cidr}.0.0/16")["Vpc"]["VpcId"]
    return [ec2.create_subnet(VpcId=vpc, CidrBlock=f"{cidr}.{i}.0/24", AvailabilityZone=f"us-east-1{zone}")
            ["Subnet"]["SubnetId"] for i, zone in enumerate("ab")]


def master_secret(lab, name, username="master", password=PASSWORD):
    """A Secrets Manager secret holding the master login, and an IAM role allowed to read exactly it."""
    secret_arn = lab.client("secretsmanager").create_secret(
        Name=name, SecretString=json.dumps({"username": username, "password": password}))["ARN"]
    iam = lab.client("iam")
    role_arn = iam.create_role(RoleName=f"{name}-reader", AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]
    iam.put_role_policy(RoleName=f"{name}-reader", PolicyName="read-master-secret", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": secret_arn}]}))
    return secret_arn, role_arn


def create_proxy(lab, name, subnets, secret_arn, role_arn, instance=None, endpoints=(), require_tls=True):
    """A POSTGRESQL proxy (registered with ``instance`` when given) and its extra endpoints ``[(name, role)]``."""
    rds = lab.client("rds")
    rds.create_db_proxy(DBProxyName=name, EngineFamily="POSTGRESQL", RoleArn=role_arn, VpcSubnetIds=subnets,
                        RequireTLS=require_tls,
                        Auth=[{"AuthScheme": "SECRETS", "SecretArn": secret_arn, "IAMAuth": "DISABLED"}])
    wait_for(lambda: rds.describe_db_proxies(DBProxyName=name)["DBProxies"][0]["Status"] == "available",
             timeout=60, what=f"proxy {name} available")
    if instance:
        rds.register_db_proxy_targets(DBProxyName=name, DBInstanceIdentifiers=[instance])
        wait_for(lambda: all(t["TargetHealth"]["State"] == "AVAILABLE"
                             for t in rds.describe_db_proxy_targets(DBProxyName=name)["Targets"]),
                 timeout=60, what=f"the target of proxy {name} available")
    for endpoint, role in endpoints:
        rds.create_db_proxy_endpoint(DBProxyName=name, DBProxyEndpointName=endpoint, VpcSubnetIds=subnets,
                                     TargetRole=role)
        wait_for(lambda endpoint=endpoint: rds.describe_db_proxy_endpoints(DBProxyEndpointName=endpoint)[
            "DBProxyEndpoints"][0]["Status"] == "available", timeout=60, what=f"proxy endpoint {endpoint} available")
    return rds.describe_db_proxies(DBProxyName=name)["DBProxies"][0]

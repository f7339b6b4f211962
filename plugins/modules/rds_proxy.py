#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rds_proxy
short_description: Create, update and delete an Amazon RDS Proxy for PostgreSQL, its pool, target and endpoints
version_added: "0.2.0"
description:
  - Manages one RDS Proxy for PostgreSQL as a declaration, the proxy itself (the Secrets Manager secrets it logs in
    with, IAM authentication, TLS, idle timeout, debug logging, network, tags), the connection pool of its default
    target group, the one DB instance or Aurora cluster registered as its target, and its extra endpoints.
  - Every option is checked before the first change. The name follows RDS's rule, numbers their ranges, each secret
    in O(auth) must exist in Secrets Manager, the target must be an existing PostgreSQL instance or cluster, and
    O(engine_family) must be V(POSTGRESQL). One bad input fails the run with every problem listed and nothing
    changed. Changes RDS cannot make (the subnets of an existing proxy or endpoint, an endpoint's role) are refused
    the same way, with what to do instead.
  - Options that are omitted leave that part of an existing proxy as it is, except those with a default
    (O(require_tls), O(idle_client_timeout), O(debug_logging) and the keys of a given O(target_group)).
  - Creating the proxy, registering its target and creating or deleting an endpoint are sent once. On a throttle or a
    lost answer the module first describes the proxy and sends the call again only when it did not take effect.
  - The module tags the proxy and every endpoint it creates with C(dbre:managed-by=rds_proxy), keeps that tag
    whatever O(purge_tags) says, and deletes nothing without it. Right before each deletion it reads the tags again.
    An endpoint without the tag is left in place, listed in RV(skipped_endpoints) and warned about. O(state=absent)
    of a proxy without the tag (or with an endpoint without it, since RDS deletes a proxy's endpoints with it) fails
    and changes nothing; add the tag to what is yours, then run again.
  - A second run with the same options changes nothing and makes no mutating call. In check mode only describe calls
    are made and the result shows what the run would do.
author:
  - dbre.rds maintainers (@dbre-rds)
options:
  name:
    description:
      - The proxy's name (C(DBProxyName)). 1 to 60 letters, digits and hyphens, starting with a letter, with no
        trailing or double hyphen.
    type: str
    required: true
    aliases: [db_proxy_name]
  state:
    description:
      - V(present) creates or updates the proxy, V(absent) deletes its extra endpoints, then the proxy. V(absent)
        is refused for a proxy (or an endpoint of it) without the C(dbre:managed-by=rds_proxy) tag.
    type: str
    choices: [present, absent]
    default: present
  engine_family:
    description:
      - The proxy's engine family. This collection manages PostgreSQL proxies, so anything but V(POSTGRESQL) is
        refused.
    type: str
    default: POSTGRESQL
  auth:
    description:
      - The database users the proxy logs in as, one Secrets Manager secret each (the secret holds C(username) and
        C(password)). Compared as a set, by secret ARN.
      - Required to create the proxy; omit it to leave an existing proxy's authentication as it is.
    type: list
    elements: dict
    suboptions:
      secret_arn:
        description:
          - ARN of the secret. It must exist; the module checks with Secrets Manager's C(DescribeSecret).
        type: str
        required: true
      iam_auth:
        description:
          - V(REQUIRED) makes clients log in with an IAM authentication token instead of the password.
        type: str
        choices: [DISABLED, REQUIRED]
        default: DISABLED
      client_password_auth_type:
        description:
          - How clients authenticate with a password to the proxy.
        type: str
        choices: [POSTGRES_SCRAM_SHA_256, POSTGRES_MD5]
        default: POSTGRES_SCRAM_SHA_256
      description:
        description:
          - A description of this user's access.
        type: str
  role_arn:
    description:
      - ARN of the IAM role the proxy assumes to read its secrets (it needs C(secretsmanager:GetSecretValue) on them,
        and C(kms:Decrypt) when they are encrypted with a customer managed key). Required with O(state=present).
    type: str
  require_tls:
    description:
      - Whether clients must connect with TLS.
    type: bool
    default: true
  idle_client_timeout:
    description:
      - Seconds a client connection may stay idle before the proxy closes it, from 1 to 28800.
    type: int
    default: 1800
  debug_logging:
    description:
      - Whether the proxy logs detailed connection information (including SQL text) to CloudWatch Logs. Leave it off
        except while investigating, since the logs may hold sensitive data.
    type: bool
    default: false
  vpc_subnet_ids:
    description:
      - Subnets of the proxy, in at least two Availability Zones of the target's VPC. Required to create the proxy;
        RDS cannot change them afterwards, so a different set on an existing proxy is refused.
    type: list
    elements: str
  vpc_security_group_ids:
    description:
      - Security groups of the proxy, compared as a set. On creation RDS uses the VPC's default group when omitted;
        omit it to leave an existing proxy's groups as they are.
    type: list
    elements: str
  tags:
    description:
      - Tags of the proxy, as a dict. The marker C(dbre:managed-by=rds_proxy) is added on creation and kept; give it
        here to adopt an existing proxy that is yours (any other value of that key is refused).
    type: dict
    aliases: [resource_tags]
  purge_tags:
    description:
      - Remove tags that are not in O(tags). Has no effect when O(tags) is omitted.
    type: bool
    default: true
  target_group:
    description:
      - The connection pool of the proxy's default target group. Omit it to leave the pool as it is (a new proxy
        then gets RDS's defaults).
      - The defaults below are AWS's own. They do not yet follow the connection budget of the collection's capacity
        module (issue 17 has not landed); size them from the target's C(max_connections) and your clients.
    type: dict
    suboptions:
      max_connections_percent:
        description:
          - The most connections the proxy opens to the target, as a percentage of the target's C(max_connections),
            from 1 to 100.
        type: int
        default: 100
      max_idle_connections_percent:
        description:
          - How many idle connections the proxy keeps open, as a percentage of the target's C(max_connections), from
            0 to 100 and at most O(target_group.max_connections_percent).
        type: int
        default: 50
      connection_borrow_timeout:
        description:
          - Seconds a client waits for a pooled connection when all are in use, from 0 to 3600.
        type: int
        default: 120
      init_query:
        description:
          - SQL the proxy runs on each new server connection, for example C(SET timezone = 'UTC'). An empty string
            removes it; omit it to leave it as it is.
        type: str
      session_pinning_filters:
        description:
          - Operations that do not pin a client to its server connection. The only filter is
            V(EXCLUDE_VARIABLE_SETS). An empty list removes them; omit it to leave them as they are.
        type: list
        elements: str
  db_instance_identifier:
    description:
      - The RDS for PostgreSQL DB instance the proxy connects to. Mutually exclusive with O(db_cluster_identifier).
      - When the proxy has another target registered, that one is deregistered and this one registered. Omit both to
        leave the registration as it is.
    type: str
  db_cluster_identifier:
    description:
      - The Aurora PostgreSQL DB cluster the proxy connects to (its writer, and its readers through V(READ_ONLY)
        endpoints). Mutually exclusive with O(db_instance_identifier).
    type: str
  endpoints:
    description:
      - The proxy's extra endpoints, as a declaration. Endpoints of this proxy that are not listed are deleted; an
        empty list deletes them all. Only endpoints with the C(dbre:managed-by=rds_proxy) tag (which the module puts
        on those it creates) are deleted; others are left in place and listed in RV(skipped_endpoints). The proxy's
        default endpoint (read-write, created with the proxy) is never touched. Omit the option to leave the
        endpoints as they are.
      - RDS cannot change an endpoint's role or subnets; a different value for an existing endpoint is refused, so give
        the endpoint a new name instead.
      - A V(READ_ONLY) endpoint leads to the readers of an Aurora cluster; in front of a DB instance every request
        through it fails, so it is refused while the target is (or becomes) a DB instance.
    type: list
    elements: dict
    suboptions:
      name:
        description:
          - The endpoint's name (C(DBProxyEndpointName)), following the same rule as O(name).
        type: str
        required: true
      target_role:
        description:
          - V(READ_ONLY) connects to the readers of an Aurora cluster (refused in front of a DB instance), V(READ_WRITE)
            to the writer.
        type: str
        choices: [READ_WRITE, READ_ONLY]
        default: READ_ONLY
      vpc_subnet_ids:
        description:
          - Subnets of the endpoint; the proxy's subnets when omitted.
        type: list
        elements: str
      vpc_security_group_ids:
        description:
          - Security groups of the endpoint, compared as a set. On creation RDS uses the VPC's default group when
            omitted.
        type: list
        elements: str
  wait:
    description:
      - Wait until the proxy, its extra endpoints and its targets are available (with O(state=absent), until the
        proxy is gone).
      - Whatever this says, the proxy is awaited (while C(creating) or C(modifying)) before its target group, target
        and endpoints are changed, since RDS refuses those calls until it is available.
    type: bool
    default: true
  wait_timeout:
    description:
      - How many seconds the module waits, in all, for RDS to reach the state it needs. When the deadline passes the
        module fails and names what was still not ready.
    type: int
    default: 900
  poll_interval:
    description:
      - Seconds between two describe calls while waiting.
    type: float
    default: 5.0
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
notes:
  - "IAM actions: C(rds:DescribeDBProxies), C(rds:DescribeDBProxyTargetGroups), C(rds:DescribeDBProxyTargets),
    C(rds:DescribeDBProxyEndpoints), C(rds:CreateDBProxy), C(rds:ModifyDBProxy), C(rds:DeleteDBProxy),
    C(rds:ModifyDBProxyTargetGroup), C(rds:RegisterDBProxyTargets), C(rds:DeregisterDBProxyTargets),
    C(rds:CreateDBProxyEndpoint), C(rds:ModifyDBProxyEndpoint), C(rds:DeleteDBProxyEndpoint),
    C(rds:ListTagsForResource), C(rds:AddTagsToResource), C(rds:RemoveTagsFromResource), C(rds:DescribeDBInstances)
    or C(rds:DescribeDBClusters) for the target, C(secretsmanager:DescribeSecret) on the secrets, and
    C(iam:PassRole) on O(role_arn)."
  - Changing the target sends C(DeregisterDBProxyTargets), then C(RegisterDBProxyTargets). Between the two calls
    (and when the second fails) the proxy has no target and refuses client connections; run again to register it.
  - The IAM role in O(role_arn) must exist some seconds before the proxy is created on AWS (IAM is eventually
    consistent, and RDS refuses a role it cannot see yet). Its trust policy should let C(rds.amazonaws.com) assume it
    only for your account, with a C(StringEquals) condition on C(aws:SourceAccount) set to your account ID.
  - A proxy whose O(auth) is the master user's secret makes every client of the proxy the master user. Give the proxy
    the secrets of application logins (for example those dbre.rds.rds_users manages) instead.
  - Clients connect to RV(proxy.endpoint) (or an endpoint's RV(endpoints[].endpoint)) on port 5432 with the
    user name and password of a secret in O(auth), or with an IAM token when its O(auth[].iam_auth=REQUIRED). With
    O(require_tls=true), use C(sslmode=verify-full) and Amazon's root CA.
seealso:
  - module: amazon.aws.rds_instance
  - module: amazon.aws.rds_cluster
  - module: community.aws.secretsmanager_secret
  - module: amazon.aws.iam_role
  - name: Amazon RDS Proxy
    description: How the proxy pools connections, authenticates and fails over.
    link: https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-proxy.html
"""

EXAMPLES = r"""
- name: A proxy for an RDS PostgreSQL instance, with TLS and a smaller pool
  dbre.rds.rds_proxy:
    name: orders-proxy
    auth:
      - secret_arn: "{{ orders_app_secret.secret.arn }}"
    role_arn: arn:aws:iam::123456789012:role/orders-proxy-secrets
    vpc_subnet_ids: [subnet-0a1b2c3d, subnet-1a2b3c4d]
    vpc_security_group_ids: [sg-0123456789abcdef0]
    db_instance_identifier: orders-db
    target_group:
      max_connections_percent: 80
      max_idle_connections_percent: 20
    tags:
      team: dbre
  register: orders_proxy

- name: Connect the application to the proxy
  ansible.builtin.debug:
    msg: "host={{ orders_proxy.proxy.endpoint }} port=5432 sslmode=verify-full"

- name: An Aurora cluster's proxy with IAM authentication and a read-only endpoint for the readers
  dbre.rds.rds_proxy:
    name: reports-proxy
    auth:
      - secret_arn: arn:aws:secretsmanager:us-east-1:123456789012:secret:reports-app-AbCdEf
        iam_auth: REQUIRED
    role_arn: arn:aws:iam::123456789012:role/reports-proxy-secrets
    vpc_subnet_ids: [subnet-0a1b2c3d, subnet-1a2b3c4d]
    db_cluster_identifier: reports-aurora
    endpoints:
      - name: reports-proxy-ro
        target_role: READ_ONLY

- name: See what would change, without changing it
  dbre.rds.rds_proxy:
    name: orders-proxy
    role_arn: arn:aws:iam::123456789012:role/orders-proxy-secrets
    target_group:
      max_connections_percent: 50
      max_idle_connections_percent: 10
  check_mode: true
  diff: true
  register: planned

- name: Show the calls the change would make
  ansible.builtin.debug:
    var: planned.actions

- name: Remove the proxy and its endpoints
  dbre.rds.rds_proxy:
    name: orders-proxy
    state: absent
"""

RETURN = r"""
proxy:
  description:
    - The proxy as C(DescribeDBProxies) shows it after the run (in check mode, as it would be), with keys in
      snake_case, plus its tags. Empty when the proxy does not exist.
  returned: always
  type: dict
  contains:
    db_proxy_name:
      description: The proxy's name.
      type: str
      sample: orders-proxy
    db_proxy_arn:
      description: ARN of the proxy (absent in check mode before creation).
      type: str
      sample: arn:aws:rds:us-east-1:123456789012:db-proxy:prx-0123456789abcdef0
    status:
      description: The proxy's status, for example C(available) or C(creating).
      type: str
      sample: available
    endpoint:
      description: Host name of the proxy's default (read-write) endpoint (absent in check mode before creation).
      type: str
      sample: orders-proxy.proxy-abcdefghijkl.us-east-1.rds.amazonaws.com
    engine_family:
      description: The engine family.
      type: str
      sample: POSTGRESQL
    auth:
      description: The authentication entries, each with C(auth_scheme), C(secret_arn), C(iam_auth),
        C(client_password_auth_type) and C(description).
      type: list
      elements: dict
    role_arn:
      description: The IAM role the proxy reads its secrets with.
      type: str
    require_tls:
      description: Whether clients must use TLS.
      type: bool
      sample: true
    idle_client_timeout:
      description: Idle client timeout in seconds.
      type: int
      sample: 1800
    debug_logging:
      description: Whether debug logging is on.
      type: bool
      sample: false
    vpc_id:
      description: The proxy's VPC.
      type: str
    vpc_subnet_ids:
      description: The proxy's subnets.
      type: list
      elements: str
    vpc_security_group_ids:
      description: The proxy's security groups.
      type: list
      elements: str
    tags:
      description: Tags of the proxy.
      type: dict
      sample: {team: dbre}
target_group:
  description:
    - The proxy's default target group as C(DescribeDBProxyTargetGroups) shows it, keys in snake_case. Empty when the
      proxy does not exist.
  returned: always
  type: dict
  contains:
    target_group_name:
      description: Always C(default).
      type: str
      sample: default
    status:
      description: Status of the target group.
      type: str
      sample: available
    connection_pool_config:
      description: The pool settings, C(max_connections_percent), C(max_idle_connections_percent),
        C(connection_borrow_timeout), C(init_query) and C(session_pinning_filters).
      type: dict
      sample: {max_connections_percent: 80, max_idle_connections_percent: 20, connection_borrow_timeout: 120,
               session_pinning_filters: []}
targets:
  description:
    - The targets registered in the default target group (C(DescribeDBProxyTargets)), keys in snake_case. A cluster
      shows one C(TRACKED_CLUSTER) entry and one C(RDS_INSTANCE) entry per member.
  returned: always
  type: list
  elements: dict
  contains:
    rds_resource_id:
      description: The instance or cluster identifier.
      type: str
      sample: orders-db
    type:
      description: V(RDS_INSTANCE) or V(TRACKED_CLUSTER).
      type: str
      sample: RDS_INSTANCE
    tracked_cluster_id:
      description: The cluster an instance target belongs to.
      type: str
    endpoint:
      description: Host name of the target.
      type: str
    port:
      description: Port of the target.
      type: int
      sample: 5432
    target_health:
      description: C(state) (V(REGISTERING), V(AVAILABLE), V(UNAVAILABLE)), and C(reason) and C(description) when
        unavailable.
      type: dict
      sample: {state: AVAILABLE}
endpoints:
  description:
    - The proxy's endpoints (C(DescribeDBProxyEndpoints)), keys in snake_case, the default one included.
  returned: always
  type: list
  elements: dict
  contains:
    db_proxy_endpoint_name:
      description: The endpoint's name (V(default) for the proxy's own endpoint).
      type: str
      sample: reports-proxy-ro
    endpoint:
      description: Host name clients connect to, on port 5432.
      type: str
      sample: reports-proxy-ro.endpoint.proxy-abcdefghijkl.us-east-1.rds.amazonaws.com
    target_role:
      description: V(READ_WRITE) or V(READ_ONLY).
      type: str
      sample: READ_ONLY
    status:
      description: Status of the endpoint.
      type: str
      sample: available
    is_default:
      description: Whether this is the proxy's default endpoint.
      type: bool
      sample: false
    vpc_subnet_ids:
      description: Subnets of the endpoint.
      type: list
      elements: str
    vpc_security_group_ids:
      description: Security groups of the endpoint.
      type: list
      elements: str
actions:
  description: The RDS calls that change something the run made (in check mode, would make), in order.
  returned: always
  type: list
  elements: str
  sample: [CreateDBProxy, ModifyDBProxyTargetGroup, RegisterDBProxyTargets, CreateDBProxyEndpoint]
skipped_endpoints:
  description: Endpoints the declaration would delete but the module left in place, since they lack the
    C(dbre:managed-by=rds_proxy) tag (in check mode, those it would leave), each with C(endpoint) and C(reason).
  returned: always
  type: list
  elements: dict
  sample: [{endpoint: reports-adhoc, reason: "endpoint reports-adhoc was not created by dbre.rds.rds_proxy ..."}]
waited:
  description: Seconds spent waiting for RDS, and the states seen on the way (each C(state) lists what was not
    ready yet).
  returned: when the module waited
  type: dict
  sample: {seconds: 4.2, transitions: [{state: "proxy creating", at: "2026-11-30T00:10:00Z", elapsed_seconds: 0.0}]}
"""

try:
    from botocore.exceptions import BotoCoreError
    from botocore.exceptions import ClientError
    AWS_ERRORS = (ClientError, BotoCoreError)
except ImportError:
    AWS_ERRORS = ()  # AnsibleAWSModule reports the missing botocore

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict
from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.dbre.rds.plugins.module_utils import rds_proxy
from ansible_collections.dbre.rds.plugins.module_utils import rds_resources
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import CallNotConfirmed
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import aws_client
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import call_once
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import once_client
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import rds_client
from ansible_collections.dbre.rds.plugins.module_utils.clock import DrillClock
from ansible_collections.dbre.rds.plugins.module_utils.module_warnings import warn
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitFailed
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitTimeout
from ansible_collections.dbre.rds.plugins.module_utils.waiting import wait_until

PROXY_NOT_FOUND = list(rds_resources.NOT_FOUND_CODES["proxy"])
ENDPOINT_NOT_FOUND = list(rds_resources.NOT_FOUND_CODES["proxy_endpoint"])
TARGET_NOT_FOUND = ["DBProxyTargetNotFoundFault", "DBProxyTargetNotFound"]


class NotManaged(Exception):
    """A proxy to delete lost its dbre:managed-by tag (or an endpoint of it lacks one) since it was read."""


# ------------------------------------------------------------------------------------------------------------ reads

def read_proxy(client, name):
    """Everything the declaration covers: {proxy, tags, target_group, targets, endpoints} (proxy None if missing)."""
    proxy = rds_resources.describe_proxy(client, name)
    if proxy is None:
        return dict(proxy=None, tags={}, target_group=None, targets=[], endpoints=[])
    groups = rds_resources.describe_proxy_target_groups(client, name)
    return dict(
        proxy=proxy,
        tags=rds_resources.tags_dict(client.list_tags_for_resource(ResourceName=proxy["DBProxyArn"],
                                                                   aws_retry=True).get("TagList")),
        target_group=next((g for g in groups if g.get("TargetGroupName") == rds_resources.DEFAULT_TARGET_GROUP),
                          None),
        targets=rds_resources.describe_proxy_targets(client, name),
        endpoints=rds_resources.describe_proxy_endpoints(client, name),
    )


def resource_tags(client, arn):
    return rds_resources.tags_dict(client.list_tags_for_resource(ResourceName=arn, aws_retry=True).get("TagList"))


def read_endpoint_tags(client, name, endpoint_names):
    """``{endpoint name: tags}`` of the proxy's endpoints ``endpoint_names`` (those that still exist)."""
    tags = {}
    for endpoint_name in endpoint_names:
        found = describe_endpoint(client, name, endpoint_name)
        if found is not None:
            tags[endpoint_name] = resource_tags(client, found["DBProxyEndpointArn"])
    return tags


def read_or_fail(module, client, name):
    try:
        return read_proxy(client, name)
    except AWS_ERRORS as e:
        module.fail_json_aws(e, msg=f"Reading RDS proxy {name}: check the region and allow rds:DescribeDBProxies, "
                                    "rds:DescribeDBProxyTargetGroups, rds:DescribeDBProxyTargets, "
                                    "rds:DescribeDBProxyEndpoints and rds:ListTagsForResource")


def resource_problems(module, client, params):
    """Problems with what the options name in AWS: the secrets and the target (reads only)."""
    problems = []
    secrets = aws_client(module, "secretsmanager") if params["auth"] else None
    for index, item in enumerate(params["auth"] or []):
        try:
            secrets.describe_secret(SecretId=item["secret_arn"], aws_retry=True)
            found = True
        except is_boto3_error_code("ResourceNotFoundException"):
            found = False
        except AWS_ERRORS as e:  # pylint: disable=duplicate-except
            module.fail_json_aws(e, msg=f"Checking auth[{index}].secret_arn {item['secret_arn']}: allow "
                                        "secretsmanager:DescribeSecret on the proxy's secrets")
        problem = rds_proxy.secret_problem(index, item["secret_arn"], found)
        if problem:
            problems.append(problem)
    for kind, key in ((rds_resources.INSTANCE, "db_instance_identifier"),
                      (rds_resources.CLUSTER, "db_cluster_identifier")):
        if params[key]:
            try:
                described = rds_resources.describe(client, kind, params[key])
            except AWS_ERRORS as e:
                module.fail_json_aws(e, msg=f"Checking {key} {params[key]}: allow rds:DescribeDBInstances and "
                                            "rds:DescribeDBClusters")
            problem = rds_proxy.target_problem(kind, params[key], described)
            if problem:
                problems.append(problem)
    return problems


# ----------------------------------------------------------------------------------------------------------- writes

def wait_ready(module, client, name, phase, remaining, everything=True):
    """Wait until the proxy (and, with ``everything``, its endpoints and targets) are available."""
    def fetch():
        if everything:
            return read_proxy(client, name)
        return dict(proxy=rds_resources.describe_proxy(client, name), endpoints=[], targets=[])

    return wait_until(
        fetch, lambda r: not rds_proxy.readiness(r["proxy"], r["endpoints"], r["targets"]),
        timeout=remaining, interval=module.params["poll_interval"], phase=phase,
        state_of=lambda r: ", ".join(rds_proxy.readiness(r["proxy"], r["endpoints"], r["targets"])) or "ready",
        permanent=lambda r: rds_proxy.readiness_stop_reason(r["proxy"], r["endpoints"], r["targets"]))


def wait_gone(module, fetch, phase, remaining):
    return wait_until(fetch, lambda found: found is None, timeout=remaining,
                      interval=module.params["poll_interval"], phase=phase,
                      state_of=lambda found: "gone" if found is None else str(found.get("Status")))


def describe_endpoint(client, name, endpoint_name):
    """The endpoint ``endpoint_name`` of the proxy ``name``, or None."""
    found = rds_resources.describe_proxy_endpoint(client, endpoint_name)
    return found if found is not None and found.get("DBProxyName") == name else None


class Applier:
    """Makes the plan's calls in order, remembering what was done for the error message."""

    def __init__(self, module, client, name):
        self.module, self.client, self.name = module, client, name
        self.once = once_client(module)
        self.clock = DrillClock()
        self.actions = []
        self.transitions = []
        self.waited = 0.0
        self.skipped = []

    def done(self):
        """The calls made so far, for a message."""
        return ", ".join(self.actions) or "none"

    def remaining(self):
        """Seconds left of wait_timeout, which bounds the whole run's waiting and resending."""
        return self.module.params["wait_timeout"] - self.clock.elapsed()

    def _once(self, action, operation, request, took_effect):
        call_once(self.once, operation, request, took_effect,
                  deadline_seconds=max(1.0, min(self.remaining(), 300.0)))
        self.actions.append(action)

    def _call(self, action, operation, **request):
        getattr(self.client, operation)(aws_retry=True, **request)
        self.actions.append(action)

    def wait_ready(self, phase, everything=True):
        self._wait(wait_ready(self.module, self.client, self.name, phase, self.remaining(), everything))

    def _wait(self, outcome):
        self.waited += outcome.seconds
        self.transitions += outcome.transitions

    def proxy_available(self, before):
        """RDS refuses target group, target and endpoint calls while the proxy is creating or modifying."""
        self.wait_ready(f"RDS proxy {self.name} to be available before {before}", everything=False)

    def present(self, plan, desired):
        name = self.name
        if plan["create"]:
            self._once("CreateDBProxy", "create_db_proxy", dict(DBProxyName=name, **plan["create"]),
                       lambda: rds_resources.describe_proxy(self.client, name) and f"proxy {name} exists")
        if plan["modify"]:
            self._call("ModifyDBProxy", "modify_db_proxy", DBProxyName=name, **plan["modify"])
        if plan["add_tags"] or plan["remove_tags"]:
            arn = rds_resources.describe_proxy(self.client, name)["DBProxyArn"]
            if plan["add_tags"]:
                self._call("AddTagsToResource", "add_tags_to_resource", ResourceName=arn,
                           Tags=rds_resources.tag_list(dict(sorted(plan["add_tags"].items()))))
            if plan["remove_tags"]:
                self._call("RemoveTagsFromResource", "remove_tags_from_resource", ResourceName=arn,
                           TagKeys=plan["remove_tags"])
        if plan["pool"]:
            self.proxy_available("its connection pool is set")
            self._call("ModifyDBProxyTargetGroup", "modify_db_proxy_target_group", DBProxyName=name,
                       TargetGroupName=rds_resources.DEFAULT_TARGET_GROUP, ConnectionPoolConfig=plan["pool"])
        if plan["deregister"]:
            old = plan["before"]["target"]

            def deregistered():
                targets = rds_resources.describe_proxy_targets(self.client, name)
                return rds_proxy.registered_target(targets) != old and "the old target is deregistered"
            self.proxy_available("its old target is deregistered")
            try:
                self._once("DeregisterDBProxyTargets", "deregister_db_proxy_targets",
                           dict(DBProxyName=name, TargetGroupName=rds_resources.DEFAULT_TARGET_GROUP,
                                **plan["deregister"]), deregistered)
            except is_boto3_error_code(TARGET_NOT_FOUND):
                self.actions.append("DeregisterDBProxyTargets")  # not registered (any more): what the call wanted
        if plan["register"]:
            def registered():
                targets = rds_resources.describe_proxy_targets(self.client, name)
                return rds_proxy.registered_target(targets) == desired["target"] and "the target is registered"
            self.proxy_available("its target is registered")
            self._once("RegisterDBProxyTargets", "register_db_proxy_targets",
                       dict(DBProxyName=name, TargetGroupName=rds_resources.DEFAULT_TARGET_GROUP,
                            **plan["register"]), registered)
        if plan["delete_endpoints"] or plan["modify_endpoints"] or plan["create_endpoints"]:
            self.proxy_available("its endpoints are changed")
        self.delete_endpoints(plan["delete_endpoints"], wait=False)
        for request in plan["modify_endpoints"]:
            self._call("ModifyDBProxyEndpoint", "modify_db_proxy_endpoint", **request)
        for request in plan["create_endpoints"]:
            endpoint = request["DBProxyEndpointName"]
            self._once("CreateDBProxyEndpoint", "create_db_proxy_endpoint", dict(DBProxyName=name, **request),
                       lambda: describe_endpoint(self.client, name, endpoint) and f"endpoint {endpoint} exists")

    def managed_endpoint(self, endpoint):
        """Whether the endpoint still exists and carries the marker, read right before deleting it; an unmarked one
        is recorded in ``skipped`` with a warning."""
        found = describe_endpoint(self.client, self.name, endpoint)
        if found is None:
            return False
        if rds_proxy.is_managed(resource_tags(self.client, found["DBProxyEndpointArn"])):
            return True
        self.skip(dict(endpoint=endpoint, reason=rds_proxy.unmanaged_endpoint_reason(endpoint)))
        return False

    def skip(self, item):
        if item not in self.skipped:
            self.skipped.append(item)
            warn(self.module, f"RDS proxy {self.name}: {item['reason']}")

    def delete_endpoints(self, names, wait):
        names = [endpoint for endpoint in names if self.managed_endpoint(endpoint)]
        for endpoint in names:
            def gone_or_going(endpoint=endpoint):
                found = describe_endpoint(self.client, self.name, endpoint)
                return (found is None or found.get("Status") == "deleting") and f"endpoint {endpoint} is deleting"
            try:
                self._once("DeleteDBProxyEndpoint", "delete_db_proxy_endpoint", dict(DBProxyEndpointName=endpoint),
                           gone_or_going)
            except is_boto3_error_code(ENDPOINT_NOT_FOUND):
                pass  # gone already: what the call wanted
        if wait:
            for endpoint in names:
                self._wait(wait_gone(self.module, lambda e=endpoint: describe_endpoint(self.client, self.name, e),
                                     f"endpoint {endpoint} of RDS proxy {self.name} to be deleted", self.remaining()))

    def absent(self, plan):
        name = self.name
        # The endpoints go first and completely: a proxy is deleted only once nothing hangs from it.
        self.delete_endpoints(plan["delete_endpoints"], wait=True)
        if self.skipped:
            raise NotManaged(f"endpoint {self.skipped[0]['endpoint']} lost its {rds_proxy.MANAGED_TAG_KEY} tag since "
                             "the run read it, and RDS deletes a proxy's endpoints with it: the proxy was kept")
        found = rds_resources.describe_proxy(self.client, name)
        if found is not None and not rds_proxy.is_managed(resource_tags(self.client, found["DBProxyArn"])):
            raise NotManaged(rds_proxy.unmanaged_proxy_message(name))

        def deleting():
            found = rds_resources.describe_proxy(self.client, name)
            return (found is None or found.get("Status") == "deleting") and f"proxy {name} is deleting"
        try:
            self._once("DeleteDBProxy", "delete_db_proxy", dict(DBProxyName=name), deleting)
        except is_boto3_error_code(PROXY_NOT_FOUND):
            pass
        if self.module.params["wait"]:
            self._wait(wait_gone(self.module, lambda: rds_resources.describe_proxy(self.client, name),
                                 f"RDS proxy {name} to be deleted", self.remaining()))


def result_parts(read):
    """The module's return values from a read (or a prediction) of the proxy."""
    proxy = dict(camel_dict_to_snake_dict(read["proxy"]), tags=read["tags"]) if read["proxy"] else {}
    return dict(
        proxy=proxy,
        target_group=camel_dict_to_snake_dict(read["target_group"]) if read["target_group"] else {},
        targets=[camel_dict_to_snake_dict(t) for t in read["targets"]],
        endpoints=[camel_dict_to_snake_dict(e) for e in read["endpoints"]],
    )


def main():
    auth_options = dict(
        secret_arn=dict(type="str", required=True, no_log=False),  # an ARN names the secret, it is not one
        iam_auth=dict(type="str", choices=list(rds_proxy.IAM_AUTH_MODES), default="DISABLED"),
        client_password_auth_type=dict(type="str", choices=list(rds_proxy.CLIENT_PASSWORD_AUTH_TYPES),
                                       default="POSTGRES_SCRAM_SHA_256"),
        description=dict(type="str"),
    )
    pool_options = dict(
        max_connections_percent=dict(type="int", default=rds_proxy.POOL_DEFAULTS["max_connections_percent"]),
        max_idle_connections_percent=dict(type="int",
                                          default=rds_proxy.POOL_DEFAULTS["max_idle_connections_percent"]),
        connection_borrow_timeout=dict(type="int", default=rds_proxy.POOL_DEFAULTS["connection_borrow_timeout"]),
        init_query=dict(type="str"),
        session_pinning_filters=dict(type="list", elements="str"),
    )
    endpoint_options = dict(
        name=dict(type="str", required=True),
        target_role=dict(type="str", choices=list(rds_proxy.TARGET_ROLES), default="READ_ONLY"),
        vpc_subnet_ids=dict(type="list", elements="str"),
        vpc_security_group_ids=dict(type="list", elements="str"),
    )
    argument_spec = dict(
        name=dict(type="str", required=True, aliases=["db_proxy_name"]),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        engine_family=dict(type="str", default=rds_proxy.ENGINE_FAMILY),
        auth=dict(type="list", elements="dict", options=auth_options),
        role_arn=dict(type="str"),
        require_tls=dict(type="bool", default=True),
        idle_client_timeout=dict(type="int", default=1800),
        debug_logging=dict(type="bool", default=False),
        vpc_subnet_ids=dict(type="list", elements="str"),
        vpc_security_group_ids=dict(type="list", elements="str"),
        tags=dict(type="dict", aliases=["resource_tags"]),
        purge_tags=dict(type="bool", default=True),
        target_group=dict(type="dict", options=pool_options),
        db_instance_identifier=dict(type="str"),
        db_cluster_identifier=dict(type="str"),
        endpoints=dict(type="list", elements="dict", options=endpoint_options),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=900),
        poll_interval=dict(type="float", default=5.0),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True,
                              mutually_exclusive=[["db_instance_identifier", "db_cluster_identifier"]])
    params = module.params
    name = params["name"]
    problems = rds_proxy.option_problems(params)
    if problems:
        module.fail_json(msg=f"Invalid options for RDS proxy {name}; nothing was changed: " + "; ".join(problems),
                         problems=problems)
    client = rds_client(module)

    read = read_or_fail(module, client, name)
    current = rds_proxy.current_state(read["proxy"], read["tags"], read["target_group"], read["targets"],
                                      read["endpoints"])
    desired = rds_proxy.desired_state(params)
    if desired is not None:
        problems = resource_problems(module, client, params)
    plan = rds_proxy.plan_proxy(desired, current, purge_tags=params["purge_tags"])
    skipped = []
    if not plan["problems"] and plan["delete_endpoints"]:
        try:
            endpoint_tags = read_endpoint_tags(client, name, plan["delete_endpoints"])
        except AWS_ERRORS as e:
            module.fail_json_aws(e, msg=f"Reading the tags of RDS proxy {name}'s endpoints: allow "
                                        "rds:ListTagsForResource on them")
        plan, skipped = rds_proxy.limit_to_managed(name, plan, read["tags"], endpoint_tags)
    elif plan["action"] == "delete":
        plan, skipped = rds_proxy.limit_to_managed(name, plan, read["tags"], {})
    problems += plan["problems"]
    if problems:
        module.fail_json(msg=f"Invalid RDS proxy {name}; nothing was changed: " + "; ".join(problems),
                         problems=problems)

    for item in skipped:
        warn(module, f"RDS proxy {name}: {item['reason']}")
    result = dict(changed=plan["changed"], actions=rds_proxy.planned_actions(plan) if plan["changed"] else [],
                  skipped_endpoints=skipped)
    if module.check_mode or not plan["changed"]:
        result.update(result_parts(rds_proxy.predicted_read(name, read, plan) if plan["changed"] else read))
    else:
        applier = Applier(module, client, name)
        try:
            if plan["action"] == "delete":
                applier.absent(plan)
            else:
                applier.present(plan, desired)
                if params["wait"]:
                    applier.wait_ready(f"RDS proxy {name}, its endpoints and targets to be available")
        except (WaitTimeout, WaitFailed) as e:
            module.fail_json(msg=f"Waiting for RDS proxy {name} (calls made before: {applier.done()}): {e}; check the "
                                 "proxy's status and its targets' health, then run again", actions=applier.actions)
        except NotManaged as e:
            module.fail_json(msg=f"Removing RDS proxy {name} (calls made before: {applier.done()}): {e}",
                             actions=applier.actions, skipped_endpoints=applier.skipped)
        except CallNotConfirmed as e:
            module.fail_json(msg=f"Changing RDS proxy {name} (calls made before: {applier.done()}): {e}; check the "
                                 "proxy in the RDS console, then run again", actions=applier.actions)
        except AWS_ERRORS as e:
            module.fail_json_aws(e, msg=f"Changing RDS proxy {name} (calls made before the failure: "
                                        f"{applier.done()}): check the secrets, the role, the subnets and the IAM "
                                        "permissions, then run again", actions=applier.actions)
        result["actions"] = applier.actions
        result["skipped_endpoints"] += [item for item in applier.skipped if item not in skipped]
        if applier.transitions:
            result["waited"] = dict(seconds=round(applier.waited, 3), transitions=applier.transitions)
        result.update(result_parts(read_or_fail(module, client, name)))
    if module._diff:
        result["diff"] = dict(before=plan["before"] or {}, after=plan["after"] or {})
    module.exit_json(**result)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rds_global_cluster
short_description: Create and delete an Aurora PostgreSQL global database from an existing cluster
version_added: "0.2.0"
description:
  - Manages one Aurora Global Database (a global cluster) as a declaration. It is created from an existing Aurora
    PostgreSQL cluster (C(CreateGlobalCluster) with C(SourceDBClusterIdentifier)), which becomes its primary (writer)
    cluster; the module keeps its tags and deletion protection.
  - Secondary clusters in other regions join with M(amazon.aws.rds_cluster)'s
    O(amazon.aws.rds_cluster#module:global_cluster_identifier) in their own region; switching or failing the writer
    over is M(dbre.rds.rds_dr_drill)'s work. This module never creates or deletes a cluster and never moves the
    writer.
  - The module tags the global cluster it creates with C(dbre:managed-by=rds_global_cluster), keeps that tag whatever
    O(purge_tags) says, and deletes nothing without it. O(state=absent) first detaches every member cluster
    (C(RemoveFromGlobalCluster), in each member's region, secondaries first and the writer last); the clusters keep
    running as standalone clusters, a detached secondary becomes writable. Then it deletes the global cluster.
  - Every option is checked before the first change, the source cluster against the account too (it must exist in
    the module's region, run Aurora PostgreSQL and belong to no other global cluster). One bad input fails the run
    with every problem listed and nothing changed.
  - A second run with the same options changes nothing and makes no mutating call. In check mode only describe calls
    are made and the result shows what the run would do.
author:
  - dbre.rds maintainers (@dbre-rds)
options:
  global_cluster_identifier:
    description:
      - The global cluster's identifier. 1 to 63 letters, digits and hyphens, starting with a letter, with no trailing
        or double hyphen.
    type: str
    required: true
  source_db_cluster_identifier:
    description:
      - The Aurora PostgreSQL cluster (identifier or ARN) the global cluster is created from, in the module's region.
        Required to create the global cluster.
      - On an existing global cluster it must be one of its members (it is only checked); omit it to leave the
        membership unchecked.
    type: str
  state:
    description:
      - V(present) creates the global cluster or updates its tags and deletion protection. V(absent) detaches its
        members and deletes it; refused for a global cluster without the C(dbre:managed-by=rds_global_cluster) tag,
        with deletion protection on, or not C(available) or with a C(FailoverState) (a switchover or failover in
        progress, when detaching can leave two writers or none).
    type: str
    choices: [present, absent]
    default: present
  deletion_protection:
    description:
      - Refuse C(DeleteGlobalCluster) until turned off. Omit it to leave an existing global cluster's setting (a new
        one then gets RDS's default, off).
    type: bool
  tags:
    description:
      - Tags of the global cluster, as a dict. The marker C(dbre:managed-by=rds_global_cluster) is added on creation
        and kept; give it here to adopt an existing global cluster that is yours (any other value is refused).
    type: dict
    aliases: [resource_tags]
  purge_tags:
    description:
      - Remove tags that are not in O(tags). Has no effect when O(tags) is omitted.
    type: bool
    default: true
  wait:
    description:
      - Wait until the global cluster is available with the source cluster as a member (with O(state=absent), until
        it is gone). Detached members are always awaited before the deletion, which RDS refuses while any remain.
    type: bool
    default: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
  - dbre.rds.wait
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: posix
notes:
  - "IAM actions: C(rds:DescribeGlobalClusters), C(rds:DescribeDBClusters), C(rds:CreateGlobalCluster),
    C(rds:ModifyGlobalCluster), C(rds:RemoveFromGlobalCluster), C(rds:DeleteGlobalCluster),
    C(rds:ListTagsForResource) (where DescribeGlobalClusters returns no C(TagList)), C(rds:AddTagsToResource),
    C(rds:RemoveTagsFromResource)."
  - A global cluster's ARN has no region (C(arn:aws:rds::<account>:global-cluster:<id>)); the module reads and
    changes it through the module's region, the primary's.
  - The source cluster must be encrypted with a key usable in every region you add, and each secondary cluster needs
    a KMS key of its own region (O(amazon.aws.rds_cluster#module:kms_key_id)).
seealso:
  - module: amazon.aws.rds_cluster
  - module: amazon.aws.rds_global_cluster_info
  - module: dbre.rds.rds_dr_drill
  - module: dbre.rds.rds_dr_readiness_info
  - name: Amazon Aurora Global Database
    description: How a global database replicates across regions, and how it switches over and fails over.
    link: https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database.html
"""

EXAMPLES = r"""
- name: Make the Aurora cluster payments the primary of a global database
  dbre.rds.rds_global_cluster:
    global_cluster_identifier: payments-global
    source_db_cluster_identifier: payments
    deletion_protection: true
    tags:
      team: payments
    region: us-east-1
  register: payments_global

- name: Join a secondary cluster in us-west-2
  amazon.aws.rds_cluster:
    db_cluster_identifier: payments-dr
    engine: aurora-postgresql
    engine_version: "15.4"
    global_cluster_identifier: "{{ payments_global.global_cluster.global_cluster_identifier }}"
    kms_key_id: alias/aws/rds
    storage_encrypted: true
    region: us-west-2

- name: See what removing it would do, without doing it
  dbre.rds.rds_global_cluster:
    global_cluster_identifier: payments-global
    state: absent
    region: us-east-1
  check_mode: true
  diff: true
  register: planned

- name: Show the calls the removal would make
  ansible.builtin.debug:
    var: planned.actions

- name: Detach the members (they keep running) and delete the global cluster
  dbre.rds.rds_global_cluster:
    global_cluster_identifier: payments-global
    state: absent
    region: us-east-1
"""

RETURN = r"""
global_cluster:
  description:
    - The global cluster as C(DescribeGlobalClusters) shows it after the run (in check mode, as it would be), with
      keys in snake_case, plus its tags. Empty when it does not exist.
  returned: always
  type: dict
  contains:
    global_cluster_identifier:
      description: The identifier.
      type: str
      sample: payments-global
    global_cluster_arn:
      description: The ARN (absent in check mode before creation).
      type: str
      sample: arn:aws:rds::123456789012:global-cluster:payments-global
    status:
      description: The status, for example C(available) or C(creating).
      type: str
      sample: available
    engine:
      description: The engine, inherited from the source cluster.
      type: str
      sample: aurora-postgresql
    engine_version:
      description: The engine version.
      type: str
      sample: "15.4"
    storage_encrypted:
      description: Whether the storage is encrypted.
      type: bool
    deletion_protection:
      description: Whether deletion protection is on.
      type: bool
    global_cluster_members:
      description: The member clusters, each with C(db_cluster_arn), C(is_writer) and C(readers).
      type: list
      elements: dict
    tags:
      description: Tags of the global cluster.
      type: dict
      sample: {team: payments, "dbre:managed-by": rds_global_cluster}
actions:
  description: The RDS calls that change something the run made (in check mode, would make), in order.
  returned: always
  type: list
  elements: str
  sample: [CreateGlobalCluster]
waited:
  description: Seconds spent waiting for RDS, and the states seen on the way.
  returned: when the module waited
  type: dict
  sample: {seconds: 2.1, transitions: [{state: "creating, 1 member(s)", at: "2026-11-30T03:10:00Z",
                                        elapsed_seconds: 0.0}]}
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

from ansible_collections.dbre.rds.plugins.module_utils import global_cluster as gc
from ansible_collections.dbre.rds.plugins.module_utils import rds_resources
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import CallNotConfirmed
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import call_once
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import once_client
from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import rds_client
from ansible_collections.dbre.rds.plugins.module_utils.clock import DrillClock
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitFailed
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitTimeout
from ansible_collections.dbre.rds.plugins.module_utils.waiting import wait_argument_spec
from ansible_collections.dbre.rds.plugins.module_utils.waiting import wait_until

GLOBAL_NOT_FOUND = list(rds_resources.NOT_FOUND_CODES["global"])
NOT_A_MEMBER = ["DBClusterNotFoundFault", "InvalidGlobalClusterStateFault"]


class NotManaged(Exception):
    """The global cluster to delete lost its dbre:managed-by tag since it was read."""


def read(client, identifier):
    """``(described, tags)`` of the global cluster (``(None, {})`` when it does not exist)."""
    found = rds_resources.describe_global_cluster(client, identifier)
    return found, rds_resources.read_tags(client, found)


def read_or_fail(module, client, identifier):
    try:
        return read(client, identifier)
    except AWS_ERRORS as e:
        module.fail_json_aws(e, msg=f"Describing the global cluster {identifier} failed: allow "
                                    "rds:DescribeGlobalClusters and rds:ListTagsForResource, then run again")


def source_arn_or_problems(module, client, params):
    """The source cluster's ARN and the problems with it (read from the account)."""
    source = params["source_db_cluster_identifier"]
    if source is None:
        return None, []
    identifier = gc.parse_cluster_arn(source)[1]
    try:
        described = rds_resources.describe_cluster(client, identifier)
    except AWS_ERRORS as e:
        module.fail_json_aws(e, msg=f"Describing the source cluster {identifier} failed: check the region and allow "
                                    "rds:DescribeDBClusters")
    problems = gc.source_problems(identifier, described, params["global_cluster_identifier"], module.region)
    return (described or {}).get("DBClusterArn"), problems


class Applier:
    """Carries out a plan, in order, remembering what was done for the error message."""

    def __init__(self, module, client, identifier):
        self.module, self.client, self.identifier = module, client, identifier
        self.once = once_client(module)
        self.clock = DrillClock()
        self.actions = []
        self.waited = 0.0
        self.transitions = []

    def done(self):
        return ", ".join(self.actions) or "none"

    def remaining(self):
        return self.module.params["wait_timeout"] - self.clock.elapsed()

    def describe(self):
        return rds_resources.describe_global_cluster(self.client, self.identifier)

    def _once(self, action, client, operation, request, took_effect):
        call_once(client, operation, request, took_effect, deadline_seconds=max(1.0, min(self.remaining(), 300.0)))
        self.actions.append(action)

    def _wait(self, phase, done, failed=None):
        outcome = wait_until(self.describe, done, timeout=max(self.remaining(), 0.0),
                             interval=self.module.params["poll_interval"], phase=phase, state_of=gc.state_of,
                             failed=failed, clock=self.clock)
        self.waited += outcome.seconds
        self.transitions += outcome.transitions
        return outcome.value

    def present(self, plan, source_arn):
        identifier = self.identifier
        if plan["create"]:
            request = dict(plan["create"], Tags=rds_resources.tag_list(plan["create"]["Tags"]))
            self._once("CreateGlobalCluster", self.once, "create_global_cluster", request,
                       lambda: self.describe() and f"global cluster {identifier} exists")
            described = self.describe()
            # Some API versions (and the lab) drop the tags of CreateGlobalCluster: put the marker on before any wait.
            tags = rds_resources.read_tags(self.client, described)
            missing = {k: v for k, v in plan["create"]["Tags"].items() if tags.get(k) != v}
            if described and missing:
                self.client.add_tags_to_resource(ResourceName=described["GlobalClusterArn"],
                                                 Tags=rds_resources.tag_list(missing), aws_retry=True)
                self.actions.append("AddTagsToResource")
        if plan["modify"]:
            self._wait(f"global cluster {identifier} to be available before it is modified", gc.is_ready,
                       gc.has_failed)
            self.client.modify_global_cluster(GlobalClusterIdentifier=identifier, aws_retry=True, **plan["modify"])
            self.actions.append("ModifyGlobalCluster")
        if plan["add_tags"] or plan["remove_tags"]:
            arn = self.describe()["GlobalClusterArn"]
            if plan["add_tags"]:
                self.client.add_tags_to_resource(ResourceName=arn, Tags=rds_resources.tag_list(plan["add_tags"]),
                                                 aws_retry=True)
                self.actions.append("AddTagsToResource")
            if plan["remove_tags"]:
                self.client.remove_tags_from_resource(ResourceName=arn, TagKeys=plan["remove_tags"], aws_retry=True)
                self.actions.append("RemoveTagsFromResource")
        if self.module.params["wait"]:
            self._wait(f"global cluster {identifier} to be available"
                       + (f" with {source_arn} as a member" if source_arn else ""),
                       lambda found: gc.is_ready(found, source_arn), gc.has_failed)

    def absent(self, plan):
        identifier = self.identifier
        for arn in plan["detach"]:
            region = gc.parse_cluster_arn(arn)[0]

            def detached(arn=arn):
                return arn not in gc.member_arns(self.describe()) and f"{arn} is detached"
            try:
                # RemoveFromGlobalCluster is sent in the member's own region.
                self._once("RemoveFromGlobalCluster", once_client(self.module, region=region),
                           "remove_from_global_cluster",
                           dict(GlobalClusterIdentifier=identifier, DbClusterIdentifier=arn), detached)
            except is_boto3_error_code(NOT_A_MEMBER):
                if not detached():
                    raise
        if plan["detach"]:
            self._wait(f"the members of global cluster {identifier} to be detached",
                       lambda found: found is None or not gc.member_arns(found))
        described, tags = read(self.client, identifier)
        if described is not None and not gc.is_managed(tags):
            raise NotManaged(gc.unmanaged_message(identifier))

        def deleting():
            found = self.describe()
            return (found is None or found.get("Status") == "deleting") and f"global cluster {identifier} is deleting"
        try:
            self._once("DeleteGlobalCluster", self.once, "delete_global_cluster",
                       dict(GlobalClusterIdentifier=identifier), deleting)
        except is_boto3_error_code(GLOBAL_NOT_FOUND):
            pass
        if self.module.params["wait"]:
            self._wait(f"global cluster {identifier} to be deleted", lambda found: found is None)


def result_of(described, tags):
    return dict(camel_dict_to_snake_dict(described), tags=tags) if described else {}


def predicted(described, tags, plan):
    """The global cluster as the plan would leave it (check mode)."""
    after = plan["after"]
    if after is None:
        return {}
    if described is None:
        return {"global_cluster_identifier": after["global_cluster_identifier"], "status": "available",
                "engine": after["engine"], "deletion_protection": after["deletion_protection"],
                "global_cluster_members": [{"db_cluster_arn": arn, "is_writer": True, "readers": []}
                                           for arn in after["members"]],
                "tags": after["tags"]}
    return dict(result_of(described, tags), deletion_protection=after["deletion_protection"], tags=after["tags"])


def main():
    argument_spec = dict(
        global_cluster_identifier=dict(type="str", required=True),
        source_db_cluster_identifier=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        deletion_protection=dict(type="bool"),
        tags=dict(type="dict", aliases=["resource_tags"]),
        purge_tags=dict(type="bool", default=True),
        wait=dict(type="bool", default=True),
        **wait_argument_spec(),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    identifier = params["global_cluster_identifier"]
    problems = gc.option_problems(params, module.region)
    if problems:
        module.fail_json(msg=f"Invalid options for global cluster {identifier}; nothing was changed: "
                             + "; ".join(problems), problems=problems)
    client = rds_client(module)

    described, tags = read_or_fail(module, client, identifier)
    source_arn, problems = (None, [])
    if params["state"] == "present":
        source_arn, problems = source_arn_or_problems(module, client, params)
    plan = gc.plan_global_cluster(gc.desired_state(params, source_arn), gc.current_state(described, tags),
                                  purge_tags=params["purge_tags"])
    problems += plan["problems"]
    if problems:
        module.fail_json(msg=f"Invalid global cluster {identifier}; nothing was changed: " + "; ".join(problems),
                         problems=problems, global_cluster=result_of(described, tags))

    result = dict(changed=plan["changed"], actions=gc.planned_actions(plan))
    if module.check_mode or not plan["changed"]:
        result["global_cluster"] = (predicted(described, tags, plan) if plan["changed"]
                                    else result_of(described, tags))
    else:
        applier = Applier(module, client, identifier)
        try:
            if plan["action"] == "delete":
                applier.absent(plan)
            else:
                applier.present(plan, source_arn)
        except (WaitTimeout, WaitFailed) as e:
            module.fail_json(msg=f"Waiting for global cluster {identifier} (calls made before: {applier.done()}): "
                                 f"{e}; check its status and its members' in the RDS console, then run again",
                             actions=applier.actions)
        except NotManaged as e:
            module.fail_json(msg=f"Removing global cluster {identifier} (calls made before: {applier.done()}): {e}",
                             actions=applier.actions)
        except CallNotConfirmed as e:
            module.fail_json(msg=f"Changing global cluster {identifier} (calls made before: {applier.done()}): {e}; "
                                 "check it in the RDS console, then run again", actions=applier.actions)
        except AWS_ERRORS as e:
            module.fail_json_aws(e, msg=f"Changing global cluster {identifier} (calls made before the failure: "
                                        f"{applier.done()}): check the source cluster, the members' regions and the "
                                        "IAM permissions in the notes, then run again", actions=applier.actions)
        result["actions"] = applier.actions
        if applier.transitions:
            result["waited"] = dict(seconds=round(applier.waited, 3), transitions=applier.transitions)
        result["global_cluster"] = result_of(*read_or_fail(module, client, identifier))
    if module._diff:
        result["diff"] = dict(before=plan["before"] or {}, after=plan["after"] or {})
    module.exit_json(**result)


if __name__ == "__main__":
    main()

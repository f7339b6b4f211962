#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rds_event_subscription
short_description: Create, update and delete Amazon RDS event subscriptions
version_added: "0.1.0"
description:
  - Manages an RDS event notification subscription, which sends the events of one source type (DB instances, DB
    clusters, snapshots, parameter groups, ...) in the chosen categories to an Amazon SNS topic.
  - The categories are checked against what RDS's C(DescribeEventCategories) returns for the source type before any
    change, so an unknown category or source type fails the run with the valid choices and changes nothing. When the
    categories cannot be described (no C(rds:DescribeEventCategories) permission, or an endpoint that does not
    implement the call) the module checks against the table documented in the RDS user guide and warns.
  - Every option is checked before the first change; O(source_ids) of V(db-instance) and V(db-cluster) sources must
    name existing instances or clusters of that type (an Aurora cluster given as a V(db-instance) source is refused
    with the advice to use V(db-cluster)).
  - Properties that are not given are left as they are on an existing subscription.
author:
  - dbre.rds maintainers (@dbre-rds)
options:
  name:
    description:
      - The name of the subscription (C(SubscriptionName), shown by RDS as C(CustSubscriptionId)).
    type: str
    required: true
    aliases: [subscription_name]
  state:
    description:
      - V(present) creates or updates the subscription, V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
  sns_topic_arn:
    description:
      - ARN of the SNS topic that receives the events. Required with O(state=present).
    type: str
  source_type:
    description:
      - The type of source whose events are sent, for example V(db-instance) or V(db-cluster).
      - When omitted on creation, the subscription receives the events of all source types.
    type: str
  source_ids:
    description:
      - Identifiers of the sources (instance or cluster identifiers, ...) whose events are sent. Needs O(source_type).
      - An empty list sends the events of every source of O(source_type). Omit it to leave the sources as they are.
    type: list
    elements: str
  event_categories:
    description:
      - Event categories to send, for example V(failover), V(failure), V(low storage), V(maintenance),
        V(notification). Compared as a set, case-insensitively. Needs O(source_type).
      - On creation, omitting it (or an empty list) subscribes to every category of the source type.
    type: list
    elements: str
  enabled:
    description:
      - Whether the subscription sends notifications. V(false) keeps the subscription but sends nothing.
      - Defaults to V(true) on creation; omit it to leave an existing subscription as it is.
    type: bool
  tags:
    description:
      - Tags of the subscription, as a dict.
    type: dict
    aliases: [resource_tags]
  purge_tags:
    description:
      - Remove tags that are not in O(tags). Has no effect when O(tags) is omitted.
    type: bool
    default: true
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
  - "IAM actions: C(rds:DescribeEventSubscriptions), C(rds:DescribeEventCategories), C(rds:CreateEventSubscription),
    C(rds:ModifyEventSubscription), C(rds:DeleteEventSubscription), C(rds:AddSourceIdentifierToSubscription),
    C(rds:RemoveSourceIdentifierFromSubscription), C(rds:ListTagsForResource), C(rds:AddTagsToResource),
    C(rds:RemoveTagsFromResource); C(rds:DescribeDBInstances) and C(rds:DescribeDBClusters) to check O(source_ids)."
  - The SNS topic's access policy must allow C(events.rds.amazonaws.com) to publish when the topic is encrypted with a
    customer managed KMS key; see the RDS user guide.
seealso:
  - module: community.aws.sns_topic
  - module: amazon.aws.cloudwatch_metric_alarm
  - module: amazon.aws.rds_instance_info
  - name: Amazon RDS event categories and event messages
    description: The categories of each source type.
    link: https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_Events.Messages.html
"""

EXAMPLES = r"""
- name: Send failovers, failures, low storage and maintenance of two instances to a topic
  dbre.rds.rds_event_subscription:
    name: prod-db-events
    sns_topic_arn: "{{ topic.sns_arn }}"
    source_type: db-instance
    source_ids: [orders-db, billing-db]
    event_categories: [failover, failure, low storage, maintenance, notification]
    tags:
      team: dbre

- name: See what would change, without changing it
  dbre.rds.rds_event_subscription:
    name: prod-db-events
    sns_topic_arn: "{{ topic.sns_arn }}"
    source_type: db-instance
    event_categories: [failover, failure]
  check_mode: true
  diff: true
  register: planned

- name: Show the planned categories
  ansible.builtin.debug:
    msg: "{{ planned.event_subscription.event_categories_list }}"

- name: Pause notifications during planned maintenance
  dbre.rds.rds_event_subscription:
    name: prod-db-events
    enabled: false

- name: Delete the subscription
  dbre.rds.rds_event_subscription:
    name: prod-db-events
    state: absent
"""

RETURN = r"""
event_subscription:
  description:
    - The subscription as RDS describes it after the run (in check mode, as it would be), with keys in snake_case.
    - Empty when the subscription does not exist.
  returned: always
  type: dict
  contains:
    cust_subscription_id:
      description: The subscription's name.
      type: str
      sample: prod-db-events
    event_subscription_arn:
      description: ARN of the subscription (absent in check mode before creation).
      type: str
      sample: arn:aws:rds:us-east-1:123456789012:es:prod-db-events
    sns_topic_arn:
      description: ARN of the topic the events go to.
      type: str
    source_type:
      description: The source type, absent when the subscription covers all of them.
      type: str
      sample: db-instance
    source_ids_list:
      description: The source identifiers; empty for all sources of the type.
      type: list
      elements: str
    event_categories_list:
      description: The categories; empty for all categories of the source type.
      type: list
      elements: str
      sample: [failover, failure, low storage]
    enabled:
      description: Whether notifications are sent.
      type: bool
    status:
      description: RDS's status of the subscription, for example C(active).
      type: str
    tags:
      description: Tags of the subscription.
      type: dict
actions:
  description: The RDS calls the run made (in check mode, would make), in order.
  returned: always
  type: list
  elements: str
  sample: [ModifyEventSubscription, AddSourceIdentifierToSubscription]
categories_source:
  description:
    - Where the valid categories came from, C(DescribeEventCategories) or C(documented table). Absent with
      O(state=absent).
  returned: when state is present
  type: str
  sample: DescribeEventCategories
"""

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list
from ansible_collections.amazon.aws.plugins.module_utils.tagging import boto3_tag_list_to_ansible_dict
from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict

from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import rds_client
from ansible_collections.dbre.rds.plugins.module_utils.event_categories import DOCUMENTED_EVENT_CATEGORIES
from ansible_collections.dbre.rds.plugins.module_utils.event_subscriptions import categories_map_from_response
from ansible_collections.dbre.rds.plugins.module_utils.event_subscriptions import SOURCE_KINDS
from ansible_collections.dbre.rds.plugins.module_utils.event_subscriptions import current_state
from ansible_collections.dbre.rds.plugins.module_utils.event_subscriptions import option_problems
from ansible_collections.dbre.rds.plugins.module_utils.event_subscriptions import plan_subscription
from ansible_collections.dbre.rds.plugins.module_utils.event_subscriptions import source_problems
from ansible_collections.dbre.rds.plugins.module_utils.event_subscriptions import validation_problems
from ansible_collections.dbre.rds.plugins.module_utils import rds_resources
from ansible_collections.dbre.rds.plugins.module_utils.module_warnings import warn


def describe_subscription(module, client, name):
    """(described subscription, tags), or (None, {}) when it does not exist."""
    try:
        found = rds_resources.paginate(client, "describe_event_subscriptions", "EventSubscriptionsList",
                                       SubscriptionName=name)
    except is_boto3_error_code("SubscriptionNotFound"):
        return None, {}
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Failed to describe RDS event subscription {name}: check the rds:Describe* "
                                    "permissions and the region")
    if not found:
        return None, {}
    described = found[0]
    try:
        tag_list = client.list_tags_for_resource(ResourceName=described["EventSubscriptionArn"], aws_retry=True)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg=f"Failed to list the tags of RDS event subscription {name}: allow "
                                    "rds:ListTagsForResource")
    return described, boto3_tag_list_to_ansible_dict(tag_list.get("TagList") or [])


def event_categories_map(module, client):
    """({source_type: [categories]}, where they came from): RDS's own answer, else the documented table."""
    try:
        response = client.describe_event_categories(aws_retry=True)
        described = categories_map_from_response(response.get("EventCategoriesMapList"))
        if described:
            return described, "DescribeEventCategories"
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError,
            botocore.parsers.ResponseParserError) as e:
        reason = e.response["Error"]["Code"] if isinstance(e, botocore.exceptions.ClientError) else type(e).__name__
        warn(module, f"Could not describe the RDS event categories ({reason}); checked against the table "
                     "documented in the RDS user guide instead.")
    return dict(DOCUMENTED_EVENT_CATEGORIES), "documented table"


def find_sources(module, client, source_type, source_ids):
    """{identifier: (kind, described)} of each source id: a DB instance, a DB cluster, or neither (None)."""
    found = {}
    try:
        for source_id in sorted(set(source_ids or [])):
            instance = rds_resources.describe_instance(client, source_id)
            cluster = None if instance else rds_resources.describe_cluster(client, source_id)
            if instance:
                found[source_id] = ("instance", instance)
            else:
                found[source_id] = ("cluster", cluster) if cluster else (None, None)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg=f"Failed to look up the {source_type} sources {', '.join(source_ids)}: allow "
                                    "rds:DescribeDBInstances and rds:DescribeDBClusters")
    return found


def apply_plan(module, client, name, plan, arn):
    """Make the calls of the plan; returns the action names in order."""
    actions = []
    try:
        if plan["action"] == "delete":
            client.delete_event_subscription(SubscriptionName=name, aws_retry=True)
            return ["DeleteEventSubscription"]
        if plan["action"] == "create":
            client.create_event_subscription(SubscriptionName=name, aws_retry=True, **plan["create"])
            return ["CreateEventSubscription"]
        if plan["modify"]:
            client.modify_event_subscription(SubscriptionName=name, aws_retry=True, **plan["modify"])
            actions.append("ModifyEventSubscription")
        for source_id in plan["add_source_ids"]:
            client.add_source_identifier_to_subscription(SubscriptionName=name, SourceIdentifier=source_id,
                                                         aws_retry=True)
            actions.append("AddSourceIdentifierToSubscription")
        for source_id in plan["remove_source_ids"]:
            client.remove_source_identifier_from_subscription(SubscriptionName=name, SourceIdentifier=source_id,
                                                              aws_retry=True)
            actions.append("RemoveSourceIdentifierFromSubscription")
        if plan["add_tags"]:
            client.add_tags_to_resource(ResourceName=arn, aws_retry=True,
                                        Tags=ansible_dict_to_boto3_tag_list(dict(sorted(plan["add_tags"].items()))))
            actions.append("AddTagsToResource")
        if plan["remove_tags"]:
            client.remove_tags_from_resource(ResourceName=arn, TagKeys=plan["remove_tags"], aws_retry=True)
            actions.append("RemoveTagsFromResource")
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        done = ", ".join(actions) or "nothing"
        module.fail_json_aws(e, msg=f"Failed to {plan['action']} RDS event subscription {name} (done before the "
                                    f"failure: {done}): check the topic ARN, the source identifiers and the IAM "
                                    "permissions, then run again")
    return actions


def planned_actions(plan):
    """The call names a plan makes, for check mode."""
    if plan["action"] == "delete":
        return ["DeleteEventSubscription"]
    if plan["action"] == "create":
        return ["CreateEventSubscription"]
    actions = ["ModifyEventSubscription"] if plan["modify"] else []
    actions += ["AddSourceIdentifierToSubscription"] * len(plan["add_source_ids"])
    actions += ["RemoveSourceIdentifierFromSubscription"] * len(plan["remove_source_ids"])
    actions += ["AddTagsToResource"] if plan["add_tags"] else []
    actions += ["RemoveTagsFromResource"] if plan["remove_tags"] else []
    return actions


def predicted_subscription(name, described, after):
    """The subscription as it will be described after the plan, for check mode."""
    if after is None:
        return {}
    result = dict(described or {}, CustSubscriptionId=name, Status=(described or {}).get("Status", "creating"))
    result.update(SnsTopicArn=after["sns_topic_arn"], SourceIdsList=after["source_ids"],
                  EventCategoriesList=after["event_categories"], Enabled=after["enabled"])
    if after["source_type"]:
        result["SourceType"] = after["source_type"]
    return result


def result_subscription(described, tags):
    if not described:
        return {}
    result = camel_dict_to_snake_dict(described)
    result["tags"] = tags
    return result


def main():
    argument_spec = dict(
        name=dict(type="str", required=True, aliases=["subscription_name"]),
        state=dict(type="str", default="present", choices=["present", "absent"]),
        sns_topic_arn=dict(type="str"),
        source_type=dict(type="str"),
        source_ids=dict(type="list", elements="str"),
        event_categories=dict(type="list", elements="str"),
        enabled=dict(type="bool"),
        tags=dict(type="dict", aliases=["resource_tags"]),
        purge_tags=dict(type="bool", default=True),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    name = params["name"]
    problems = option_problems(params)
    if problems:
        module.fail_json(msg=f"Invalid options for RDS event subscription {name}: " + "; ".join(problems))
    client = rds_client(module)

    described, tags = describe_subscription(module, client, name)
    current = current_state(described, tags)
    result = dict(changed=False)

    if params["state"] == "present":
        desired = dict(params)
        if desired["sns_topic_arn"] is None and current is None:
            module.fail_json(msg=f"sns_topic_arn is required to create RDS event subscription {name}")
        if desired["sns_topic_arn"] is None:
            desired["sns_topic_arn"] = current["sns_topic_arn"]
        categories_map, result["categories_source"] = event_categories_map(module, client)
        effective = dict(desired)
        if effective["source_type"] is None and current is not None:
            effective["source_type"] = current["source_type"]
        problems = validation_problems(effective, categories_map)
        if not problems and effective["source_type"] in SOURCE_KINDS and desired["source_ids"]:
            found = find_sources(module, client, effective["source_type"], desired["source_ids"])
            problems = source_problems(effective["source_type"], found)
        if problems:
            module.fail_json(msg=f"Invalid RDS event subscription {name}: " + "; ".join(problems), **result)
    else:
        desired = dict(state="absent")

    plan = plan_subscription(desired, current, purge_tags=params["purge_tags"])
    result["changed"] = plan["changed"]
    if module.check_mode or not plan["changed"]:
        result["actions"] = planned_actions(plan) if plan["changed"] else []
        result["event_subscription"] = result_subscription(predicted_subscription(name, described, plan["after"]),
                                                           (plan["after"] or {}).get("tags", {}))
    else:
        arn = (described or {}).get("EventSubscriptionArn")
        result["actions"] = apply_plan(module, client, name, plan, arn)
        described, tags = describe_subscription(module, client, name) if plan["after"] is not None else (None, {})
        result["event_subscription"] = result_subscription(described, tags)
    if module._diff:
        result["diff"] = dict(before=plan["before"] or {}, after=plan["after"] or {})
    module.exit_json(**result)


if __name__ == "__main__":
    main()

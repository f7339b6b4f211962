# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RDS event subscriptions: validation of source types and categories, and the plan from current to desired state.

Pure functions over boto3-shaped dicts; ``rds_event_subscription`` does the calls.
"""

from __future__ import annotations

import re

from ansible_collections.amazon.aws.plugins.module_utils.tagging import ansible_dict_to_boto3_tag_list
from ansible_collections.amazon.aws.plugins.module_utils.tagging import compare_aws_tags

from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import identifier_problems


def categories_map_from_response(event_categories_map_list):
    """{source_type: [categories]} from DescribeEventCategories' ``EventCategoriesMapList``."""
    return {
        item["SourceType"]: sorted(c.lower() for c in item.get("EventCategories") or [])
        for item in event_categories_map_list or []
        if item.get("SourceType")
    }


def normalise_categories(categories):
    """Categories compare case-insensitively and as a set; RDS stores them in lower case."""
    return sorted({str(c).strip().lower() for c in categories or []})


def validation_problems(desired, categories_map):
    """What is wrong with a desired subscription, as messages that name the fix; empty when it is valid."""
    problems = []
    source_type = desired.get("source_type")
    categories = desired.get("event_categories")
    if not str(desired.get("sns_topic_arn") or "").startswith("arn:"):
        problems.append(f"sns_topic_arn {desired.get('sns_topic_arn')!r} is not an ARN: pass the topic's ARN "
                        "(for example the topic_arn that community.aws.sns_topic returns)")
    if source_type is None:
        if categories:
            problems.append("event_categories need a source_type: categories belong to one source type "
                            f"({', '.join(sorted(categories_map))})")
        if desired.get("source_ids"):
            problems.append("source_ids need a source_type (db-instance for instance identifiers, db-cluster for "
                            "cluster identifiers)")
        return problems
    if source_type not in categories_map:
        problems.append(f"unknown source_type {source_type!r}: choose from {', '.join(sorted(categories_map))}")
        return problems
    valid = set(categories_map[source_type])
    unknown = [c for c in normalise_categories(categories) if c not in valid]
    if unknown:
        problems.append(f"event categories {', '.join(repr(c) for c in unknown)} do not exist for source_type "
                        f"{source_type}: choose from {', '.join(sorted(valid))}")
    return problems


def current_state(described, tags=None):
    """The comparable state of a described subscription (``EventSubscriptionsList`` item) and its tags."""
    if not described:
        return None
    return dict(
        sns_topic_arn=described.get("SnsTopicArn"),
        source_type=described.get("SourceType"),
        source_ids=sorted(described.get("SourceIdsList") or []),
        event_categories=normalise_categories(described.get("EventCategoriesList")),
        enabled=bool(described.get("Enabled")),
        tags=dict(tags or {}),
    )


def plan_subscription(desired, current, purge_tags=True):
    """The calls that take ``current`` (from :func:`current_state`, None when missing) to ``desired``.

    ``desired`` holds state, sns_topic_arn, source_type, source_ids, event_categories, enabled and tags; a value of
    None leaves that property as it is. Returns a dict: action (create, update, delete or none), changed, create
    (CreateEventSubscription arguments), modify (ModifyEventSubscription arguments besides the name), add_source_ids,
    remove_source_ids, add_tags, remove_tags, before and after (for diff mode).
    """
    plan = dict(action="none", changed=False, create=None, modify={}, add_source_ids=[], remove_source_ids=[],
                add_tags={}, remove_tags=[], before=current, after=current)
    if desired.get("state") == "absent":
        if current is not None:
            plan.update(action="delete", changed=True, after=None)
        return plan

    if current is None:
        after = dict(
            sns_topic_arn=desired["sns_topic_arn"],
            source_type=desired.get("source_type"),
            source_ids=sorted(set(desired.get("source_ids") or [])),
            event_categories=normalise_categories(desired.get("event_categories")),
            enabled=True if desired.get("enabled") is None else bool(desired["enabled"]),
            tags=dict(desired.get("tags") or {}),
        )
        create = dict(SnsTopicArn=after["sns_topic_arn"], Enabled=after["enabled"])
        if after["source_type"]:
            create["SourceType"] = after["source_type"]
        if after["event_categories"]:
            create["EventCategories"] = after["event_categories"]
        if after["source_ids"]:
            create["SourceIds"] = after["source_ids"]
        if after["tags"]:
            create["Tags"] = ansible_dict_to_boto3_tag_list(dict(sorted(after["tags"].items())))
        plan.update(action="create", changed=True, create=create, after=after)
        return plan

    after = dict(current)
    modify = {}
    if desired.get("sns_topic_arn") is not None and desired["sns_topic_arn"] != current["sns_topic_arn"]:
        modify["SnsTopicArn"] = after["sns_topic_arn"] = desired["sns_topic_arn"]
    if desired.get("source_type") is not None and desired["source_type"] != current["source_type"]:
        modify["SourceType"] = after["source_type"] = desired["source_type"]
    if desired.get("event_categories") is not None:
        wanted = normalise_categories(desired["event_categories"])
        if wanted != current["event_categories"]:
            modify["EventCategories"] = after["event_categories"] = wanted
            if "SourceType" not in modify and after["source_type"]:
                # RDS reads the categories against the source type given in the same call.
                modify["SourceType"] = after["source_type"]
    if desired.get("enabled") is not None and bool(desired["enabled"]) != current["enabled"]:
        modify["Enabled"] = after["enabled"] = bool(desired["enabled"])

    add_ids, remove_ids = [], []
    if desired.get("source_ids") is not None:
        wanted_ids = set(desired["source_ids"])
        add_ids = sorted(wanted_ids - set(current["source_ids"]))
        remove_ids = sorted(set(current["source_ids"]) - wanted_ids)
        after["source_ids"] = sorted(wanted_ids)

    add_tags, remove_tags = {}, []
    if desired.get("tags") is not None:
        add_tags, remove_tags = compare_aws_tags(current["tags"], desired["tags"], purge_tags=purge_tags)
        add_tags = {k: str(v) for k, v in add_tags.items()}
        remove_tags = sorted(remove_tags)
        tags_after = dict(current["tags"])
        tags_after.update(add_tags)
        for key in remove_tags:
            tags_after.pop(key, None)
        after["tags"] = tags_after

    changed = bool(modify or add_ids or remove_ids or add_tags or remove_tags)
    plan.update(action="update" if changed else "none", changed=changed, modify=modify, add_source_ids=add_ids,
                remove_source_ids=remove_ids, add_tags=add_tags, remove_tags=remove_tags, after=after)
    return plan


# SubscriptionName: letters, digits and hyphens, fewer than 256 characters.
SUBSCRIPTION_NAME_MAX = 255
_SNS_TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")
SOURCE_KINDS = {"db-instance": "instance", "db-cluster": "cluster"}


def option_problems(params):
    """What is wrong with the options of rds_event_subscription that needs no AWS call; empty when they are valid."""
    problems = []
    name = params.get("name")
    if name is None or not str(name).strip():
        problems.append("name must not be empty or blank: name the subscription")
    elif len(str(name)) > SUBSCRIPTION_NAME_MAX or not re.match(r"^[A-Za-z0-9-]+$", str(name)):
        problems.append(f"name {name!r} must be 1 to {SUBSCRIPTION_NAME_MAX} letters, digits and hyphens")
    topic = params.get("sns_topic_arn")
    if topic is not None and str(topic).startswith("arn:") and not _SNS_TOPIC_ARN.match(str(topic)):
        problems.append(f"sns_topic_arn {topic!r} is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<topic>)")
    for source_id in params.get("source_ids") or []:
        problems += identifier_problems(source_id, "source_ids item")
    for category in params.get("event_categories") or []:
        if not str(category or "").strip():
            problems.append("event_categories holds an empty category: name each one (failover, failure, ...)")
    for key, value in (params.get("tags") or {}).items():
        if not str(key).strip() or len(str(key)) > 128:
            problems.append(f"tag key {key!r} must be 1 to 128 characters")
        elif str(key).lower().startswith("aws:"):
            problems.append(f"tag key {key!r}: the aws: prefix is reserved for AWS")
        if value is None or len(str(value)) > 256:
            problems.append(f"tag {key!r} needs a value of at most 256 characters (an empty string is fine)")
    return problems


def source_problems(source_type, found):
    """Source identifiers that do not name a source of ``source_type``, with what they are instead.

    ``found`` maps each identifier to (kind, described) where kind is ``instance``, ``cluster`` or None (neither
    exists) and described the instance or cluster; only db-instance and db-cluster sources are looked up.
    """
    wanted = SOURCE_KINDS.get(source_type)
    problems = []
    for source_id, (kind, described) in sorted(found.items()):
        if kind == wanted:
            continue
        if kind is None:
            problems.append(f"source_ids item {source_id!r}: no {source_type} of that name exists in this region: "
                            "check the identifier")
        elif kind == "cluster":
            problems.append(f"source_ids item {source_id!r} is an Aurora DB cluster, not a DB instance: use "
                            "source_type db-cluster for cluster events, or name its member instances")
        else:
            cluster = (described or {}).get("DBClusterIdentifier")
            advice = (f"give its cluster {cluster!r}" if cluster else "use source_type db-instance")
            problems.append(f"source_ids item {source_id!r} is a DB instance, not a DB cluster: {advice}")
    return problems

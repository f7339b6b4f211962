# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RDS event subscriptions as AWS serves them: DescribeEventCategories, ModifyEventSubscription,
Add/RemoveSourceIdentifierToSubscription, SubscriptionNotFound, SubscriptionCategoryNotFound, Enabled defaulting to true
(moto 5.2.5 lacks the first four and defaults Enabled to false)."""

from __future__ import annotations

from moto.core.responses import ActionResult
from moto.rds import responses as rds_responses
from moto.rds.exceptions import RDSClientError

from tests.lab import collection
from tests.lab.fidelity._support import replace

CATEGORIES = collection.event_categories.DOCUMENTED_EVENT_CATEGORIES  # the RDS user guide's table


class SubscriptionNotFound(RDSClientError):
    def __init__(self, name):
        super().__init__("SubscriptionNotFound", f"Subscription {name} not found.")


class SubscriptionCategoryNotFound(RDSClientError):
    def __init__(self, message):
        super().__init__("SubscriptionCategoryNotFound", message)


class SourceNotFound(RDSClientError):
    def __init__(self, source):
        super().__init__("SourceNotFound", f"Source {source} not found.")


def _subscription(response, name):
    found = response.backend.event_subscriptions.get(name)
    if found is None:
        raise SubscriptionNotFound(name)
    return found


def _check_categories(source_type, categories):
    if source_type is None:
        return
    if source_type not in CATEGORIES:
        raise RDSClientError("InvalidParameterValue", f"Invalid source type: {source_type}")
    unknown = [c for c in categories or [] if c.lower() not in CATEGORIES[source_type]]
    if unknown:
        raise SubscriptionCategoryNotFound(f"Categories {unknown} do not exist for source type {source_type}.")


def _source_exists(backend, source_type, source):
    """Whether a source of that type exists; source types the lab does not model are taken on trust."""
    holders = {
        "db-instance": backend.databases,
        "db-cluster": backend.clusters,
        "db-parameter-group": backend.db_parameter_groups,
        "db-snapshot": backend.database_snapshots,
        "db-cluster-snapshot": backend.cluster_snapshots,
    }.get(source_type)
    return holders is None or source in holders or source.lower() in holders


def _describe_event_categories(self):
    source_type = self.params.get("SourceType")
    if source_type is not None and source_type not in CATEGORIES:
        raise RDSClientError("InvalidParameterValue", f"Invalid source type: {source_type}")
    items = [{"SourceType": t, "EventCategories": c} for t, c in CATEGORIES.items() if source_type in (None, t)]
    return ActionResult({"EventCategoriesMapList": items})


def _create_event_subscription(self):
    params = self.params
    _check_categories(params.get("SourceType"), params.get("EventCategories"))
    if params.get("SourceIds") and not params.get("SourceType"):
        raise RDSClientError("InvalidParameterCombination", "SourceIds need a SourceType.")
    for source in params.get("SourceIds") or []:
        if not _source_exists(self.backend, params.get("SourceType"), source):
            raise SourceNotFound(source)
    if params.get("Enabled") is None:
        params["Enabled"] = True  # AWS defaults Enabled to true; moto to false
    return _ORIGINAL_CREATE(self)


def _modify_event_subscription(self):
    params = self.params
    subscription = _subscription(self, params.get("SubscriptionName"))
    source_type = params.get("SourceType") or subscription.source_type
    if params.get("EventCategories") is not None:
        _check_categories(source_type, params["EventCategories"])
        subscription.event_categories = [c.lower() for c in params["EventCategories"]]
    elif params.get("SourceType"):
        _check_categories(source_type, subscription.event_categories)
    if params.get("SourceType"):
        subscription.source_type = params["SourceType"]
    if params.get("SnsTopicArn"):
        subscription.sns_topic_arn = params["SnsTopicArn"]
    if params.get("Enabled") is not None:
        subscription.enabled = params["Enabled"]
    return ActionResult({"EventSubscription": subscription})


def _add_source_identifier_to_subscription(self):
    subscription = _subscription(self, self.params.get("SubscriptionName"))
    source = self.params.get("SourceIdentifier")
    if not _source_exists(self.backend, subscription.source_type, source):
        raise SourceNotFound(source)
    if source not in subscription.source_ids:
        subscription.source_ids.append(source)
    return ActionResult({"EventSubscription": subscription})


def _remove_source_identifier_from_subscription(self):
    subscription = _subscription(self, self.params.get("SubscriptionName"))
    source = self.params.get("SourceIdentifier")
    if source not in subscription.source_ids:
        raise SourceNotFound(source)
    subscription.source_ids.remove(source)
    return ActionResult({"EventSubscription": subscription})


_ORIGINAL_CREATE = rds_responses.RDSResponse.create_event_subscription


def event_subscriptions() -> None:
    """Install the event subscription calls on moto's RDSResponse."""
    for name, function in (("describe_event_categories", _describe_event_categories),
                           ("create_event_subscription", _create_event_subscription),
                           ("modify_event_subscription", _modify_event_subscription),
                           ("add_source_identifier_to_subscription", _add_source_identifier_to_subscription),
                           ("remove_source_identifier_from_subscription", _remove_source_identifier_from_subscription)):
        replace(rds_responses.RDSResponse, name, function)

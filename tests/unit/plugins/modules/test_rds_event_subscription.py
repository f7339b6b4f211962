# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The module's own glue: what check mode reports it would call, and the subscription it predicts."""

from ansible_collections.dbre.rds.plugins.module_utils.event_subscriptions import plan_subscription
from ansible_collections.dbre.rds.plugins.modules import rds_event_subscription as module

TOPIC = "arn:aws:sns:us-east-1:123456789012:db-events"
CURRENT = dict(sns_topic_arn=TOPIC, source_type="db-instance", source_ids=["db1"], event_categories=["failover"],
               enabled=True, tags={})
DESCRIBED = {"CustSubscriptionId": "s", "SnsTopicArn": TOPIC, "SourceType": "db-instance", "SourceIdsList": ["db1"],
             "EventCategoriesList": ["failover"], "Enabled": True, "Status": "active",
             "EventSubscriptionArn": "arn:aws:rds:us-east-1:123456789012:es:s"}


def _desired(**changes):
    desired = dict(state="present", sns_topic_arn=TOPIC, source_type="db-instance", source_ids=["db1"],
                   event_categories=["failover"], enabled=True, tags=None)
    desired.update(changes)
    return desired


def test_planned_actions_list_every_call_in_order():
    plan = plan_subscription(_desired(event_categories=["failure"], source_ids=["db2", "db3"], tags={"a": "b"}),
                             CURRENT)
    assert module.planned_actions(plan) == [
        "ModifyEventSubscription", "AddSourceIdentifierToSubscription", "AddSourceIdentifierToSubscription",
        "RemoveSourceIdentifierFromSubscription", "AddTagsToResource"]
    assert module.planned_actions(plan_subscription(_desired(), None)) == ["CreateEventSubscription"]
    assert module.planned_actions(plan_subscription({"state": "absent"}, CURRENT)) == ["DeleteEventSubscription"]


def test_predicted_subscription_in_check_mode():
    plan = plan_subscription(_desired(enabled=False, event_categories=["failure", "failover"]), CURRENT)
    predicted = module.predicted_subscription("s", DESCRIBED, plan["after"])
    assert predicted["Enabled"] is False
    assert predicted["EventCategoriesList"] == ["failover", "failure"]
    assert predicted["EventSubscriptionArn"] == DESCRIBED["EventSubscriptionArn"]
    created = module.predicted_subscription("new", None, plan_subscription(_desired(), None)["after"])
    assert created["CustSubscriptionId"] == "new" and created["Status"] == "creating"
    assert module.predicted_subscription("gone", DESCRIBED, None) == {}


def test_result_is_snake_case_with_tags():
    result = module.result_subscription(DESCRIBED, {"team": "dbre"})
    assert result["cust_subscription_id"] == "s" and result["event_categories_list"] == ["failover"]
    assert result["tags"] == {"team": "dbre"}
    assert module.result_subscription(None, {}) == {}

# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RDS event subscriptions as AWS serves them: categories, modify, source identifiers, errors, Enabled by default."""

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.lab


def _error_code(call, **kwargs):
    with pytest.raises(ClientError) as error:
        call(**kwargs)
    return error.value.response["Error"]["Code"]


@pytest.fixture
def topic(lab_clean):
    return lab_clean.client("sns").create_topic(Name="lab-events")["TopicArn"]


def test_describe_event_categories_lists_the_documented_categories(lab_clean):
    rds = lab_clean.client()
    listed = rds.describe_event_categories(SourceType="db-instance")["EventCategoriesMapList"]
    assert [item["SourceType"] for item in listed] == ["db-instance"]
    assert {"failover", "low storage", "maintenance", "availability"} <= set(listed[0]["EventCategories"])
    every = {item["SourceType"] for item in rds.describe_event_categories()["EventCategoriesMapList"]}
    assert {"db-instance", "db-cluster", "db-snapshot", "db-parameter-group"} <= every


def test_create_defaults_to_enabled_and_rejects_unknown_categories(lab_clean, topic):
    rds = lab_clean.client()
    created = rds.create_event_subscription(SubscriptionName="s1", SnsTopicArn=topic, SourceType="db-instance",
                                            EventCategories=["failover"])["EventSubscription"]
    assert created["Enabled"] is True
    code = _error_code(rds.create_event_subscription, SubscriptionName="s2", SnsTopicArn=topic,
                       SourceType="db-instance", EventCategories=["not-a-category"])
    assert code == "SubscriptionCategoryNotFound"
    assert [s["CustSubscriptionId"] for s in rds.describe_event_subscriptions()["EventSubscriptionsList"]] == ["s1"]


def test_modify_changes_categories_and_enabled(lab_clean, topic):
    rds = lab_clean.client()
    rds.create_event_subscription(SubscriptionName="s1", SnsTopicArn=topic, SourceType="db-instance",
                                  EventCategories=["failover"])
    modified = rds.modify_event_subscription(SubscriptionName="s1", EventCategories=["failover", "low storage"],
                                             Enabled=False)["EventSubscription"]
    assert sorted(modified["EventCategoriesList"]) == ["failover", "low storage"] and modified["Enabled"] is False
    described = rds.describe_event_subscriptions(SubscriptionName="s1")["EventSubscriptionsList"][0]
    assert sorted(described["EventCategoriesList"]) == ["failover", "low storage"] and described["Enabled"] is False
    assert _error_code(rds.modify_event_subscription, SubscriptionName="s1",
                       EventCategories=["bogus"]) == "SubscriptionCategoryNotFound"
    assert _error_code(rds.modify_event_subscription, SubscriptionName="missing",
                       Enabled=True) == "SubscriptionNotFound"


def test_source_identifiers_are_added_and_removed(lab_clean, topic):
    rds = lab_clean.client()
    rds.create_db_instance(DBInstanceIdentifier="evdb", Engine="mysql", DBInstanceClass="db.t3.micro",
                           MasterUsername="admin", MasterUserPassword="lab-password-1", AllocatedStorage=20)
    rds.create_event_subscription(SubscriptionName="s1", SnsTopicArn=topic, SourceType="db-instance")
    added = rds.add_source_identifier_to_subscription(SubscriptionName="s1",
                                                      SourceIdentifier="evdb")["EventSubscription"]
    assert added["SourceIdsList"] == ["evdb"]
    assert _error_code(rds.add_source_identifier_to_subscription, SubscriptionName="s1",
                       SourceIdentifier="no-such-db") == "SourceNotFound"
    removed = rds.remove_source_identifier_from_subscription(SubscriptionName="s1",
                                                             SourceIdentifier="evdb")["EventSubscription"]
    assert not removed.get("SourceIdsList")
    assert _error_code(rds.remove_source_identifier_from_subscription, SubscriptionName="s1",
                       SourceIdentifier="evdb") == "SourceNotFound"
    assert _error_code(rds.add_source_identifier_to_subscription, SubscriptionName="missing",
                       SourceIdentifier="evdb") == "SubscriptionNotFound"

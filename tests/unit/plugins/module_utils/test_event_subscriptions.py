# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
import pytest

from ansible_collections.dbre.rds.plugins.module_utils import event_subscriptions as es

TOPIC = "arn:aws:sns:us-east-1:123456789012:db-events"
OTHER_TOPIC = "arn:aws:sns:us-east-1:123456789012:other"
MAP = es.DOCUMENTED_EVENT_CATEGORIES


def _current(**changes):
    state = dict(sns_topic_arn=TOPIC, source_type="db-instance", source_ids=["db1"],
                 event_categories=["failover", "failure"], enabled=True, tags={"team": "dbre"})
    state.update(changes)
    return state


def _desired(**changes):
    desired = dict(state="present", sns_topic_arn=TOPIC, source_type="db-instance", source_ids=["db1"],
                   event_categories=["Failure", "failover"], enabled=True, tags={"team": "dbre"})
    desired.update(changes)
    return desired


def test_categories_map_from_response():
    described = [{"SourceType": "db-instance", "EventCategories": ["Failover", "backup"]}, {"EventCategories": []}]
    assert es.categories_map_from_response(described) == {"db-instance": ["backup", "failover"]}


@pytest.mark.parametrize("desired, fragment", [
    (_desired(source_type="db-instances"), "unknown source_type 'db-instances'"),
    (_desired(event_categories=["failover", "explosion"]), "'explosion' do not exist for source_type db-instance"),
    (_desired(source_type="db-parameter-group", event_categories=["failover"]), "'failover' do not exist"),
    (_desired(source_type=None), "event_categories need a source_type"),
    (_desired(source_type=None, event_categories=None), "source_ids need a source_type"),
    (_desired(sns_topic_arn="db-events"), "is not an ARN"),
])
def test_validation_names_the_problem_and_the_choices(desired, fragment):
    problems = es.validation_problems(desired, MAP)
    assert any(fragment in p for p in problems), problems


@pytest.mark.parametrize("desired", [
    _desired(),
    _desired(event_categories=["low storage", "maintenance", "notification"]),
    _desired(source_type="db-cluster", event_categories=["failover"]),
    _desired(source_type=None, source_ids=None, event_categories=None),
])
def test_valid_subscriptions_have_no_problems(desired):
    assert es.validation_problems(desired, MAP) == []


def test_create_plan():
    plan = es.plan_subscription(_desired(enabled=None), None)
    assert plan["action"] == "create" and plan["changed"]
    assert plan["create"] == dict(SnsTopicArn=TOPIC, Enabled=True, SourceType="db-instance",
                                  EventCategories=["failover", "failure"], SourceIds=["db1"],
                                  Tags=[{"Key": "team", "Value": "dbre"}])
    assert plan["before"] is None and plan["after"]["enabled"] is True


def test_unchanged_when_equal_ignoring_case_and_order():
    plan = es.plan_subscription(_desired(event_categories=["FAILURE", "failover"]), _current())
    assert plan["action"] == "none" and not plan["changed"]


def test_none_leaves_properties_alone():
    desired = dict(state="present", sns_topic_arn=None, source_type=None, source_ids=None, event_categories=None,
                   enabled=None, tags=None)
    assert not es.plan_subscription(desired, _current())["changed"]


@pytest.mark.parametrize("changes, modify", [
    (dict(event_categories=["failover", "low storage"]),
     dict(EventCategories=["failover", "low storage"], SourceType="db-instance")),
    (dict(enabled=False), dict(Enabled=False)),
    (dict(sns_topic_arn=OTHER_TOPIC), dict(SnsTopicArn=OTHER_TOPIC)),
    (dict(source_type="db-cluster", event_categories=["failover"]),
     dict(SourceType="db-cluster", EventCategories=["failover"])),
])
def test_modify_plans(changes, modify):
    plan = es.plan_subscription(_desired(**changes), _current())
    assert plan["action"] == "update" and plan["modify"] == modify
    assert plan["add_source_ids"] == [] and plan["remove_source_ids"] == []


def test_source_ids_and_tags():
    plan = es.plan_subscription(_desired(source_ids=["db2"], tags={"env": "prod"}), _current())
    assert plan["modify"] == {}
    assert plan["add_source_ids"] == ["db2"] and plan["remove_source_ids"] == ["db1"]
    assert plan["add_tags"] == {"env": "prod"} and plan["remove_tags"] == ["team"]
    assert plan["after"]["tags"] == {"env": "prod"}
    kept = es.plan_subscription(_desired(tags={"env": "prod"}), _current(), purge_tags=False)
    assert kept["remove_tags"] == [] and kept["after"]["tags"] == {"team": "dbre", "env": "prod"}


def test_delete_plans():
    assert es.plan_subscription({"state": "absent"}, _current())["action"] == "delete"
    assert not es.plan_subscription({"state": "absent"}, None)["changed"]


def test_current_state_from_describe():
    described = {"CustSubscriptionId": "s", "SnsTopicArn": TOPIC, "SourceType": "db-instance",
                 "SourceIdsList": ["b", "a"], "EventCategoriesList": ["Failover"], "Enabled": True}
    assert es.current_state(described, {"k": "v"}) == dict(
        sns_topic_arn=TOPIC, source_type="db-instance", source_ids=["a", "b"], event_categories=["failover"],
        enabled=True, tags={"k": "v"})
    assert es.current_state(None) is None

# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
import pytest

from ansible_collections.dbre.rds.plugins.module_utils.event_categories import DOCUMENTED_EVENT_CATEGORIES
from ansible_collections.dbre.rds.plugins.module_utils import event_subscriptions as es

TOPIC = "arn:aws:sns:us-east-1:123456789012:db-events"
OTHER_TOPIC = "arn:aws:sns:us-east-1:123456789012:other"
MAP = DOCUMENTED_EVENT_CATEGORIES


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


def _options(**changes):
    params = dict(name="db-events", sns_topic_arn=TOPIC, source_ids=["db1"], event_categories=["failover"],
                  tags={"team": "dbre"})
    params.update(changes)
    return params


@pytest.mark.parametrize("changes, fragment", [
    (dict(name=""), "name must not be empty or blank"),
    (dict(name="  "), "name must not be empty or blank"),
    (dict(name="db events"), "must be 1 to 255 letters, digits and hyphens"),
    (dict(name="e" * 256), "must be 1 to 255 letters, digits and hyphens"),
    (dict(sns_topic_arn="arn:aws:sqs:us-east-1:123456789012:queue"), "is not an SNS topic ARN"),
    (dict(source_ids=[""]), "source_ids item must not be empty or blank"),
    (dict(source_ids=["db_1"]), "'db_1' is not a valid RDS identifier"),
    (dict(event_categories=["failover", " "]), "event_categories holds an empty category"),
    (dict(tags={"aws:owner": "x"}), "the aws: prefix is reserved"),
    (dict(tags={"k" * 129: "x"}), "must be 1 to 128 characters"),
    (dict(tags={"team": "v" * 257}), "needs a value of at most 256 characters"),
])
def test_option_problems(changes, fragment):
    problems = es.option_problems(_options(**changes))
    assert any(fragment in p for p in problems), problems


def test_valid_options_have_no_problems():
    assert es.option_problems(_options()) == []
    assert es.option_problems(_options(sns_topic_arn=None, source_ids=None, event_categories=None, tags=None)) == []
    assert es.option_problems(_options(name="1-prod--events", tags={"team": ""})) == []


@pytest.mark.parametrize("source_type, found, fragments", [
    ("db-instance", {"db1": ("instance", {})}, []),
    ("db-cluster", {"c1": ("cluster", {})}, []),
    ("db-instance", {"gone": (None, None)}, ["'gone': no db-instance of that name exists"]),
    ("db-instance", {"c1": ("cluster", {})}, ["'c1' is an Aurora DB cluster, not a DB instance: use source_type "
                                              "db-cluster"]),
    ("db-cluster", {"m1": ("instance", {"DBClusterIdentifier": "c1"})}, ["'m1' is a DB instance, not a DB cluster: "
                                                                         "give its cluster 'c1'"]),
    ("db-cluster", {"db1": ("instance", {})}, ["use source_type db-instance"]),
])
def test_source_problems(source_type, found, fragments):
    problems = es.source_problems(source_type, found)
    assert len(problems) == len(fragments)
    for fragment, problem in zip(fragments, problems):
        assert fragment in problem


def test_tags_plan_uses_strings_and_sorted_removals():
    plan = es.plan_subscription(_desired(tags={"n": 1, "team": "dbre"}), _current(tags={"z": "1", "a": "2",
                                                                                        "team": "dbre"}))
    assert plan["add_tags"] == {"n": "1"} and plan["remove_tags"] == ["a", "z"]
    created = es.plan_subscription(_desired(tags={"b": 2, "a": True}), None)["create"]["Tags"]
    assert created == [{"Key": "a", "Value": "True"}, {"Key": "b", "Value": "2"}]

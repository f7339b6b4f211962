# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rds_blue_green's decisions: options, versions, parameter groups, which deployment a run is about, the old blue it
may delete, the plan of each state and the switchover's verdict."""

import datetime

import pytest

from ansible_collections.dbre.rds.plugins.module_utils import blue_green as bg

ARN = "arn:aws:rds:us-east-1:123456789012:db:"
BLUE, GREEN, OLD = ARN + "shop", ARN + "shop-green-abcdef", ARN + "shop-old1"
UTC = datetime.timezone.utc
# Deployment A (shop-blue-green) made 2026-11-30 from the blue created in 2024 (resource db-BLUE); its green, which
# a later deployment B made its blue and renamed shop-old1 at B's switchover, was created by A, after A.
BLUE_CREATED = datetime.datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
DEPLOYED_AT = datetime.datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
GREEN_CREATED = datetime.datetime(2026, 11, 30, 7, 1, tzinfo=UTC)


def _params(**changes):
    params = dict(db_instance_identifier="shop", blue_green_deployment_name=None, state="present",
                  target_engine_version="18.6", target_db_parameter_group_name=None, target_db_instance_class=None,
                  max_lag_seconds=10.0, switchover_timeout=300, delete_target=True, delete_old_blue=False,
                  final_snapshot_identifier=None, wait_timeout=1800, poll_interval=5.0, probe_interval=0.25,
                  probe_timeout=2, max_downtime_seconds=None, max_lost_writes=0)
    params.update(changes)
    return params


def _deployment(status="AVAILABLE", source=BLUE, target=GREEN, name="shop-blue-green", member_status=None,
                identifier="bgd-1", created=DEPLOYED_AT):
    return {"BlueGreenDeploymentIdentifier": identifier, "BlueGreenDeploymentName": name, "Source": source,
            "Target": target, "Status": status, "CreateTime": created,
            "SwitchoverDetails": [{"SourceMember": source, "TargetMember": target,
                                   "Status": member_status or status}]}


def _instance(identifier="shop", version="15.8", klass="db.t3.micro", group="shop15", **extra):
    found = {"DBInstanceIdentifier": identifier, "DBInstanceArn": ARN + identifier, "Engine": "postgres",
             "EngineVersion": version, "DBInstanceClass": klass, "DBInstanceStatus": "available",
             "DBParameterGroups": [{"DBParameterGroupName": group}]}
    found.update(extra)
    return found


def _versions(version, targets=(), family="postgres15"):
    return [{"Engine": "postgres", "EngineVersion": version, "DBParameterGroupFamily": family,
             "ValidUpgradeTarget": [{"EngineVersion": t} for t in targets]}]


# -------------------------------------------------------------------------------------------------------- options

@pytest.mark.parametrize("changes, expected", [
    ({}, []),
    ({"db_instance_identifier": "1shop"}, ["db_instance_identifier '1shop' is not a valid RDS identifier"]),
    ({"blue_green_deployment_name": "x" * 61}, ["blue_green_deployment_name"]),
    ({"target_engine_version": None}, ["state=present needs at least one of target_engine_version"]),
    ({"target_engine_version": "eighteen"}, ["target_engine_version 'eighteen' is not a PostgreSQL version"]),
    ({"switchover_timeout": 10}, ["switchover_timeout must be 30 to 3600 seconds"]),
    ({"max_lag_seconds": -1}, ["max_lag_seconds must not be negative"]),
    ({"poll_interval": 0}, ["poll_interval must be above 0"]),
    ({"delete_old_blue": True}, ["delete_old_blue is for state=absent"]),
    ({"state": "absent", "final_snapshot_identifier": "snap"}, ["final_snapshot_identifier is the snapshot taken"]),
    ({"state": "absent", "target_engine_version": None, "delete_old_blue": True}, []),
    ({"state": "switched_over", "target_engine_version": None}, []),
    ({"extension_versions": {"postgis": {"a": 1}}}, ["extension_versions.postgis must list the versions"]),
    ({"extension_versions": {"postgis": ["3.5.2"], "pgcrypto": []}}, []),
])
def test_option_problems_name_the_option_and_the_fix(changes, expected):
    found = bg.option_problems(_params(**changes))
    assert len(found) == len(expected)
    for problem, fragment in zip(found, expected):
        assert fragment in problem


def test_default_names_fit_rds_limits():
    assert bg.default_deployment_name("shop") == "shop-blue-green"
    long = "a" * 50 + "-b" * 6
    name = bg.default_deployment_name(long)
    assert len(name) <= 60 and not name.endswith("-") and bg.option_problems(
        _params(db_instance_identifier="shop", blue_green_deployment_name=name)) == []
    assert bg.default_final_snapshot("shop-old1") == "shop-old1-final"


# ------------------------------------------------------------------------------------------------------- versions

@pytest.mark.parametrize("target, rows, expected", [
    ("18.6", _versions("15.8", ["15.10", "18.6"]) + _versions("18.6", family="postgres18"), None),
    ("15.8", _versions("15.8", ["18.6"]), None),
    (None, _versions("15.8"), None),
    ("99.1", _versions("15.8", ["18.6"]), "is not a version RDS offers"),
    ("15.4", _versions("15.8", ["18.6"]) + _versions("15.4"), "is older than the current version 15.8"),
    ("18.6", _versions("15.8", ["15.10"]) + _versions("18.6"), "is not a valid upgrade target of 15.8"),
])
def test_target_version_problems(target, rows, expected):
    found = bg.target_version_problems("15.8", target, rows)
    assert (found == []) if expected is None else (len(found) == 1 and expected in found[0])


def test_a_major_upgrade_needs_no_other_consent_and_versions_compare_as_numbers():
    assert bg.target_version_problems("15.8", "15.10", _versions("15.8", ["15.10"]) + _versions("15.10")) == []
    assert bg.major_of("18.6") == "18" and bg.major_of("x") is None


def test_target_family_comes_from_the_target_version():
    rows = _versions("15.8") + _versions("18.6", family="postgres18")
    assert bg.target_family(rows, "15.8", "18.6") == "postgres18"
    assert bg.target_family(rows, "15.8", None) == "postgres15"
    assert bg.target_family([], "15.8", "18.6") == "postgres18"


@pytest.mark.parametrize("name, group, expected", [
    (None, None, None),
    ("pg18", {"DBParameterGroupName": "pg18", "DBParameterGroupFamily": "postgres18"}, None),
    ("pg18", None, "target_db_parameter_group_name pg18 does not exist: create it (family postgres18)"),
    ("pg15", {"DBParameterGroupName": "pg15", "DBParameterGroupFamily": "postgres15"},
     "is of family postgres15, not postgres18"),
])
def test_parameter_group_problems(name, group, expected):
    found = bg.parameter_group_problems(name, group, "postgres18")
    assert (found == []) if expected is None else expected in found[0]


@pytest.mark.parametrize("value, refused", [("1", False), ("0", True), (None, True)])
def test_blue_needs_logical_replication(value, refused):
    found = bg.logical_replication_problems("shop", "shop15", value)
    assert bool(found) is refused
    if refused:
        assert "rds.logical_replication=1" in found[0] and "shop15" in found[0]


def test_only_failed_blockers_refuse_with_their_fix():
    checks = [{"name": "prepared_transactions", "passed": False, "blocker": True, "value": 1,
               "fix": "COMMIT PREPARED or ROLLBACK PREPARED them"},
              {"name": "reg_columns", "passed": True, "blocker": True, "value": [], "fix": None},
              {"name": "multi_az", "passed": False, "blocker": False, "value": False, "fix": "enable Multi-AZ"}]
    assert bg.blocker_problems("shop", checks) == [
        "shop has a blocker, prepared_transactions (1): COMMIT PREPARED or ROLLBACK PREPARED them"]


@pytest.mark.parametrize("instance, expected", [
    (None, "DB instance shop does not exist"),
    (_instance(DBClusterIdentifier="c"), "is a member of the Aurora cluster c"),
    (_instance(Engine="mysql"), "runs mysql, not postgres"),
    (_instance(ReadReplicaSourceDBInstanceIdentifier="main"), "is a read replica"),
    (_instance(DBInstanceStatus="modifying"), "is modifying, not available"),
])
def test_instance_problems(instance, expected):
    assert expected in bg.instance_problems("shop", instance)[0]
    assert bg.instance_problems("shop", _instance()) == []


def test_lag_problems_need_a_datapoint_below_the_limit():
    assert bg.lag_problems(["g"], {"g": 0.5}, 1.0) == []
    assert "has no recent ReplicaLag (no datapoint whose minute ended in the last 2 minutes)" in \
        bg.lag_problems(["g"], {"g": None}, 1.0)[0]
    assert "lags 3 s behind blue, more than max_lag_seconds=1" in bg.lag_problems(["g"], {"g": 3.0}, 1.0)[0]


# ---------------------------------------------------------------------------------------------- the deployment

def test_the_deployment_is_found_by_source_before_and_by_target_after_the_switchover():
    before = _deployment()
    after = _deployment(status="SWITCHOVER_COMPLETED", source=OLD, target=BLUE)
    unrelated = _deployment(source=ARN + "other", target=ARN + "other-green", identifier="bgd-2", name="other")
    assert bg.choose_deployment([unrelated, before], BLUE, "shop") == (before, [])
    assert bg.choose_deployment([after, after], BLUE, "shop") == (after, [])  # source and target reads overlap
    assert bg.choose_deployment([unrelated], BLUE, "shop") == (None, [])
    assert bg.choose_deployment([], BLUE, "shop", "shop-blue-green") == (None, [])


def test_a_deployment_of_the_instance_under_another_name_is_refused():
    found, problems = bg.choose_deployment([_deployment(name="theirs")], BLUE, "shop", "mine")
    assert found is None and "shop is already in the blue/green deployment theirs (bgd-1, AVAILABLE)" in problems[0]
    assert bg.choose_deployment([_deployment(name="theirs")], BLUE, "shop", "theirs")[0]["Status"] == "AVAILABLE"


def test_several_deployments_of_the_instance_are_refused():
    found, problems = bg.choose_deployment([_deployment(), _deployment(identifier="bgd-2")], BLUE, "shop")
    assert found is None and "is in several blue/green deployments" in problems[0]


@pytest.mark.parametrize("deployment, ready", [
    (_deployment(), True),
    (_deployment(member_status="PROVISIONING"), False),
    (_deployment(status="PROVISIONING"), False),
    (None, False),
])
def test_ready_means_the_deployment_and_every_member_available(deployment, ready):
    assert bg.is_ready(deployment) is ready


def test_state_of_names_unfinished_tasks():
    deployment = dict(_deployment(status="PROVISIONING"), Tasks=[{"Name": "CREATING_READ_REPLICA_OF_SOURCE",
                                                                  "Status": "IN_PROGRESS"},
                                                                 {"Name": "CONFIGURE_BACKUPS", "Status": "COMPLETED"}])
    assert bg.state_of(deployment) == "PROVISIONING (CREATING_READ_REPLICA_OF_SOURCE=IN_PROGRESS)"
    assert bg.state_of(None) == "gone"


def test_a_rolled_back_switchover_stops_the_wait_with_its_reason():
    rolled_back = dict(_deployment(), StatusDetails="Switchover rolled back: green did not catch up")
    assert bg.switchover_stopped(rolled_back, seen_in_progress=True)
    # Right after the request RDS may still show AVAILABLE: not a rollback until it was seen in progress.
    assert not bg.switchover_stopped(rolled_back, seen_in_progress=False)
    assert not bg.switchover_stopped(_deployment(status="SWITCHOVER_IN_PROGRESS"), seen_in_progress=True)
    assert bg.switchover_stopped(None, False) and bg.switchover_stopped(_deployment(status="SWITCHOVER_FAILED"), False)
    assert bg.state_of(rolled_back) == "AVAILABLE: Switchover rolled back: green did not catch up"


def test_green_mismatches_name_each_field():
    green = _instance("shop-green-abcdef", version="18.6", group="pg18")
    assert bg.green_mismatches(green, _params()) == []
    found = bg.green_mismatches(green, _params(target_engine_version="18.5", target_db_instance_class="db.m5.large",
                                               target_db_parameter_group_name="pg18"))
    assert found == ["EngineVersion 18.6 (not 18.5)", "DBInstanceClass db.t3.micro (not db.m5.large)"]


@pytest.mark.parametrize("target, found, matches", [
    ("18", "18.6", True),
    ("18", "17.6", False),
    ("18.6", "18.6", True),
    ("18.6", "18.7", False),  # 18.6 asked on 18.7: a downgrade, refused by the version checks
    ("15.2", "15.7", False),
    ("18", "eighteen", False),
])
def test_a_major_only_target_matches_any_minor_of_it(target, found, matches):
    assert bg.version_matches(target, found) is matches


def test_a_second_run_with_a_major_only_target_changes_nothing():
    # Run 2 after the cleanup: no deployment, the instance on 18.6, the target "18"
    for state in ("present", "switched_over"):
        found = bg.plan(state, None, _instance(version="18.6"), _params(state=state, target_engine_version="18"))
        assert found["actions"] == [] and found["problems"] == [] and found["note"]
    # A green on 18.6 is the target "18"
    assert bg.green_mismatches(_instance("shop-green-abcdef", version="18.6"), _params(target_engine_version="18")) \
        == []
    assert bg.at_target(_instance(version="18.7"), _params(target_engine_version="18"))
    assert not bg.at_target(_instance(version="15.8"), _params(target_engine_version="18"))
    assert not bg.at_target(_instance(version="15.7"), _params(target_engine_version="15.2"))


# ------------------------------------------------------------------------------------------------------ old blue

def _old_blue(**extra):
    return _instance("shop-old1", **dict({"InstanceCreateTime": BLUE_CREATED, "DbiResourceId": "db-BLUE"}, **extra))


def test_the_old_blue_is_the_source_member_of_a_completed_switchover():
    after = _deployment(status="SWITCHOVER_COMPLETED", source=OLD, target=BLUE)
    assert bg.old_blue(after, BLUE, {OLD: _old_blue()}) == ("shop-old1", [])
    assert bg.old_blue(after, BLUE, {OLD: None}) == (None, [])  # already gone
    assert bg.old_blue(after, BLUE, {OLD: _old_blue(DBInstanceStatus="deleting")}) == (None, [])
    assert bg.old_blue(_deployment(), BLUE, {BLUE: _instance()}) == (None, [])  # not switched over: no old blue


def test_the_instance_that_carries_the_name_is_never_the_old_blue():
    # A deployment whose source is the instance now called shop (never delete production)
    odd = _deployment(status="SWITCHOVER_COMPLETED", source=BLUE, target=GREEN)
    assert bg.old_blue(odd, BLUE, {BLUE: _instance()}) == (None, [])
    # An old blue that describes as another instance than the ARN the deployment names
    after = _deployment(status="SWITCHOVER_COMPLETED", source=OLD, target=BLUE)
    identifier, problems = bg.old_blue(after, BLUE, {OLD: _instance("shop")})
    assert identifier is None and "does not describe as that instance" in problems[0]


def test_deleting_the_old_blue_keeps_its_automated_backups_and_takes_a_final_snapshot():
    assert bg.delete_old_blue_request("shop-old1", "shop-old1-final") == {
        "DBInstanceIdentifier": "shop-old1", "SkipFinalSnapshot": False,
        "FinalDBSnapshotIdentifier": "shop-old1-final", "DeleteAutomatedBackups": False}


RECORDED = [{"Key": "dbre:managed-by", "Value": "dbre.rds"}, {"Key": "dbre:blue-dbi-resource-id", "Value": "db-BLUE"}]


@pytest.mark.parametrize("deployment, old, expected", [
    # proven by the creation times (a deployment made before the resource id was recorded), or by both proofs
    ({}, {}, "shop-old1"),
    ({"TagList": RECORDED}, {}, "shop-old1"),
    ({"TagList": RECORDED}, {"InstanceCreateTime": None}, "shop-old1"),
    ({"TagList": RECORDED, "CreateTime": None}, {}, "shop-old1"),
    # boto3 answers datetimes; text timestamps compare the same
    ({"CreateTime": "2026-11-30T07:00:00Z"}, {"InstanceCreateTime": "2024-03-01T09:00:00+00:00"}, "shop-old1"),
    # deployment A names shop-old1, which is now deployment B's old blue (A's former green, created after A)
    ({}, {"InstanceCreateTime": GREEN_CREATED, "DbiResourceId": "db-GREEN"}, "not before the deployment"),
    ({}, {"InstanceCreateTime": DEPLOYED_AT}, "not before the deployment"),
    ({"TagList": RECORDED}, {"InstanceCreateTime": GREEN_CREATED, "DbiResourceId": "db-GREEN"},
     "is the resource db-GREEN, not db-BLUE"),
    # the resource id recorded at creation wins over a creation time that cannot tell (an instance renamed into it)
    ({"TagList": RECORDED}, {"DbiResourceId": "db-OTHER"}, "is the resource db-OTHER, not db-BLUE"),
    # every proof must hold
    ({"TagList": RECORDED}, {"InstanceCreateTime": GREEN_CREATED}, "not before the deployment"),
    # nothing but the name: refused
    ({"CreateTime": None}, {}, "nothing but its name shows"),
    ({}, {"InstanceCreateTime": None}, "nothing but its name shows"),
    ({"CreateTime": "not a time"}, {}, "nothing but its name shows"),
])
def test_the_old_blue_is_proven_by_more_than_its_name(deployment, old, expected):
    after = dict(_deployment(status="SWITCHOVER_COMPLETED", source=OLD, target=BLUE), **deployment)
    identifier, problems = bg.old_blue(after, BLUE, {OLD: _old_blue(**old)})
    if expected == "shop-old1":
        assert (identifier, problems) == ("shop-old1", [])
    else:
        assert identifier is None and len(problems) == 1 and expected in problems[0]
        assert "delete it by hand" in problems[0]


def test_an_unproven_old_blue_is_never_deleted():
    after = _deployment(status="SWITCHOVER_COMPLETED", source=OLD, target=BLUE)
    identifier, problems = bg.old_blue(after, BLUE, {OLD: _old_blue(InstanceCreateTime=GREEN_CREATED)})
    found = bg.plan("absent", after, _instance(version="18.6"),
                    _params(state="absent", delete_old_blue=True), identifier)
    assert found["actions"] == ["DeleteBlueGreenDeployment"] and problems


def test_an_old_blue_with_deletion_protection_is_refused():
    after = _deployment(status="SWITCHOVER_COMPLETED", source=OLD, target=BLUE)
    identifier, problems = bg.old_blue(after, BLUE, {OLD: _old_blue(DeletionProtection=True)})
    assert identifier == "shop-old1" and "deletion protection on" in problems[0]


# ------------------------------------------------------------------------------------------------------------ plans

def test_create_request_carries_only_the_targets_given():
    request = bg.create_request("shop-blue-green", BLUE, _params(target_db_instance_class="db.m5.large"),
                                {"team": "dbre"})
    assert request == {"BlueGreenDeploymentName": "shop-blue-green", "Source": BLUE, "TargetEngineVersion": "18.6",
                       "TargetDBInstanceClass": "db.m5.large", "Tags": [
                           {"Key": "dbre:managed-by", "Value": "dbre.rds"}, {"Key": "team", "Value": "dbre"}]}
    assert bg.create_request("x", BLUE, _params())["Tags"] == [{"Key": "dbre:managed-by", "Value": "dbre.rds"}]
    # the blue's resource id, which proves the old blue after the switchover, is recorded; a user's tag cannot
    # replace it
    request = bg.create_request("x", BLUE, _params(), {"dbre:blue-dbi-resource-id": "db-FAKE"}, "db-BLUE")
    assert request["Tags"] == sorted(RECORDED, key=lambda tag: tag["Key"])


def test_absent_without_a_name_deletes_only_a_deployment_of_this_collection():
    console = _deployment(name="dba-console-upgrade", identifier="bgd-9")
    found = bg.plan("absent", console, _instance(), _params(state="absent", target_engine_version=None))
    assert found["actions"] == [] and found["changed"] is False
    assert "dba-console-upgrade (bgd-9, AVAILABLE) of shop was not made by dbre.rds" in found["problems"][0]
    assert "give its name as blue_green_deployment_name" in found["problems"][0]
    # Named by the user: theirs to delete
    named = bg.plan("absent", console, _instance(),
                    _params(state="absent", target_engine_version=None,
                            blue_green_deployment_name="dba-console-upgrade"))
    assert named["actions"] == ["DeleteBlueGreenDeployment"] and named["problems"] == []
    # Tagged at creation under another name, or under the default name
    tagged = dict(console, TagList=[{"Key": "dbre:managed-by", "Value": "dbre.rds"}])
    for deployment in (tagged, _deployment()):
        found = bg.plan("absent", deployment, _instance(), _params(state="absent", target_engine_version=None))
        assert found["actions"] == ["DeleteBlueGreenDeployment"] and found["problems"] == []


SWITCHED = _deployment(status="SWITCHOVER_COMPLETED", source=OLD, target=BLUE)


@pytest.mark.parametrize("state, deployment, instance, changes, actions, problem", [
    ("present", None, _instance(), {}, ["CreateBlueGreenDeployment"], None),
    ("present", None, _instance(version="18.6"), {}, [], None),
    ("present", _deployment(status="PROVISIONING"), _instance(), {}, [], None),
    ("present", _deployment(), _instance(), {}, [], None),
    ("present", SWITCHED, _instance(version="18.6"), {}, [], None),
    ("present", _deployment(status="INVALID_CONFIGURATION"), _instance(), {}, [], "is INVALID_CONFIGURATION"),
    ("switched_over", _deployment(), _instance(), {}, ["SwitchoverBlueGreenDeployment"], None),
    ("switched_over", _deployment(status="PROVISIONING"), _instance(), {}, [], "is PROVISIONING, not AVAILABLE"),
    ("switched_over", _deployment(status="SWITCHOVER_IN_PROGRESS"), _instance(), {}, [], "run again when"),
    ("switched_over", SWITCHED, _instance(version="18.6"), {}, [], None),
    ("switched_over", None, _instance(), {}, [], "has no blue/green deployment to switch over"),
    ("switched_over", None, _instance(version="18.6"), {}, [], None),
    ("switched_over", None, _instance(version="18.6"), {"target_engine_version": None}, [], "has no blue/green"),
    ("absent", None, _instance(), {}, [], None),
    ("absent", _deployment(), _instance(), {}, ["DeleteBlueGreenDeployment"], None),
    ("absent", _deployment(status="DELETING"), _instance(), {}, [], None),
    ("absent", _deployment(status="SWITCHOVER_FAILED"), _instance(), {}, [], "may already carry production"),
    ("absent", _deployment(status="SWITCHOVER_FAILED"), _instance(), {"delete_target": False},
     ["DeleteBlueGreenDeployment"], None),
    # The old blue before the deployment that names it: a failed delete is found again by a rerun.
    ("absent", SWITCHED, _instance(version="18.6"), {"delete_old_blue": True},
     ["DeleteDBInstance", "DeleteBlueGreenDeployment"], None),
    ("absent", SWITCHED, _instance(version="18.6"), {}, ["DeleteBlueGreenDeployment"], None),
])
def test_plan(state, deployment, instance, changes, actions, problem):
    old = "shop-old1" if deployment is SWITCHED else None
    found = bg.plan(state, deployment, instance, _params(state=state, **changes), old)
    assert found["actions"] == actions and found["changed"] is bool(actions)
    assert (found["problems"] == []) if problem is None else problem in found["problems"][0]
    if not actions and problem is None:
        assert found["note"]


# ---------------------------------------------------------------------------------------------------------- verdict

@pytest.mark.parametrize("measured, changes, probing, held", [
    ({"switched_over": True, "lost_writes": 0, "write_downtime_seconds": 3.0}, {}, True, True),
    ({"switched_over": True, "lost_writes": 1, "write_downtime_seconds": 3.0}, {}, True, False),
    ({"switched_over": True, "lost_writes": None}, {}, True, False),
    ({"switched_over": True, "lost_writes": 0, "write_downtime_seconds": 3.0}, {"max_downtime_seconds": 2}, True,
     False),
])
def test_objectives(measured, changes, probing, held):
    found = bg.objectives(measured, _params(**changes), probing)
    assert all(o["held"] for o in found) is held
    assert (bg.breach("shop", found) is None) is held
    assert bg.verdict(found) == ("passed" if held else "failed")


@pytest.mark.parametrize("measured, failure, verdict, breached", [
    ({"switched_over": True}, False, "not_measured", False),
    ({"switched_over": True}, True, "failed", False),
    ({"switched_over": False}, False, "failed", True),
])
def test_without_write_probes_the_lost_writes_are_not_measured_and_never_pass(measured, failure, verdict, breached):
    found = bg.objectives(measured, _params(), probing=False)
    lost = [o for o in found if o["name"] == "lost_writes"]
    assert lost == [{"name": "lost_writes", "objective": 0, "observed": "not measured", "unit": None, "held": False}]
    assert bg.verdict(found, failure) == verdict
    assert (bg.breach("shop", found) is not None) is breached


# ---------------------------------------------------------------------------------------------- final snapshot

NOW = datetime.datetime(2027, 11, 30, 8, 15, 42, tzinfo=UTC)


@pytest.mark.parametrize("given, existing, expected, problem", [
    # the first upgrade: the plain name, as before
    (None, set(), "shop-old1-final", None),
    # the next upgrade's old blue has the same name: its final snapshot gets the UTC time in its name
    (None, {"shop-old1-final"}, "shop-old1-final-20271130081542", None),
    (None, {"shop-old1-final", "shop-old1-final-20271130081542"}, None, "give final_snapshot_identifier"),
    # the user's name is used as given, and refused when taken
    ("shop-before-18", set(), "shop-before-18", None),
    ("shop-before-18", {"shop-before-18"}, None, "a snapshot named shop-before-18 exists already"),
])
def test_the_final_snapshot_name_never_collides_with_an_earlier_upgrade(given, existing, expected, problem):
    candidates = bg.final_snapshot_candidates("shop-old1", given, NOW)
    name, problems = bg.choose_final_snapshot(candidates, existing)
    assert name == expected
    assert problems == [] if problem is None else problem in problems[0]
    for candidate in candidates:
        assert bg.identifier_problems(candidate, "final_snapshot_identifier", maximum=255) == []


def test_the_timestamped_final_snapshot_name_fits_rds_limits():
    assert bg.default_final_snapshot("shop-old1", "2027-11-30T08:15:42Z") == "shop-old1-final-20271130081542"
    long = "s" * 63
    assert len(bg.default_final_snapshot(long, NOW)) <= 255


# --------------------------------------------------------------------------------- a switchover that stopped midway

def _members(*statuses):
    return [{"SourceMember": ARN + f"shop-r{i}", "TargetMember": ARN + f"shop-r{i}-green", "Status": status}
            for i, status in enumerate(statuses)]


@pytest.mark.parametrize("status, member_statuses, delete_target, refused", [
    ("SWITCHOVER_FAILED", None, True, True),
    ("SWITCHOVER_FAILED", None, False, False),
    # a blue with read replicas: one member switched over, the deployment not completed
    ("AVAILABLE", ("SWITCHOVER_COMPLETED", "AVAILABLE"), True, True),
    ("INVALID_CONFIGURATION", ("SWITCHOVER_FAILED", "AVAILABLE"), True, True),
    ("INVALID_CONFIGURATION", ("SWITCHOVER_FAILED", "AVAILABLE"), False, False),
    # nothing switched: the green is a copy, deleted with the deployment
    ("AVAILABLE", ("AVAILABLE", "AVAILABLE"), True, False),
    ("INVALID_CONFIGURATION", ("PROVISIONING",), True, False),
])
def test_a_partly_switched_deployment_is_not_deleted_with_its_green(status, member_statuses, delete_target, refused):
    deployment = _deployment(status=status)
    if member_statuses:
        deployment["SwitchoverDetails"] = _members(*member_statuses)
    found = bg.plan("absent", deployment, _instance(), _params(state="absent", delete_target=delete_target))
    if refused:
        assert found["actions"] == [] and "may already carry production" in found["problems"][0]
        assert "delete_target=false" in found["problems"][0]
    else:
        assert found["actions"] == ["DeleteBlueGreenDeployment"] and found["problems"] == []


# ------------------------------------------------------------------------------ did a lost switchover take effect

REQUESTED = datetime.datetime(2026, 11, 30, 8, 0, 0, tzinfo=UTC)


def _event(message, seconds_after_request):
    return {"SourceIdentifier": "bgd-1", "SourceType": "blue-green-deployment", "Message": message,
            "Date": REQUESTED + datetime.timedelta(seconds=seconds_after_request)}


@pytest.mark.parametrize("status, expected", [
    ("SWITCHOVER_IN_PROGRESS", "status SWITCHOVER_IN_PROGRESS"),
    ("SWITCHOVER_COMPLETED", "status SWITCHOVER_COMPLETED"),
    ("SWITCHOVER_FAILED", "status SWITCHOVER_FAILED"),
    # AVAILABLE: never asked, or already rolled back; the status alone cannot tell
    ("AVAILABLE", None),
])
def test_switchover_status_evidence(status, expected):
    assert bg.switchover_status_evidence(_deployment(status=status)) == expected
    assert bg.switchover_status_evidence(None) is None


@pytest.mark.parametrize("events, expected", [
    ([], None),
    # started and rolled back before the deployment was read again: it took effect, never send it again
    ([_event("Switchover started on blue/green deployment shop-blue-green.", 1),
      _event("Switchover canceled on blue/green deployment shop-blue-green due to green lag. Changes were rolled "
             "back; no changes were made to the environments.", 3)], "Switchover started"),
    ([_event("Switchover canceled on blue/green deployment shop-blue-green due to lag.", 2)], "Switchover canceled"),
    ([_event("Switchover completed on blue/green deployment shop-blue-green.", 20)], "Switchover completed"),
    # the deployment's other events, and switchover events from before the request, are not this request's
    ([_event("Blue/green deployment tasks completed.", 2)], None),
    ([_event("Switchover canceled on blue/green deployment shop-blue-green.", -600)], None),
])
def test_switchover_event_evidence(events, expected):
    found = bg.switchover_event_evidence(events, REQUESTED)
    assert found is None if expected is None else expected in found

# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
import datetime

import pytest

from ansible_collections.dbre.rds.plugins.module_utils import rds_resources
from ansible_collections.dbre.rds.plugins.module_utils import snapshot_retention as sr

NOW = datetime.datetime(2026, 11, 29, 12, 0, tzinfo=datetime.timezone.utc)
ACCOUNT = "123456789012"
SOURCE_ARN = f"arn:aws:rds:us-east-1:{ACCOUNT}:db:shop"
KEEP_TAG = {"key": "Permanent", "value": "true"}


def _snap(name, days, status="available", tags=None, kind="manual", account=ACCOUNT, source="shop", storage=20,
          encrypted=False, **extra):
    snapshot = {"DBSnapshotIdentifier": name, "DBInstanceIdentifier": source, "SnapshotType": kind,
                "DBSnapshotArn": f"arn:aws:rds:us-east-1:{account}:snapshot:{name}", "Status": status,
                "SnapshotCreateTime": NOW - datetime.timedelta(days=days), "AllocatedStorage": storage,
                "Encrypted": encrypted, "TagList": [{"Key": k, "Value": v} for k, v in (tags or {}).items()]}
    snapshot.update(extra)
    return snapshot


def _source(*snapshots, identifier="shop", arn=SOURCE_ARN):
    return {"kind": "instance", "identifier": identifier, "arn": arn, "snapshots": list(snapshots)}


def _plan(snapshots, shared=None, **kwargs):
    options = dict(now=NOW, retention_days=30, keep_last=1, keep_tag=KEEP_TAG, region="us-east-1")
    options.update(kwargs)
    return sr.plan_retention([_source(*snapshots)], shared=shared, **options)


def _arn(name):
    return f"arn:aws:rds:us-east-1:{ACCOUNT}:snapshot:{name}"


# ------------------------------------------------------------------------------------------------------ options

def _params(**changes):
    params = dict(db_instance_identifiers=["shop"], db_cluster_identifiers=None, tags=None, all=None,
                  retention_days=30, keep_last=1, keep_tag=dict(KEEP_TAG), batch_size=20, copy_to_region=None,
                  copy_kms_key_id=None, copy_keep_last=1)
    params.update(changes)
    return params


@pytest.mark.parametrize("changes, fragment", [
    (dict(retention_days=0), "retention_days must be at least 1 (got 0)"),
    (dict(retention_days=-3), "retention_days must be at least 1 (got -3)"),
    (dict(keep_tag={"key": "", "value": "true"}), "keep_tag.key must not be empty"),
    (dict(keep_tag={"key": "  ", "value": "true"}), "keep_tag.key must not be empty"),
    (dict(db_cluster_identifiers=["ledger"]), "give exactly one selector"),
    (dict(db_instance_identifiers=None), "give exactly one selector of db_instance_identifiers"),
    (dict(db_instance_identifiers=[]), "db_instance_identifiers is empty"),
    (dict(db_instance_identifiers=["shop", "SHOP"]), "names SHOP more than once"),
    (dict(db_instance_identifiers=["shop_1"]), "'shop_1' is not a valid RDS identifier"),
    (dict(db_instance_identifiers=None, tags={}), "tags is empty"),
    (dict(copy_to_region="us-east-1"), "copy_to_region us-east-1 is the region the snapshots are in"),
    (dict(copy_to_region="west"), "'west' is not an AWS region name"),
    (dict(copy_to_region="us-west-2", copy_keep_last=0), "copy_keep_last must be at least 1"),
    (dict(copy_kms_key_id="alias/dr"), "copy_kms_key_id needs copy_to_region"),
    (dict(batch_size=0), "batch_size must be from 1 to 100"),
    (dict(keep_last=-1), "keep_last must be 0 or more"),
    (dict(copy_to_region="us-west-2", endpoint_url="https://vpce-1.rds.us-east-1.vpce.amazonaws.com"),
     "copy_to_region cannot be used with endpoint_url https://vpce-1.rds.us-east-1.vpce.amazonaws.com"),
])
def test_option_problems_name_the_problem(changes, fragment):
    problems = sr.option_problems(_params(**changes), region="us-east-1")
    assert any(fragment in p for p in problems), problems


@pytest.mark.parametrize("changes", [
    dict(),
    dict(db_instance_identifiers=None, all=True),
    dict(db_instance_identifiers=None, all=False, tags={"backup": "daily"}),
    dict(copy_to_region="us-west-2", copy_kms_key_id="alias/dr", copy_keep_last=3),
    dict(keep_last=0, retention_days=1),
    dict(endpoint_url="https://vpce-1.rds.us-east-1.vpce.amazonaws.com"),
])
def test_good_options_have_no_problem(changes):
    assert sr.option_problems(_params(**changes), region="us-east-1") == []


# ---------------------------------------------------------------------------------------------------- retention

@pytest.mark.parametrize("snapshot, code", [
    (_snap("tagged", 90, tags={"Permanent": "true"}), "keep_tag"),
    (_snap("creating", 90, status="creating"), "not_available"),
    (_snap("young", 10), "retention"),
    (_snap("young-edge", 29.9), "retention"),
])
def test_each_rule_keeps_with_its_reason(snapshot, code):
    plan = _plan([_snap("newest", 0), snapshot], shared={_arn(snapshot["DBSnapshotIdentifier"]): []})
    kept = {e["identifier"]: e for e in plan["keep"]}
    assert kept[snapshot["DBSnapshotIdentifier"]]["reason_code"] == code
    assert kept["newest"]["reason_code"] == "newest"
    assert plan["delete"] == []


def test_keep_tag_value_must_match_and_its_key_is_configurable():
    plan = _plan([_snap("newest", 0), _snap("false", 60, tags={"Permanent": "false"}),
                  _snap("legal", 60, tags={"hold": "yes"})],
                 shared={_arn("false"): [], _arn("legal"): []}, keep_tag={"key": "hold", "value": "yes"})
    assert [e["identifier"] for e in plan["delete"]] == ["false"]
    assert {e["identifier"]: e["reason_code"] for e in plan["keep"]}["legal"] == "keep_tag"


@pytest.mark.parametrize("keep_last, deleted", [
    (0, ["d60", "d45", "d31"]),
    (1, ["d60", "d45"]),
    (2, ["d60"]),
    (4, []),
])
def test_keep_last_counts_available_snapshots_of_the_source_newest_first(keep_last, deleted):
    snapshots = [_snap("d60", 60), _snap("d31", 31), _snap("d45", 45), _snap("d40-busy", 40, status="creating")]
    shared = {_arn(n): [] for n in ("d60", "d31", "d45")}
    plan = _plan(snapshots, shared=shared, keep_last=keep_last, retention_days=30)
    assert [e["identifier"] for e in plan["delete"]] == deleted
    if keep_last == 1:
        kept = {e["identifier"]: e["reason_code"] for e in plan["keep"]}
        assert kept == {"d31": "newest", "d40-busy": "not_available"}


def test_sharing_is_read_only_for_snapshots_that_would_go():
    plan = _plan([_snap("new", 1), _snap("old", 60), _snap("older", 90)])
    assert [e["identifier"] for e in plan["check_sharing"]] == ["older", "old"]
    assert plan["delete"] == []
    plan = _plan([_snap("new", 1), _snap("old", 60), _snap("older", 90)],
                 shared={_arn("old"): ["210987654321"], _arn("older"): []})
    assert [e["identifier"] for e in plan["delete"]] == ["older"]
    (shared,) = [e for e in plan["keep"] if e["identifier"] == "old"]
    assert shared["reason_code"] == "shared" and "210987654321" in shared["reason"]


def test_in_use_rules_keep_old_snapshots():
    drills = sr.drill_uses([{"DBInstanceIdentifier": "shop-drill-1",
                             "TagList": [{"Key": "dbre:drill-id", "Value": "d-1"},
                                         {"Key": "dbre:drill-snapshot", "Value": "Drilled"}]},
                            {"DBInstanceIdentifier": "other", "TagList": [{"Key": "dbre:drill-id", "Value": "d-2"}]}])
    copying = sr.copies_in_progress([
        {"DBSnapshotIdentifier": "copying-dr", "Status": "creating", "SourceDBSnapshotIdentifier": _arn("copying")},
        {"DBSnapshotIdentifier": "done-dr", "Status": "available", "SourceDBSnapshotIdentifier": _arn("done")},
    ], "us-west-2")
    plan = _plan([_snap("new", 0), _snap("drilled", 50), _snap("copying", 50), _snap("done", 50)],
                 shared={_arn(n): [] for n in ("drilled", "copying", "done")}, drills=drills, copying=copying)
    reasons = {e["identifier"]: (e["reason_code"], e["reason"]) for e in plan["keep"]}
    assert reasons["drilled"] == ("restore_drill", "restored by the running restore drill d-1 (shop-drill-1)")
    assert reasons["copying"] == ("being_copied", "being copied to us-west-2 as copying-dr (creating)")
    assert [e["identifier"] for e in plan["delete"]] == ["done"]


@pytest.mark.parametrize("status, kept", [
    ("AVAILABLE", True), ("PROVISIONING", True), ("SWITCHOVER_IN_PROGRESS", True),
    ("SWITCHOVER_COMPLETED", False), ("DELETING", False),
])
def test_blue_green_deployments_hold_their_source_until_finished(status, kept):
    deployments = [{"BlueGreenDeploymentIdentifier": "bgd-1", "Source": SOURCE_ARN,
                    "Target": f"arn:aws:rds:us-east-1:{ACCOUNT}:db:shop-green", "Status": status}]
    uses = sr.blue_green_uses(deployments, [SOURCE_ARN])
    plan = _plan([_snap("new", 0), _snap("old", 50)], shared={_arn("old"): []}, blue_green=uses)
    assert bool([e for e in plan["keep"] if e["reason_code"] == "blue_green"]) is kept
    assert bool(plan["delete"]) is not kept


def test_only_manual_snapshots_of_the_source_in_its_account_are_considered():
    plan = _plan([_snap("new", 0), _snap("rds:shop-2026-10-01", 60, kind="automated"),
                  _snap("shared-in", 60, kind="shared"), _snap("foreign", 60, account="210987654321"),
                  _snap("other-db", 60, source="billing"), _snap("old", 60)], shared={_arn("old"): []})
    assert [e["identifier"] for e in plan["delete"]] == ["old"]
    assert [e["identifier"] for e in plan["ignored"]] == ["foreign"]
    assert {e["identifier"] for e in plan["keep"]} == {"new"}


def test_entries_carry_age_storage_and_reason():
    plan = _plan([_snap("new", 0), _snap("old", 45, storage=100)], shared={_arn("old"): []})
    (entry,) = plan["delete"]
    assert entry["age_days"] == 45.0 and entry["allocated_storage"] == 100 and entry["source"] == "shop"
    assert "older than retention_days 30" in entry["reason"]
    assert sr.storage_gib(plan["delete"]) == 100


def test_a_second_plan_after_the_deletions_changes_nothing():
    snapshots = [_snap("new", 0), _snap("old", 45), _snap("older", 60), _snap("young", 5)]
    first = _plan(snapshots, shared={_arn("old"): [], _arn("older"): []})
    gone = {e["identifier"] for e in first["delete"]}
    second = _plan([s for s in snapshots if s["DBSnapshotIdentifier"] not in gone], shared={})
    assert gone == {"old", "older"} and second["delete"] == [] and second["check_sharing"] == []


@pytest.mark.parametrize("count, size, sizes", [(0, 20, []), (20, 20, [20]), (45, 20, [20, 20, 5]), (3, 1, [1] * 3)])
def test_batches(count, size, sizes):
    assert [len(b) for b in sr.batches(list(range(count)), size)] == sizes


# ---------------------------------------------------------------------------------------------------- DR copies

@pytest.mark.parametrize("name, target", [
    ("shop-30", "shop-30-dr"),
    ("rds:shop-2026-11-29-10-00", "auto-shop-2026-11-29-10-00-dr"),
    ("Shop_Weekly--1", "shop-weekly-1-dr"),
    ("9lives", "s-9lives-dr"),
])
def test_copy_target_identifier_is_a_valid_name(name, target):
    assert sr.copy_target_identifier(name) == target


def _dr_copy(of, days, status="available", tags=None):
    copy = _snap(sr.copy_target_identifier(of), days, status=status)
    copy["DBSnapshotArn"] = f"arn:aws:rds:us-west-2:{ACCOUNT}:snapshot:{copy['DBSnapshotIdentifier']}"
    tags = dict(sr.copy_tags(_snap(of, days), SOURCE_ARN), **(tags or {}))
    copy["TagList"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    return copy


def _copies(kept, dr, copy_keep_last=2, **kwargs):
    return sr.plan_copies(_source(), kept, dr, copy_keep_last=copy_keep_last, region="us-west-2", keep_tag=KEEP_TAG,
                          now=NOW, **kwargs)


def test_copies_the_newest_kept_snapshots_once():
    kept = [_snap("s1", 1), _snap("s2", 2), _snap("s3", 3), _snap("s0", 0, status="creating")]
    plan = _copies(kept, [])
    assert [c["target_identifier"] for c in plan["copy"]] == ["s1-dr", "s2-dr"]
    assert plan["copy"][0]["tags"][sr.COPY_OF_TAG] == _arn("s1")
    assert plan["copy"][0]["tags"][sr.MANAGED_BY_TAG] == sr.MODULE_NAME
    again = _copies(kept, [_dr_copy("s1", 1), _dr_copy("s2", 2)])
    assert again["copy"] == [] and again["delete"] == []
    assert {e["identifier"]: e["reason_code"] for e in again["keep"]} == {"s1-dr": "newest", "s2-dr": "newest"}


def test_older_copies_go_only_once_newer_ones_are_usable():
    kept = [_snap("s1", 1), _snap("s2", 2)]
    dr = [_dr_copy("s5", 5), _dr_copy("s6", 6), _dr_copy("s9", 9, tags={"Permanent": "true"}),
          _snap("users-own", 3)]
    waiting = _copies(kept, dr)
    assert [c["source_identifier"] for c in waiting["copy"]] == ["s1", "s2"]
    assert waiting["delete"] == []
    done = _copies(kept, dr, assume_copies_done=True)
    assert [e["identifier"] for e in done["delete"]] == ["s5-dr", "s6-dr"]
    assert {e["identifier"]: e["reason_code"] for e in done["keep"]} == {"s9-dr": "keep_tag"}
    in_progress = _copies(kept, [_dr_copy("s1", 1, status="creating"), _dr_copy("s5", 5), _dr_copy("s6", 6)])
    assert [c["source_identifier"] for c in in_progress["copy"]] == ["s2"]
    assert in_progress["delete"] == []


def test_a_name_taken_by_someone_else_is_a_conflict():
    plan = _copies([_snap("s1", 1)], [_snap("s1-dr", 1)], copy_keep_last=1)
    assert plan["copy"] == [] and "already has a snapshot named s1-dr" in plan["conflicts"][0]


def test_encrypted_snapshots_need_a_key_of_the_dr_region():
    plan = _copies([_snap("s1", 1, encrypted=True), _snap("s2", 2)], [])
    problems = sr.copy_key_problems(plan["copy"], None, "us-west-2")
    assert problems and "s1 are encrypted" in problems[0] and "us-west-2" in problems[0]
    assert sr.copy_key_problems(plan["copy"], "alias/dr", "us-west-2") == []


def test_copy_request_for_instances_and_clusters():
    plan = _copies([_snap("s1", 1)], [], copy_keep_last=1)
    request = sr.copy_request(plan["copy"][0], "us-east-1", "alias/dr")
    assert request["SourceDBSnapshotIdentifier"] == _arn("s1") and request["TargetDBSnapshotIdentifier"] == "s1-dr"
    assert request["SourceRegion"] == "us-east-1" and request["KmsKeyId"] == "alias/dr"
    cluster = dict(plan["copy"][0], kind="cluster")
    assert "SourceDBClusterSnapshotIdentifier" in sr.copy_request(cluster, "us-east-1", None)
    assert "KmsKeyId" not in sr.copy_request(cluster, "us-east-1", None)


# ------------------------------------------------------------------------------ the read layer's additions for it

class Paged:
    """An RDS client answering describes in pages of two (``Marker``), as RDS does."""

    def __init__(self, instances=(), clusters=(), attributes=None):
        self.items = {"describe_db_instances": ("DBInstances", list(instances)),
                      "describe_db_clusters": ("DBClusters", list(clusters))}
        self.attributes = attributes or []

    def _page(self, operation, Marker=None, **_):
        key, items = self.items[operation]
        start = int(Marker or 0)
        page = {key: items[start:start + 2]}
        if start + 2 < len(items):
            page["Marker"] = str(start + 2)
        return page

    def describe_db_instances(self, aws_retry=True, **params):
        return self._page("describe_db_instances", **params)

    def describe_db_clusters(self, aws_retry=True, **params):
        return self._page("describe_db_clusters", **params)

    def describe_db_snapshot_attributes(self, DBSnapshotIdentifier, aws_retry=True):
        return {"DBSnapshotAttributesResult": {"DBSnapshotIdentifier": DBSnapshotIdentifier,
                                               "DBSnapshotAttributes": self.attributes}}


def _instance(name, tags=None, cluster=None):
    described = {"DBInstanceIdentifier": name, "TagList": [{"Key": k, "Value": v} for k, v in (tags or {}).items()]}
    if cluster:
        described["DBClusterIdentifier"] = cluster
    return described


def test_selection_by_tags_and_all_reads_every_page_and_skips_aurora_members():
    client = Paged(instances=[_instance("a", {"backup": "daily", "tier": "1"}), _instance("b", {"backup": "daily"}),
                              _instance("m", {"backup": "daily", "tier": "1"}, cluster="c"),
                              _instance("d", {"backup": "weekly", "tier": "1"}), _instance("e", {"tier": "1"})])
    tagged = rds_resources.describe_matching_tags(client, "instance", {"backup": "daily", "tier": "1"})
    assert [i["DBInstanceIdentifier"] for i in tagged] == ["a"]
    assert [i["DBInstanceIdentifier"] for i in rds_resources.describe_every(client, "instance")] == \
        ["a", "b", "d", "e"]
    with pytest.raises(ValueError):
        rds_resources.describe_matching_tags(client, "instance", {})


def test_sharing_comes_from_the_restore_attribute():
    client = Paged(attributes=[{"AttributeName": "restore", "AttributeValues": ["210987654321", "all"]}])
    attributes = rds_resources.describe_snapshot_attributes(client, "instance", "s1")
    assert sr.shared_accounts(attributes) == ["210987654321", "all"]
    assert sr.shared_accounts([{"AttributeName": "restore", "AttributeValues": []}]) == []


@pytest.mark.parametrize("drill_name, source, kept", [
    ("shop-drill-20261129120000-a1b2c3", "shop", True),
    ("shop-eu-drill-20261129120000-a1b2c3", "shop", False),
    # a long source name is cut to 35 characters in the drill's name
    ("a-very-long-source-identifier-x-drill-20261129120000-a1b2c3", "a-very-long-source-identifier-x-and-more", True),
    ("other-drill-20261129120000-a1b2c3", "shop", False),
])
def test_a_drill_that_names_no_snapshot_holds_every_snapshot_of_its_source(drill_name, source, kept):
    resources = [{"DBInstanceIdentifier": drill_name, "TagList": [{"Key": "dbre:drill-id", "Value": "d-9"}]}]
    drill_sources = sr.drills_without_snapshot(resources)
    plan = sr.plan_retention([_source(_snap("new", 0, source=source), _snap("old", 50, source=source),
                                      identifier=source)],
                             now=NOW, retention_days=30, keep_last=1, keep_tag=KEEP_TAG, region="us-east-1",
                             shared={_arn("old"): []}, drill_sources=drill_sources)
    reasons = {e["identifier"]: e["reason_code"] for e in plan["keep"]}
    assert (reasons.get("old") == "restore_drill") is kept
    assert bool(plan["delete"]) is not kept


# ------------------------------------------------------------------------------------------- re-check before delete

def _planned(name, source="shop"):
    return {"identifier": name, "arn": _arn(name), "kind": "instance", "source": source}


OURS = {sr.MANAGED_BY_TAG: sr.MODULE_NAME, sr.COPY_SOURCE_TAG: SOURCE_ARN}


@pytest.mark.parametrize("snapshot, options, fragment", [
    (None, {}, "no longer described"),
    (_snap("s", 90, tags={"Permanent": "true"}), {}, "tagged Permanent=true since the plan"),
    (_snap("s", 90, tags={"Keep": "yes"}), dict(keep_tag={"key": "Keep", "value": "yes"}), "tagged Keep=yes"),
    (_snap("s", 90, status="copying"), {}, "status is now copying"),
    (_snap("s", 90, status="deleting"), {}, "status is now deleting"),
    (_snap("s", 90), dict(drills={"s": "restored by the running restore drill d-2 (x)"}), "drill d-2"),
    (_snap("s", 90), dict(drills={_arn("s").lower(): "restored by the running restore drill d-3 (x)"}), "d-3"),
    (_snap("s", 90), dict(drill_sources={"shop": "the restore drill d-4 (shop-drill-1) of its source is running"}),
     "d-4"),
    (_snap("s", 90), dict(shared=["all"]), "now shared with all"),
    (_snap("s", 90, tags=dict(OURS, **{sr.COPY_SOURCE_TAG: "arn:other"})), dict(copy_source_arn=SOURCE_ARN),
     "no longer mark it as this module's DR copy of shop"),
    (_snap("s", 90), dict(copy_source_arn=SOURCE_ARN), "no longer mark it as this module's DR copy"),
])
def test_recheck_keeps_what_changed_since_the_plan(snapshot, options, fragment):
    why = sr.recheck_reason(_planned("s"), snapshot, **dict(dict(keep_tag=KEEP_TAG), **options))
    assert why is not None and fragment in why, why
    assert "changed_since_plan" in sr.KEEP_REASONS


@pytest.mark.parametrize("snapshot, options", [
    (_snap("s", 90), {}),
    (_snap("s", 90, tags={"Permanent": "false"}), dict(shared=[])),
    (_snap("s", 90), dict(drills={"other": "restored by d-1"}, drill_sources={"shopx": "drill of shopx"})),
    (_snap("s", 90, tags=OURS), dict(copy_source_arn=SOURCE_ARN, shared=[])),
])
def test_recheck_lets_an_unchanged_snapshot_go(snapshot, options):
    assert sr.recheck_reason(_planned("s"), snapshot, **dict(dict(keep_tag=KEEP_TAG), **options)) is None


def test_blue_green_unknown_keeps_every_snapshot_of_every_source():
    other = _snap("o", 90, source="ledger", DBSnapshotArn=_arn("o"))
    sources = [_source(_snap("s", 90), _snap("t", 1)),
               _source(other, identifier="ledger", arn=SOURCE_ARN.replace("shop", "ledger"))]
    blue_green = sr.blue_green_unknown([s["arn"] for s in sources], "too old")
    plan = sr.plan_retention(sources, now=NOW, retention_days=30, keep_last=1, keep_tag=KEEP_TAG,
                             region="us-east-1", blue_green=blue_green, shared={})
    assert plan["delete"] == []
    kept = {e["identifier"]: e["reason_code"] for e in plan["keep"]}
    assert kept == {"s": "blue_green", "t": "newest", "o": "newest"}
    assert "could not be read (too old)" in next(e["reason"] for e in plan["keep"] if e["identifier"] == "s")

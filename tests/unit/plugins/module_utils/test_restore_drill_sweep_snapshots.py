# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""restore_drill.sweep_selection over manual DB snapshots: the ones a killed rds_upgrade_drill leaves behind.

The same rules as for instances: both drill tags or nothing is selected, expired or owner gone or older than asked,
never while the drill still runs; plus what only a snapshot needs (available, no drill instance left alone restoring
from it).
"""

import datetime

import pytest

from ansible_collections.dbre.rds.plugins.module_utils import restore_drill as drill

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 27, 7, 35, 0, tzinfo=UTC)
PAST, FUTURE = "2026-11-26T00:00:00Z", "2026-11-28T00:00:00Z"


def _snapshot(identifier, expires=PAST, drill_id="d", owner=None, started=None, status="available",
              snapshot_type="manual", **extra):
    tags = [{"Key": drill.DRILL_SNAPSHOT_TAG, "Value": identifier}]
    if drill_id is not None:
        tags.append({"Key": drill.DRILL_ID_TAG, "Value": drill_id})
    if expires is not None:
        tags.append({"Key": drill.DRILL_EXPIRES_TAG, "Value": expires})
    if owner:
        tags.append({"Key": drill.DRILL_OWNER_TAG, "Value": owner})
    if started:
        tags.append({"Key": drill.DRILL_STARTED_TAG, "Value": started})
    return {"DBSnapshotIdentifier": identifier, "SnapshotType": snapshot_type, "Status": status, "TagList": tags,
            **extra}


def _instance(identifier, expires, restored_from=None):
    tags = [{"Key": drill.DRILL_ID_TAG, "Value": "d"}, {"Key": drill.DRILL_EXPIRES_TAG, "Value": expires}]
    if restored_from:
        tags.append({"Key": drill.DRILL_SNAPSHOT_TAG, "Value": restored_from})
    return {"DBInstanceIdentifier": identifier, "TagList": tags}


def _chosen(snapshots, instances=(), **kwargs):
    chosen = drill.sweep_selection(list(instances), [], NOW, snapshots=snapshots, **kwargs)
    return ([(d["kind"], d["identifier"]) for d in chosen["delete"]],
            {s["identifier"]: s["reason"] for s in chosen["skip"]})


def test_only_snapshots_with_both_drill_tags_are_ever_selected():
    deleted, skipped = _chosen([
        _snapshot("orders-upgrade-old"),
        _snapshot("no-expires", expires=None),
        _snapshot("no-drill-id", drill_id=None),
        {"DBSnapshotIdentifier": "users-nightly", "SnapshotType": "manual", "Status": "available", "TagList": []},
        {"DBSnapshotIdentifier": "untagged-no-taglist", "SnapshotType": "manual", "Status": "available"},
    ])
    assert deleted == [("snapshot", "orders-upgrade-old")]
    assert skipped == {}, "a snapshot without both drill tags is not even reported"


@pytest.mark.parametrize("snapshot, kwargs, deleted, reason", [
    (_snapshot("expired"), {}, True, "expired at 2026-11-26T00:00:00Z"),
    (_snapshot("young", expires=FUTURE), {}, False, "not expired until 2026-11-28T00:00:00Z"),
    (_snapshot("unreadable", expires="soon"), {}, False, "is not an ISO 8601 time"),
    (_snapshot("orphan", expires=FUTURE, owner="h/22/1"), {}, True, "its drill's process is gone (pid 22 on h)"),
    (_snapshot("running", owner="h/11/1"), {}, False, "its drill is still running (pid 11 on h)"),
    (_snapshot("elsewhere", expires=FUTURE, owner="other/33/1"), {}, False, "not expired until"),
    (_snapshot("old", expires=FUTURE, owner="other/1/1", started="2026-11-26T07:00:00Z"),
     {"older_than_hours": 24}, True, "more than 24 hours ago"),
    (_snapshot("created-old", expires=FUTURE, SnapshotCreateTime=NOW - datetime.timedelta(hours=30)),
     {"older_than_hours": 24}, True, "more than 24 hours ago"),
    (_snapshot("created-young", expires=FUTURE, SnapshotCreateTime=NOW - datetime.timedelta(hours=2)),
     {"older_than_hours": 24}, False, "not expired until"),
    (_snapshot("protected"), {"protected": ["PROTECTED"]}, False, "protected"),
    (_snapshot("creating", status="creating"), {}, False, "the snapshot is creating: run the sweep again"),
    (_snapshot("automated", snapshot_type="automated"), {}, False, "RDS removes it with its instance"),
])
def test_snapshots_follow_the_instances_rules(snapshot, kwargs, deleted, reason):
    alive = {11: True, 22: False}

    def owner_alive(marker):
        return alive.get(marker["pid"]) if marker["host"] == "h" else None

    chosen = drill.sweep_selection([], [], NOW, alive=owner_alive, snapshots=[snapshot], **kwargs)
    name = snapshot["DBSnapshotIdentifier"]
    if deleted:
        assert chosen["skip"] == [] and len(chosen["delete"]) == 1, chosen
        entry = chosen["delete"][0]
        assert (entry["kind"], entry["identifier"], entry["drill_id"]) == ("snapshot", name, "d")
        assert reason in entry["reason"]
    else:
        assert chosen["delete"] == [] and chosen["skip"][0]["kind"] == "snapshot", chosen
        assert chosen["skip"][0]["identifier"] == name and reason in chosen["skip"][0]["reason"]


def test_a_snapshot_goes_after_the_copy_restored_from_it_and_stays_while_that_copy_stays():
    deleted, skipped = _chosen(
        [_snapshot("snap-a"), _snapshot("snap-b")],
        instances=[_instance("copy-a", PAST, restored_from="snap-a"),
                   _instance("copy-b", FUTURE, restored_from="snap-b")])
    assert deleted == [("instance", "copy-a"), ("snapshot", "snap-a")], "instances first, then their snapshots"
    assert skipped["copy-b"].startswith("not expired until")
    assert skipped["snap-b"] == "the drill instance copy-b (left alone) was restored from it"


def test_without_snapshots_the_selection_is_as_before():
    instances = [_instance("copy-a", PAST)]
    assert drill.sweep_selection(instances, [], NOW) == drill.sweep_selection(instances, [], NOW, snapshots=())


def test_a_copy_of_a_drill_snapshot_is_never_swept():
    """A user's CopyDBSnapshot with CopyTags carries every drill tag, but its dbre:drill-snapshot names the original."""
    copy = _snapshot("kept-by-the-dba")
    copy["TagList"] = [dict(tag, Value="orders-upgrade-old") if tag["Key"] == drill.DRILL_SNAPSHOT_TAG else tag
                       for tag in copy["TagList"]]
    untagged = _snapshot("no-name-tag")
    untagged["TagList"] = [tag for tag in untagged["TagList"] if tag["Key"] != drill.DRILL_SNAPSHOT_TAG]
    chosen = drill.sweep_selection([], [], NOW, snapshots=[copy, untagged])
    assert chosen["delete"] == []
    reasons = {entry["identifier"]: entry["reason"] for entry in chosen["skip"]}
    assert reasons["kept-by-the-dba"].startswith("its dbre:drill-snapshot tag names orders-upgrade-old, not itself")
    assert reasons["no-name-tag"].startswith("its dbre:drill-snapshot tag names nothing, not itself")

# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rds_resources.delete_once: the one way the drills delete what they created (the restore drill's copies and sweep,
the upgrade rehearsal's snapshot and copy, the DR drill's promoted copy): sent once, a lost answer confirmed by a
describe, NotFound counted as done, a refusal for now waited out, any other refusal raised."""

import botocore.exceptions
import pytest

from ansible_collections.dbre.rds.plugins.module_utils import rds_resources as rr
from ansible_collections.dbre.rds.plugins.module_utils.waiting import WaitTimeout

DESCRIBE = {"instance": ("describe_db_instances", "DBInstances", "DBInstanceIdentifier", "DBInstanceStatus",
                         "DBInstanceNotFound"),
            "cluster": ("describe_db_clusters", "DBClusters", "DBClusterIdentifier", "Status", "DBClusterNotFoundFault"),
            "snapshot": ("describe_db_snapshots", "DBSnapshots", "DBSnapshotIdentifier", "Status", "DBSnapshotNotFound")}


def error(code):
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": code}}, "Delete")


class Rds:
    """One resource of ``kind``; each delete call takes the next scripted answer: an exception raised before the
    delete (a refusal), ``"lost"`` (deleted, then the answer is lost), or None (deleted and answered)."""

    def __init__(self, kind, *answers, exists=True):
        self.kind, self.answers, self.exists = kind, list(answers), exists
        self.status = "available"
        self.deletes = []

    def __getattr__(self, operation):
        describe, key, id_key, status_key, missing = DESCRIBE[self.kind]
        if operation == describe:
            def read(**params):
                if not self.exists:
                    raise error(missing)
                return {key: [{id_key: params[id_key], status_key: self.status}]}
            return read
        if operation.startswith("delete_"):
            def delete(**request):
                self.deletes.append((operation, request))
                if not self.exists:
                    raise error(missing)
                answer = self.answers.pop(0) if self.answers else "answered"
                if isinstance(answer, Exception):
                    raise answer  # pylint: disable=raising-bad-type
                self.status = "deleting"
                if answer == "lost":
                    raise botocore.exceptions.ReadTimeoutError(endpoint_url="http://lab")
                return {}
            return delete
        raise AttributeError(operation)


def delete(rds, kind="instance", identifier="drill-copy"):
    return rr.delete_once(rds, rds, kind, identifier, timeout=5, interval=0.01)


@pytest.mark.parametrize("kind, operation, request_", [
    ("instance", "delete_db_instance", {"DBInstanceIdentifier": "drill-copy", "SkipFinalSnapshot": True,
                                        "DeleteAutomatedBackups": True}),
    ("cluster", "delete_db_cluster", {"DBClusterIdentifier": "drill-copy", "SkipFinalSnapshot": True,
                                      "DeleteAutomatedBackups": True}),
    ("snapshot", "delete_db_snapshot", {"DBSnapshotIdentifier": "drill-copy"}),
])
def test_each_kind_is_deleted_with_one_request_and_no_final_snapshot(kind, operation, request_):
    rds = Rds(kind)
    assert delete(rds, kind)["confirmed_by"] == "answer"
    assert rds.deletes == [(operation, request_)]


@pytest.mark.parametrize("kind", ["instance", "cluster", "snapshot"])
def test_not_found_counts_as_done(kind):
    rds = Rds(kind, exists=False)
    assert delete(rds, kind) == {"confirmed_by": "already gone"}
    assert len(rds.deletes) == 1


def test_a_lost_answer_is_confirmed_by_the_describe_and_not_sent_again():
    rds = Rds("snapshot", "lost")
    outcome = delete(rds, "snapshot")
    assert len(rds.deletes) == 1 and outcome["confirmed_by"] == "snapshot drill-copy deleting"


@pytest.mark.parametrize("code", ["InvalidDBInstanceState", "InvalidDBSnapshotState"])
def test_a_refusal_for_now_is_waited_out(code):
    rds = Rds("instance", error(code), error(code))
    assert delete(rds)["confirmed_by"] == "answer"
    assert len(rds.deletes) == 3


def test_any_other_refusal_is_raised_after_one_request():
    rds = Rds("instance", error("AccessDenied"))
    with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
        delete(rds)
    assert len(rds.deletes) == 1 and rds.status == "available"


def test_a_refusal_that_lasts_ends_in_a_timeout_naming_the_call():
    rds = Rds("snapshot", *[error("InvalidDBSnapshotState")] * 1000)
    with pytest.raises(WaitTimeout, match="delete_db_snapshot of drill-copy accepted"):
        rr.delete_once(rds, rds, "snapshot", "drill-copy", timeout=0.2, interval=0.01)

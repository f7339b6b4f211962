# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_global_cluster refuses bad inputs before its first mutating call, naming the option and the fix.

Every case runs as a task of one playbook (tests/integration/bad_inputs.py) against a lab holding an Aurora PostgreSQL
cluster, and a global cluster made with boto3 (so without the module's marker tag) from a second cluster. For each case
the error must name the problem, the lab's call log must show only reads, and the lab's resources must be as before.
"""

import pytest

from tests.integration.bad_inputs import assert_all_refused
from tests.integration.bad_inputs import run_module_cases
from tests.lab.clients import MASTER_PASSWORD, MASTER_USER

pytestmark = pytest.mark.lab

MODULE = "dbre.rds.rds_global_cluster"
SOURCE, MEMBER, UNOWNED = "bad-gc-source", "bad-gc-member", "bad-gc-unowned"


def _globals(rds):
    return sorted((g["GlobalClusterIdentifier"], tuple(sorted(m["DBClusterArn"] for m in g["GlobalClusterMembers"])))
                  for g in rds.describe_global_clusters()["GlobalClusters"])


@pytest.fixture(scope="module")
def world(lab):
    """The clusters the cases name, made before the cases so the cases' own call log holds only what they did."""
    lab.control.reset()
    rds = lab.client("rds")
    arns = {}
    for name in (SOURCE, MEMBER):
        arns[name] = rds.create_db_cluster(DBClusterIdentifier=name, Engine="aurora-postgresql",
                                           EngineVersion="15.4", MasterUsername=MASTER_USER,
                                           MasterUserPassword=MASTER_PASSWORD)["DBCluster"]["DBClusterArn"]
    rds.create_global_cluster(GlobalClusterIdentifier=UNOWNED, SourceDBClusterIdentifier=arns[MEMBER])
    before = _globals(rds)
    yield dict(arns=arns, before=before)
    lab.control.reset()


def cases(world):
    west_arn = world["arns"][SOURCE].replace("us-east-1", "us-west-2")
    return [
        {"id": "create_without_source", "args": {"global_cluster_identifier": "bad-gc-new"},
         "expect": ["global cluster bad-gc-new does not exist and source_db_cluster_identifier is not given"]},
        {"id": "unknown_source",
         "args": {"global_cluster_identifier": "bad-gc-new", "source_db_cluster_identifier": "bad-gc-nowhere"},
         "expect": ["source_db_cluster_identifier bad-gc-nowhere does not exist in us-east-1"]},
        {"id": "source_in_another_region",
         "args": {"global_cluster_identifier": "bad-gc-new", "source_db_cluster_identifier": west_arn},
         "expect": ["is in us-west-2, not in the module's region us-east-1", "set region: us-west-2"]},
        {"id": "source_already_global",
         "args": {"global_cluster_identifier": "bad-gc-new", "source_db_cluster_identifier": MEMBER},
         "expect": [f"source_db_cluster_identifier {MEMBER} is already a member of the global cluster {UNOWNED}"]},
        {"id": "existing_global_without_the_source",
         "args": {"global_cluster_identifier": UNOWNED, "source_db_cluster_identifier": SOURCE},
         "expect": [f"global cluster {UNOWNED} exists without the cluster {world['arns'][SOURCE]}",
                    "global_cluster_identifier"]},
        {"id": "absent_of_what_it_did_not_make", "args": {"global_cluster_identifier": UNOWNED, "state": "absent"},
         "expect": [f"global cluster {UNOWNED} was not created by dbre.rds.rds_global_cluster",
                    "dbre:managed-by=rds_global_cluster"]},
        {"id": "bad_options",
         "args": {"global_cluster_identifier": "bad--gc", "source_db_cluster_identifier": SOURCE,
                  "tags": {"dbre:managed-by": "someone"}, "wait_timeout": -1},
         "expect": ["global_cluster_identifier 'bad--gc' is not a valid RDS identifier",
                    "tag dbre:managed-by is the marker", "wait_timeout must be above 0"]},
        {"id": "check_mode_unknown_source", "check_mode": True,
         "args": {"global_cluster_identifier": "bad-gc-new", "source_db_cluster_identifier": "bad-gc-nowhere"},
         "expect": ["does not exist in us-east-1"]},
    ]


def test_bad_inputs_are_refused_before_any_change(lab, world):
    results = assert_all_refused(lab, run_module_cases, MODULE, cases(world))
    assert all("nothing was changed" in r["msg"] for r in results.values())
    assert _globals(lab.client("rds")) == world["before"]

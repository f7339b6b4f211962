# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_global_cluster against the lab, in one playbook: check mode, create, the same again, check mode again
(unchanged), check mode of the removal, removal, removal again. The lab's call log shows which runs made mutating
calls; the lab's global clusters and the source cluster show what each left.
"""

import json

import pytest
import yaml

from tests.integration.test_rds_provision import run_playbook
from tests.lab.clients import MASTER_PASSWORD, MASTER_USER, wait_cluster

pytestmark = pytest.mark.lab

READ_ONLY = ("Describe", "List", "Get")
SOURCE, GLOBAL = "gc-source", "gc-global"


def step(name, state="present", check=False, **extra):
    args = dict(global_cluster_identifier=GLOBAL, state=state, poll_interval=0.2, **extra)
    task = {"name": name, "dbre.rds.rds_global_cluster": args, "register": name.replace(" ", "_")}
    if check:
        task.update(check_mode=True, diff=True)
    return task


@pytest.fixture(scope="module")
def runs(lab, tmp_path_factory):
    lab.control.reset()
    rds = lab.client("rds")
    source_arn = rds.create_db_cluster(DBClusterIdentifier=SOURCE, Engine="aurora-postgresql", EngineVersion="15.4",
                                       MasterUsername=MASTER_USER, MasterUserPassword=MASTER_PASSWORD,
                                       StorageEncrypted=True)["DBCluster"]["DBClusterArn"]
    rds.create_db_instance(DBInstanceIdentifier=f"{SOURCE}-1", DBClusterIdentifier=SOURCE, Engine="aurora-postgresql",
                           DBInstanceClass="db.r6g.large")
    wait_cluster(rds, SOURCE)
    folder = tmp_path_factory.mktemp("global")
    names = ["plan create", "create", "create again", "plan create again", "plan removal", "remove", "remove again"]
    tasks = [step("plan create", source_db_cluster_identifier=SOURCE, tags={"team": "dbre"}, check=True),
             step("create", source_db_cluster_identifier=SOURCE, tags={"team": "dbre"}),
             step("create again", source_db_cluster_identifier=SOURCE, tags={"team": "dbre"}),
             step("plan create again", source_db_cluster_identifier=SOURCE, tags={"team": "dbre"}, check=True),
             step("plan removal", state="absent", check=True),
             step("remove", state="absent"),
             step("remove again", state="absent")]
    # Between the steps: the call log's length, so each step's mutating calls can be told apart.
    play = [{"name": "rds_global_cluster", "hosts": "localhost", "gather_facts": False, "tasks": [
        item for task in tasks for item in (task, {
            "name": f"mark after {task['name']}",
            "ansible.builtin.uri": {"url": f"{lab.endpoint_url}/_lab/calls", "return_content": True},
            "register": f"calls_after_{task['register']}"})] + [
        {"name": "Write the results", "ansible.builtin.copy": {
            "dest": str(folder / "results.json"), "mode": "0600",
            "content": "{{ {%s} | to_json }}" % ", ".join(
                f"'{name}': {name.replace(' ', '_')}, '{name} calls': calls_after_{name.replace(' ', '_')}.json"
                for name in names)}}]}]
    playbook = folder / "play.yml"
    playbook.write_text(yaml.safe_dump(play, sort_keys=False))
    lab.control.clear_calls()
    result = run_playbook(lab, playbook)
    assert result.returncode == 0, "the playbook failed; see the output above"
    yield json.loads((folder / "results.json").read_text()), source_arn
    lab.control.reset()


def mutating(calls):
    return [call["action"] for call in calls["calls"] if call.get("service", "rds") == "rds"
            and not call["action"].startswith(READ_ONLY)]


def test_each_run_makes_only_the_calls_its_plan_names(runs):
    results, _unused = runs
    steps = ["plan create", "create", "create again", "plan create again", "plan removal", "remove", "remove again"]
    seen, made = 0, {}
    for name in steps:
        calls = mutating(results[f"{name} calls"])
        made[name], seen = calls[seen:], len(calls)
    assert made["plan create"] == [] and made["plan removal"] == []
    assert made["create"][:1] == ["CreateGlobalCluster"]
    assert made["create again"] == [] and made["plan create again"] == [] and made["remove again"] == []
    assert made["remove"] == ["RemoveFromGlobalCluster", "DeleteGlobalCluster"]
    assert results["plan create"]["actions"] == ["CreateGlobalCluster"] and results["plan create"]["changed"]
    assert results["plan removal"]["actions"] == ["RemoveFromGlobalCluster", "DeleteGlobalCluster"]
    assert (results["create again"]["changed"], results["remove again"]["changed"]) == (False, False)
    assert (results["plan create again"]["changed"], results["plan create again"]["actions"]) == (False, [])
    assert results["plan create again"]["diff"]["before"] == results["plan create again"]["diff"]["after"]


def test_the_global_cluster_is_made_from_the_source_and_removed_with_it_left_running(lab, runs):
    results, source_arn = runs
    made = results["create"]["global_cluster"]
    assert made["global_cluster_identifier"] == GLOBAL and made["status"] == "available"
    assert [(m["db_cluster_arn"], m["is_writer"]) for m in made["global_cluster_members"]] == [(source_arn, True)]
    assert made["tags"] == {"team": "dbre", "dbre:managed-by": "rds_global_cluster"}
    assert made["engine"] == "aurora-postgresql" and made["storage_encrypted"] is True
    assert results["plan create"]["global_cluster"]["tags"] == made["tags"]
    assert results["plan removal"]["diff"]["before"]["members"] == [source_arn]
    assert results["plan removal"]["diff"]["after"] == {}
    rds = lab.client("rds")
    assert rds.describe_global_clusters()["GlobalClusters"] == []
    source = rds.describe_db_clusters(DBClusterIdentifier=SOURCE)["DBClusters"][0]
    assert source["Status"] == "available" and not source.get("GlobalClusterIdentifier")

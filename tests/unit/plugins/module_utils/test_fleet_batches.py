# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
import pytest

from ansible_collections.dbre.rds.plugins.module_utils.fleet_batches import family_keys
from ansible_collections.dbre.rds.plugins.module_utils.fleet_batches import max_parallel_problems
from ansible_collections.dbre.rds.plugins.module_utils.fleet_batches import plan_batches


def instance(name, **extra):
    return dict(name=name, db_instance_identifier=name, **extra)


def cluster(name, **extra):
    return dict(name=name, db_cluster_identifier=name, **extra)


@pytest.mark.parametrize("hosts, size, batches", [
    # independent databases: batches of `size` in order
    ([instance("a"), instance("b"), instance("c")], 2, [["a", "b"], ["c"]]),
    ([instance("a"), instance("b"), instance("c")], 1, [["a"], ["b"], ["c"]]),
    ([instance("a"), instance("b"), instance("c")], 5, [["a", "b", "c"]]),
    # two members of one Aurora cluster never share a batch; the next independent host fills the gap
    ([instance("m1", db_cluster_identifier="aur"), instance("m2", db_cluster_identifier="aur"), instance("x")], 2,
     [["m1", "x"], ["m2"]]),
    # a cluster host and one of its members
    ([cluster("aur"), instance("m1", db_cluster_identifier="aur"), instance("y")], 3, [["aur", "y"], ["m1"]]),
    # the clusters of one global database, in two regions
    ([cluster("east", global_cluster_identifier="pay-global"), cluster("west", global_cluster_identifier="pay-global"),
      instance("z")], 2, [["east", "z"], ["west"]]),
    # the global database named by a group variable (dbre_rds_global_cluster_identifier) instead of the description
    ([cluster("east", dbre_rds_global_cluster_identifier="pay"),
      cluster("west", dbre_rds_global_cluster_identifier="pay")], 4, [["east"], ["west"]]),
    # an instance and its cross-region read replica (the source as an ARN)
    ([instance("orders", read_replica_db_instance_identifiers=["arn:aws:rds:us-west-2:1:db:orders-dr"]),
      instance("orders-dr", read_replica_source_db_instance_identifier="arn:aws:rds:us-east-1:1:db:orders")], 2,
     [["orders"], ["orders-dr"]]),
    # a host named twice is drilled once
    ([instance("a"), instance("a")], 2, [["a"]]),
    ([], 3, []),
])
def test_batches_hold_at_most_size_and_never_two_of_one_family(hosts, size, batches):
    plan = plan_batches(hosts, size)
    assert plan["batches"] == batches
    assert plan["order"] == [name for batch in batches for name in batch]
    assert plan["batch_sizes"] == [len(batch) for batch in batches]


def test_an_instance_finds_its_global_database_through_its_cluster_in_the_inventory():
    inventory = [cluster("east", global_cluster_identifier="g"), cluster("west", global_cluster_identifier="g")]
    hosts = [instance("e1", db_cluster_identifier="east"), instance("w1", db_cluster_identifier="west")]
    plan = plan_batches(hosts, 2, inventory)
    assert plan["batches"] == [["e1"], ["w1"]]
    assert plan["families"] == {"e1": ["cluster:east", "global:g"], "w1": ["cluster:west", "global:g"]}


CHAIN = {
    "P": instance("P", read_replica_db_instance_identifiers=["R1"]),
    "R1": instance("R1", read_replica_source_db_instance_identifier="P", read_replica_db_instance_identifiers=["R2"]),
    "R2": instance("R2", read_replica_source_db_instance_identifier="arn:aws:rds:us-west-2:1:db:R1"),
}


@pytest.mark.parametrize("order", [["P", "R1", "R2"], ["R1", "R2", "P"], ["R2", "P", "R1"]])
def test_a_replication_chain_is_one_family_whatever_the_order(order):
    # P -> R1 -> R2: R1 is a replica of P and the source of R2; no two of the three are drilled together
    plan = plan_batches([CHAIN[name] for name in order] + [instance("x")], 3)
    assert plan["batches"] == [[order[0], "x"], [order[1]], [order[2]]]
    assert {plan["families"][name][0] for name in order} == {"replication:P"}


def test_a_chain_whose_middle_is_not_a_target_still_keeps_its_ends_apart():
    # R1 is only in the inventory; P names it as its replica, R2 as its source
    plan = plan_batches([CHAIN["P"], CHAIN["R2"]], 2, inventory=[CHAIN["R1"]])
    assert plan["batches"] == [["P"], ["R2"]]
    plan = plan_batches([CHAIN["P"], CHAIN["R2"]], 2)
    assert plan["batches"] == [["P"], ["R2"]]


def test_family_keys_of_a_replica_that_is_also_a_source_name_both_sides():
    assert family_keys(CHAIN["R1"], {}) == {"replication:P", "replication:R1"}


def test_family_keys_of_a_standalone_instance_are_empty():
    assert family_keys(instance("solo"), {}) == set()


@pytest.mark.parametrize("value, ok", [(1, True), ("3", True), (2.0, True), (0, False), (-1, False), ("two", False),
                                       (None, False), (1.5, False)])
def test_max_parallel_must_be_a_whole_number_of_one_or_more(value, ok):
    assert (max_parallel_problems(value) == []) is ok
    if not ok:
        with pytest.raises(ValueError, match="dbre_rds_max_parallel_drills"):
            plan_batches([instance("a")], value)

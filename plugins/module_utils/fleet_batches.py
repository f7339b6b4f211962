# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which databases of a fleet a playbook drills together: batches of at most N, never two of one family at once.

A host is a dict of the ``amazon.aws.aws_rds`` inventory's host variables (snake_case boto3 names) plus ``name``
(the inventory host name). Two hosts belong to one family, and never share a batch, when they are
- the same Aurora cluster (a cluster host and its member instances, or two member instances),
- clusters (or their members) of one global database (``global_cluster_identifier``, from the cluster's description
  or from the variable ``dbre_rds_global_cluster_identifier`` set by group vars or tags),
- an instance and its read replicas (in any region: a cross-region source is an ARN), transitively: every member of
  a replication chain P -> R1 -> R2 (R1 a replica of P and the source of R2) is in the chain's one family.
The playbook turns the plan into its ``hosts`` (``order``) and ``serial`` (``batch_sizes``), so Ansible itself runs
the batches; ``max_fail_percentage`` then stops the batches after one whose drill breached its objective.
"""

from __future__ import annotations


def _short(identifier):
    """``arn:aws:rds:us-east-1:123:db:orders-db`` and ``orders-db`` both name orders-db."""
    return str(identifier).rsplit(":", 1)[-1] if identifier else None


def _identifier(host):
    return host.get("db_instance_identifier") or host.get("db_cluster_identifier") or host.get("name")


def _is_cluster(host):
    return not host.get("db_instance_identifier") and bool(host.get("db_cluster_identifier"))


def replication_chains(hosts):
    """Maps each instance identifier of a replication chain to the chain's top source (short identifiers).

    Edges come from both sides (``read_replica_source_db_instance_identifier`` and
    ``read_replica_db_instance_identifiers``), and the closure is transitive: P -> R1 -> R2 (R1 a replica of P and the
    source of R2) is one chain, so P, R1 and R2 share one family even when R1 is not a target.
    """
    parent, source_of = {}, {}

    def root(node):
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def join(a, b):
        parent[root(a)] = root(b)

    for host in hosts:
        if _is_cluster(host):
            continue
        me = _short(_identifier(host))
        source = _short(host.get("read_replica_source_db_instance_identifier"))
        if source:
            source_of[me] = source
            join(me, source)
        for replica in host.get("read_replica_db_instance_identifiers") or []:
            source_of.setdefault(_short(replica), me)
            join(_short(replica), me)
    members = {}
    for node in list(parent):
        members.setdefault(root(node), []).append(node)
    chains = {}
    for group in members.values():
        tops = sorted(node for node in group if node not in source_of) or sorted(group)
        chains.update({node: tops[0] for node in group})
    return chains


def family_keys(host, clusters, chains=None):
    """The families ``host`` belongs to; ``clusters`` maps a cluster identifier to its host (for its global id),
    ``chains`` an instance to its replication chain's top (replication_chains; without it, only the host's own
    source and its own replicas are its replication families)."""
    keys = set()
    cluster = host.get("db_cluster_identifier")
    if cluster:
        keys.add(f"cluster:{cluster}")
    global_id = (host.get("dbre_rds_global_cluster_identifier") or host.get("global_cluster_identifier")
                 or (clusters.get(cluster) or {}).get("dbre_rds_global_cluster_identifier")
                 or (clusters.get(cluster) or {}).get("global_cluster_identifier"))
    if global_id:
        keys.add(f"global:{_short(global_id)}")
    if _is_cluster(host):
        return keys
    me = _short(_identifier(host))
    if chains and me in chains:
        keys.add(f"replication:{chains[me]}")
        return keys
    source = host.get("read_replica_source_db_instance_identifier")
    if source:
        keys.add(f"replication:{_short(source)}")
    if host.get("read_replica_db_instance_identifiers"):
        keys.add(f"replication:{me}")
    return keys


def max_parallel_problems(max_parallel):
    try:
        value = int(max_parallel)
    except (TypeError, ValueError):
        return [f"dbre_rds_max_parallel_drills must be a whole number of 1 or more, not {max_parallel!r}"]
    if value < 1 or str(max_parallel).strip() not in (str(value), f"{value}.0"):
        return [f"dbre_rds_max_parallel_drills must be a whole number of 1 or more, not {max_parallel!r}"]
    return []


def plan_batches(hosts, max_parallel, inventory=()):
    """Batches of the ``hosts`` (in their order) of at most ``max_parallel``, no two of one family in a batch.

    ``inventory`` holds every host the inventory knows (targets or not), so an instance's cluster is found even when
    the cluster itself is not a target. Greedy and stable: each batch takes, in order, every remaining host whose
    families are not yet in the batch, until it is full; a host is never postponed by more than its family needs.
    Returns {order, batch_sizes, batches, families}.
    """
    problems = max_parallel_problems(max_parallel)
    if problems:
        raise ValueError(problems[0])
    size = int(max_parallel)
    known = list(inventory) + list(hosts)
    clusters = {h["db_cluster_identifier"]: h for h in known if _is_cluster(h)}
    chains = replication_chains(known)
    families = {h["name"]: sorted(family_keys(h, clusters, chains)) for h in hosts}
    remaining = [h["name"] for h in hosts]
    remaining = list(dict.fromkeys(remaining))
    batches = []
    while remaining:
        batch, taken = [], set()
        for name in remaining:
            if len(batch) == size:
                break
            if taken.isdisjoint(families[name]):
                batch.append(name)
                taken.update(families[name])
        remaining = [name for name in remaining if name not in batch]
        batches.append(batch)
    return {
        "order": [name for batch in batches for name in batch],
        "batch_sizes": [len(batch) for batch in batches],
        "batches": batches,
        "families": {name: keys for name, keys in families.items() if keys},
    }

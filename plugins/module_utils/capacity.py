# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Capacity of an RDS PostgreSQL instance: its connection budget split into application pools, right-sizing advice
from CloudWatch figures, and a storage forecast.

Pure functions: numbers (max_connections, reserved slots, metric series as ``[(epoch_seconds, value)]``, a described
instance in boto3's shape) go in; budgets, pool sizes, recommendations with the numbers that triggered them and
forecasts come out. Nothing here calls AWS or PostgreSQL; ``rds_capacity_info`` reads and this decides.
"""

from __future__ import annotations

import math

from ansible_collections.dbre.rds.plugins.module_utils.instance_classes import INSTANCE_CLASSES
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import identifier_problems

GIB = 1024 ** 3
MIB = 1024 ** 2
DAY = 86400

# RDS for PostgreSQL keeps rds.rds_superuser_reserved_connections (2) on top of PostgreSQL's
# superuser_reserved_connections (3): neither is open to an application's login.
DEFAULT_SUPERUSER_RESERVED = 3
DEFAULT_RDS_SUPERUSER_RESERVED = 2

# Defaults of the rules below; every one is an option of rds_capacity_info (thresholds).
DEFAULT_THRESHOLDS = dict(
    cpu_high_p95=80.0,          # % CPU at the 95th percentile above which the class is too small
    cpu_low_p95=20.0,           # % CPU at the 95th percentile below which the class is too big ...
    memory_low_share=0.10,      # ... unless freeable memory fell below this share of the class's memory
    connections_high_share=0.80,  # connections (maximum) against max_connections
    connection_spike_ratio=3.0,  # maximum connections / median connections that says connections churn
    iops_high_share=0.80,       # IOPS (95th percentile) against the storage's baseline
    iops_low_share=0.30,        # provisioned IOPS (io1/io2) used below this share at the 95th percentile
    throughput_high_share=0.80,  # throughput (95th percentile) against the storage's baseline
)

_SIZES = ("micro", "small", "medium", "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge",
          "24xlarge", "32xlarge")
# The Graviton class of the same shape; a class already on Graviton has none.
GRAVITON_EQUIVALENT = {"t3": "t4g", "m5": "m6g", "m6i": "m7g", "r5": "r6g", "r6i": "r7g"}
# The memory-optimised family of the same generation (twice the memory per vCPU).
MEMORY_OPTIMISED = {"t3": "r5", "t4g": "r6g", "m5": "r5", "m6g": "r6g", "m6i": "r6i", "m7g": "r7g",
                    "r5": "x2g", "r6g": "x2g", "r6i": "x2g", "r7g": "x2g"}
GRAVITON_FAMILIES = ("t4g", "m6g", "m7g", "r6g", "r7g", "x2g")


# ------------------------------------------------------------------------------------------------ connections

def reserved_slots(superuser_reserved=None, rds_superuser_reserved=None):
    """Connection slots no application login can use: PostgreSQL's superuser reserve plus RDS's own."""
    first = DEFAULT_SUPERUSER_RESERVED if superuser_reserved is None else int(superuser_reserved)
    second = DEFAULT_RDS_SUPERUSER_RESERVED if rds_superuser_reserved is None else int(rds_superuser_reserved)
    return dict(superuser_reserved_connections=first, rds_superuser_reserved_connections=second,
                total=first + second)


def connection_budget(max_connections, reserved, headroom_percent):
    """The connections the application fleets may hold together: max_connections less the reserved slots, less
    ``headroom_percent`` of what is left (for consoles, monitoring, migrations and the unexpected)."""
    usable = max(int(max_connections) - int(reserved), 0)
    budget = int(math.floor(usable * (100.0 - float(headroom_percent)) / 100.0))
    return dict(max_connections=int(max_connections), reserved=int(reserved), usable=usable,
                headroom_percent=float(headroom_percent), headroom=usable - budget, budget=budget)


def surge_instances(instances, surge_percent):
    """Instances of a fleet while a rolling deploy runs (old and new side by side)."""
    return int(math.ceil(int(instances) * (100.0 + float(surge_percent)) / 100.0))


def naive_pool_size(max_connections, instances):
    """The seed's formula: max_connections / instances, blind to reserved slots, headroom, other fleets and surge."""
    return int(max_connections) // max(int(instances), 1)


def _water_fill(budget, fleets):
    """Largest per-instance maxima, in proportion to each fleet's threads and never above them, whose total at the
    fleets' peak instance counts stays within ``budget``; every fleet first gets its ``min_pool``."""
    sizes = {f["name"]: int(f["min_pool"]) for f in fleets}
    left = budget - sum(sizes[f["name"]] * f["peak_instances"] for f in fleets)
    open_fleets = [f for f in fleets if sizes[f["name"]] < f["threads"]]
    while left > 0 and open_fleets:
        weight = sum(f["threads"] * f["peak_instances"] for f in open_fleets)
        grown = False
        for fleet in open_fleets:
            share = int(left * fleet["threads"] * fleet["peak_instances"] / weight) // fleet["peak_instances"]
            step = min(share, fleet["threads"] - sizes[fleet["name"]])
            if step > 0:
                sizes[fleet["name"]] += step
                grown = True
        left = budget - sum(sizes[f["name"]] * f["peak_instances"] for f in fleets)
        open_fleets = [f for f in fleets if sizes[f["name"]] < f["threads"]]
        if not grown:
            # Shares rounded down to nothing: hand out single connections, biggest thread count first.
            for fleet in sorted(open_fleets, key=lambda f: (-f["threads"], f["name"])):
                if fleet["peak_instances"] <= left:
                    sizes[fleet["name"]] += 1
                    left -= fleet["peak_instances"]
                    grown = True
            if not grown:
                break
            open_fleets = [f for f in fleets if sizes[f["name"]] < f["threads"]]
    return sizes


def plan_pools(max_connections, reserved, fleets, headroom_percent=10, surge_percent=100):
    """Pool sizes per application instance for every fleet, within the connection budget.

    ``fleets``: ``[{name, instances, threads, through_proxy, min_pool}]``. Fleets that connect directly share the
    budget, each sized for its peak instance count during a rolling deploy (``surge_percent`` more instances);
    fleets behind RDS Proxy hold client connections to the proxy only, and the proxy's own pool takes what the
    direct fleets leave (``proxy_max_connections_percent``).

    Returns ``{budget, fleets: [...], totals, failover, deploy_surge, proxy_max_connections_percent, fits, shortfall,
    needed, max_connections_needed, problem, recommendation}``: ``needed`` is ``min_pool`` per direct instance at the
    peak; when that does not fit, ``shortfall`` (connections over the budget), ``max_connections_needed``,
    ``problem`` (what and by how much) and ``recommendation`` (what to do) are set. Not fitting is a finding, not an
    error: the pools are then each fleet's ``min_pool``.
    """
    budget = connection_budget(max_connections, reserved, headroom_percent)
    direct = []
    for fleet in fleets:
        if fleet.get("through_proxy"):
            continue
        direct.append(dict(name=fleet["name"], instances=int(fleet["instances"]), threads=int(fleet["threads"]),
                           min_pool=int(fleet.get("min_pool") or 1),
                           peak_instances=surge_instances(fleet["instances"], surge_percent)))
    needed = sum(f["min_pool"] * f["peak_instances"] for f in direct)
    shortfall = max(needed - budget["budget"], 0)
    sizes = _water_fill(budget["budget"], direct) if not shortfall else {f["name"]: f["min_pool"] for f in direct}
    planned = []
    for fleet in fleets:
        name, instances, threads = fleet["name"], int(fleet["instances"]), int(fleet["threads"])
        peak = surge_instances(instances, surge_percent)
        naive = naive_pool_size(max_connections, instances)
        if fleet.get("through_proxy"):
            entry = dict(name=name, instances=instances, threads=threads, through_proxy=True, peak_instances=peak,
                         pool_max=threads, pool_min=max(1, int(math.ceil(threads / 4.0))),
                         database_connections=0, database_connections_during_deploy=0,
                         naive_pool_size=naive, naive_total=naive * instances,
                         naive_total_during_deploy=naive * peak,
                         limited_by="the proxy multiplexes: the pool may match the threads")
        else:
            size = sizes[name]
            entry = dict(name=name, instances=instances, threads=threads, through_proxy=False, peak_instances=peak,
                         pool_max=size, pool_min=min(size, max(int(fleet.get("min_pool") or 1),
                                                               int(math.ceil(size / 4.0)))),
                         database_connections=size * instances, database_connections_during_deploy=size * peak,
                         naive_pool_size=naive, naive_total=naive * instances,
                         naive_total_during_deploy=naive * peak,
                         limited_by="threads" if size >= threads else "budget")
        planned.append(entry)
    direct_total = sum(e["database_connections"] for e in planned)
    surge_total = sum(e["database_connections_during_deploy"] for e in planned)
    proxied = [e for e in planned if e["through_proxy"]]
    proxy_percent = None
    if proxied:
        # The proxy may open what the direct fleets leave of max_connections at their peak, headroom kept.
        left = max(budget["budget"] - surge_total, 0)
        proxy_percent = int(math.floor(100.0 * left / max(int(max_connections), 1)))
    problem = recommendation = None
    if shortfall:
        over = ", ".join(f"{f['name']} {f['peak_instances']} x {f['min_pool']}" for f in direct)
        recommendation = ("put fleets behind RDS Proxy, lower surge_percent or headroom_percent, or move to a class "
                          f"(or max_connections) with at least {budget['max_connections'] + shortfall} connections")
        problem = (f"the fleets cannot fit in the connection budget at all: even {needed} connections ({over} "
                   f"instances x min_pool during a deploy) exceed the budget of {budget['budget']} by {shortfall} "
                   f"(max_connections {budget['max_connections']} - {budget['reserved']} reserved - "
                   f"{budget['headroom']} headroom): {recommendation}")
    return dict(
        budget=budget,
        fleets=planned,
        totals=dict(database_connections=direct_total, database_connections_during_deploy=surge_total,
                    naive_total=sum(e["naive_total"] for e in planned if not e["through_proxy"]),
                    naive_total_during_deploy=sum(e["naive_total_during_deploy"] for e in planned
                                                  if not e["through_proxy"])),
        deploy_surge=dict(surge_percent=float(surge_percent), connections=surge_total, budget=budget["budget"],
                          fits=surge_total <= budget["budget"],
                          naive_connections=sum(e["naive_total_during_deploy"] for e in planned
                                                if not e["through_proxy"]),
                          naive_fits=sum(e["naive_total_during_deploy"] for e in planned
                                         if not e["through_proxy"]) <= budget["usable"]),
        failover=failover_case(planned, budget),
        proxy_max_connections_percent=proxy_percent,
        fits=not shortfall,
        shortfall=shortfall,
        needed=needed,
        max_connections_needed=budget["max_connections"] + shortfall if shortfall else None,
        problem=problem,
        recommendation=recommendation,
    )


def failover_case(planned, budget):
    """After a failover every pool reconnects at once to the new writer and refills to its maximum: the new writer
    must take every direct pool at its maximum in one burst (plus the proxy's pool)."""
    burst = sum(e["pool_max"] * e["instances"] for e in planned if not e["through_proxy"])
    return dict(reconnecting_at_once=burst, budget=budget["budget"], fits=burst <= budget["budget"],
                note="every application instance reconnects within seconds of the DNS change; pools open up to "
                     "pool_max while requests queue, so the new writer sees the whole fleet's maximum at once")


# -------------------------------------------------------------------------------------------------- statistics

def percentile(values, share):
    """The ``share`` (0..1) percentile of ``values`` by linear interpolation, None for no values."""
    data = sorted(float(v) for v in values if v is not None)
    if not data:
        return None
    if len(data) == 1:
        return data[0]
    rank = share * (len(data) - 1)
    low = int(math.floor(rank))
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (rank - low)


def sum_series(*series):
    """Point-wise sum of ``[(t, v)]`` series over the timestamps they all have."""
    maps = [dict(s) for s in series]
    if not maps:
        return []
    common = set(maps[0])
    for other in maps[1:]:
        common &= set(other)
    return [(t, sum(m[t] for m in maps)) for t in sorted(common)]


def linear_fit(points):
    """Least squares ``(slope per second, intercept)`` of ``[(t, v)]``; None with fewer than two distinct times."""
    points = [(float(t), float(v)) for t, v in points if v is not None]
    if len({t for t, _unused in points}) < 2:
        return None
    n = len(points)
    mean_t = sum(t for t, _unused in points) / n
    mean_v = sum(v for _unused, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _unused in points)
    cov = sum((t - mean_t) * (v - mean_v) for t, v in points)
    slope = cov / var
    return slope, mean_v - slope * mean_t


# ----------------------------------------------------------------------------------------------------- storage

def storage_baseline(instance):
    """Baseline IOPS and throughput (MiB/s) of the instance's storage; None where there is none to judge against
    (Aurora's cluster volume, magnetic storage)."""
    storage = str(instance.get("StorageType") or "").lower()
    gib = int(instance.get("AllocatedStorage") or 0)
    iops = instance.get("Iops")
    throughput = instance.get("StorageThroughput")
    if str(instance.get("Engine") or "").startswith("aurora") or storage.startswith("aurora"):
        return dict(storage_type=storage or "aurora", iops=None, throughput_mibps=None,
                    basis="Aurora's cluster volume has no per-instance baseline")
    if storage == "gp3":
        # RDS stripes gp3 volumes of 400 GiB and more (PostgreSQL) over four: 12,000 IOPS and 500 MiB/s baseline.
        base_iops, base_tput = (12000, 500) if gib >= 400 else (3000, 125)
        return dict(storage_type="gp3", iops=max(int(iops or 0), base_iops),
                    throughput_mibps=max(int(throughput or 0), base_tput),
                    basis=f"gp3 {gib} GiB: {base_iops} IOPS / {base_tput} MiB/s baseline, or what is provisioned")
    if storage == "gp2":
        return dict(storage_type="gp2", iops=min(max(3 * gib, 100), 16000), throughput_mibps=250,
                    basis=f"gp2 {gib} GiB: 3 IOPS per GiB (100 to 16,000), bursting to 3,000 under 1,000 GiB")
    if storage in ("io1", "io2"):
        return dict(storage_type=storage, iops=int(iops or 0) or None, throughput_mibps=None,
                    basis=f"{storage}: the provisioned {iops} IOPS")
    return dict(storage_type=storage or None, iops=None, throughput_mibps=None,
                basis=f"no baseline known for storage type {storage or 'unknown'}")


def storage_forecast(free_storage_series, allocated_gib, max_allocated_gib=None):
    """Growth per day from FreeStorageSpace (bytes) by least squares, days until the volume is full and until the
    storage autoscaling ceiling (MaxAllocatedStorage) is reached.

    ``free_storage_series`` is ``[(epoch_seconds, free_bytes)]``. Returns growth in bytes and GiB per day (negative
    when the database shrinks), ``days_until_full`` (of the allocated volume, as if autoscaling did not act),
    ``days_until_max_allocated`` (None without autoscaling) and ``days_until_out_of_space`` (the later of the two
    when autoscaling is on); None wherever the data cannot say (fewer than two points, no growth).
    """
    fit = linear_fit(free_storage_series)
    result = dict(points=len(free_storage_series), growth_bytes_per_day=None, growth_gib_per_day=None,
                  free_bytes=None, used_bytes=None, allocated_gib=int(allocated_gib or 0),
                  max_allocated_gib=int(max_allocated_gib) if max_allocated_gib else None,
                  days_until_full=None, days_until_max_allocated=None, days_until_out_of_space=None)
    if fit is None:
        return result
    slope, intercept = fit
    last_t = max(float(t) for t, _unused in free_storage_series)
    free_now = slope * last_t + intercept
    growth = -slope * DAY
    allocated = int(allocated_gib or 0) * GIB
    result.update(growth_bytes_per_day=round(growth), growth_gib_per_day=round(growth / GIB, 3),
                  free_bytes=round(free_now), used_bytes=round(allocated - free_now) if allocated else None)
    if growth <= 0:
        return result
    result["days_until_full"] = round(max(free_now, 0) / growth, 1)
    result["days_until_out_of_space"] = result["days_until_full"]
    if max_allocated_gib and allocated:
        ceiling_free = int(max_allocated_gib) * GIB - (allocated - free_now)
        result["days_until_max_allocated"] = round(max(ceiling_free, 0) / growth, 1)
        result["days_until_out_of_space"] = result["days_until_max_allocated"]
    return result


# ------------------------------------------------------------------------------------------------ right-sizing

def class_parts(instance_class):
    """(family, size) of ``db.<family>.<size>``, or (None, None)."""
    parts = str(instance_class or "").split(".")
    if len(parts) != 3 or parts[0] != "db":
        return None, None
    return parts[1], parts[2]


def neighbour_class(instance_class, step):
    """The next bigger (``step`` 1) or smaller (-1) size of the same family that RDS offers, or None."""
    family, size = class_parts(instance_class)
    if size not in _SIZES:
        return None
    index = _SIZES.index(size) + step
    while 0 <= index < len(_SIZES):
        candidate = f"db.{family}.{_SIZES[index]}"
        if candidate in INSTANCE_CLASSES:
            return candidate
        index += step
    return None


def same_size_in(instance_class, family_map):
    """The class of the same size in the family ``family_map`` maps to, when RDS offers it."""
    family, size = class_parts(instance_class)
    target = family_map.get(family)
    if not target:
        return None
    candidate = f"db.{target}.{size}"
    if candidate in INSTANCE_CLASSES:
        return candidate
    # A burstable size that the target family lacks: its smallest size.
    bigger = next((f"db.{target}.{s}" for s in _SIZES[_SIZES.index(size):] if f"db.{target}.{s}" in INSTANCE_CLASSES),
                  None) if size in _SIZES else None
    return bigger


def _rec(name, kind, advice, triggered_by, suggested=None):
    return dict(name=name, kind=kind, advice=advice, suggested=suggested, triggered_by=triggered_by)


def _round(value, digits=1):
    return None if value is None else round(float(value), digits)


def recommendations(instance, sizing, figures, max_connections, thresholds=None):
    """Right-sizing advice, each with the figures (and thresholds) that triggered it.

    ``figures``: cpu_p50, cpu_p95 (percent), freeable_memory_min (bytes), connections_max, connections_p50, iops_p95
    (read + write), throughput_p95 (bytes/s, read + write); any may be None (no data), and a rule without its data
    does not fire. ``sizing`` is instance_classes' record of the class (memory_bytes, vcpus).
    """
    limits = dict(DEFAULT_THRESHOLDS)
    limits.update(thresholds or {})
    instance_class = instance.get("DBInstanceClass")
    family, _size = class_parts(instance_class)
    memory = (sizing or {}).get("memory_bytes")
    found = []
    cpu_p50, cpu_p95 = figures.get("cpu_p50"), figures.get("cpu_p95")
    mem_min = figures.get("freeable_memory_min")
    memory_tight = mem_min is not None and memory and mem_min < limits["memory_low_share"] * memory
    if cpu_p95 is not None and cpu_p95 > limits["cpu_high_p95"]:
        bigger = neighbour_class(instance_class, 1)
        found.append(_rec("cpu_high", "class_up", f"CPU reached {cpu_p95:.1f} % at the 95th percentile (above "
                          f"{limits['cpu_high_p95']:g} %): move up to {bigger or 'a bigger class'} or take load off",
                          dict(cpu_p95=_round(cpu_p95), cpu_p50=_round(cpu_p50), threshold=limits["cpu_high_p95"]),
                          bigger))
    if cpu_p95 is not None and cpu_p95 < limits["cpu_low_p95"] and not memory_tight:
        smaller = neighbour_class(instance_class, -1)
        if smaller:
            found.append(_rec("cpu_low", "class_down", f"CPU stayed under {cpu_p95:.1f} % at the 95th percentile "
                              f"(below {limits['cpu_low_p95']:g} %) and memory was not short: {smaller} halves the "
                              "cost", dict(cpu_p95=_round(cpu_p95), cpu_p50=_round(cpu_p50),
                                           threshold=limits["cpu_low_p95"]), smaller))
    if memory_tight:
        target = same_size_in(instance_class, MEMORY_OPTIMISED)
        found.append(_rec("memory_low", "memory_optimised",
                          f"Freeable memory fell to {mem_min / GIB:.2f} GiB, under {limits['memory_low_share']:.0%} of "
                          f"the class's {memory / GIB:g} GiB: move to the memory-optimised {target or 'family'}",
                          dict(freeable_memory_min_bytes=int(mem_min), class_memory_bytes=int(memory),
                               threshold_share=limits["memory_low_share"]), target))
    graviton = same_size_in(instance_class, GRAVITON_EQUIVALENT)
    if graviton and family not in GRAVITON_FAMILIES:
        found.append(_rec("graviton", "graviton", f"{instance_class} has a Graviton equivalent, {graviton}: the same "
                          "vCPUs and memory for about 10-20 % less", dict(instance_class=instance_class), graviton))
    conn_max, conn_p50 = figures.get("connections_max"), figures.get("connections_p50")
    if conn_max is not None and max_connections and conn_max > limits["connections_high_share"] * max_connections:
        found.append(_rec("connections_high", "rds_proxy",
                          f"Connections reached {conn_max:.0f} of max_connections {max_connections} (above "
                          f"{limits['connections_high_share']:.0%}): size the pools (app_fleets) and put the "
                          "fleets behind RDS Proxy rather than raising max_connections",
                          dict(connections_max=_round(conn_max, 0), max_connections=int(max_connections),
                               threshold_share=limits["connections_high_share"]), "rds_proxy"))
    elif (conn_max is not None and conn_p50 and conn_max >= 10
          and conn_max > limits["connection_spike_ratio"] * conn_p50):
        found.append(_rec("connection_churn", "rds_proxy",
                          f"Connections spike to {conn_max:.0f} from a median of {conn_p50:.0f} (more than "
                          f"{limits['connection_spike_ratio']:g} times): clients open connections in bursts; RDS "
                          "Proxy (or pools with a fixed size) absorbs the churn",
                          dict(connections_max=_round(conn_max, 0), connections_p50=_round(conn_p50, 1),
                               threshold_ratio=limits["connection_spike_ratio"]), "rds_proxy"))
    baseline = storage_baseline(instance)
    iops_p95, tput_p95 = figures.get("iops_p95"), figures.get("throughput_p95")
    storage = baseline["storage_type"]
    if baseline["iops"] and iops_p95 is not None and iops_p95 > limits["iops_high_share"] * baseline["iops"]:
        target = "io2" if storage in ("io1", "io2") else "gp3"
        found.append(_rec("iops_high", "storage_type",
                          f"IOPS reached {iops_p95:.0f} at the 95th percentile against a baseline of "
                          f"{baseline['iops']} ({baseline['basis']}): provision more IOPS on {target}",
                          dict(iops_p95=_round(iops_p95, 0), baseline_iops=baseline["iops"],
                               threshold_share=limits["iops_high_share"]), target))
    elif (storage in ("io1", "io2") and baseline["iops"] and iops_p95 is not None
          and iops_p95 < limits["iops_low_share"] * baseline["iops"]):
        found.append(_rec("iops_overprovisioned", "storage_type",
                          f"IOPS stayed under {iops_p95:.0f} at the 95th percentile of {baseline['iops']} provisioned "
                          f"on {storage}: gp3 (3,000 IOPS included, more for a fee) costs far less",
                          dict(iops_p95=_round(iops_p95, 0), provisioned_iops=baseline["iops"],
                               threshold_share=limits["iops_low_share"]), "gp3"))
    if (baseline["throughput_mibps"] and tput_p95 is not None
            and tput_p95 > limits["throughput_high_share"] * baseline["throughput_mibps"] * MIB):
        found.append(_rec("throughput_high", "storage_type",
                          f"Throughput reached {tput_p95 / MIB:.1f} MiB/s at the 95th percentile against a baseline "
                          f"of {baseline['throughput_mibps']} MiB/s: provision more throughput on gp3",
                          dict(throughput_p95_mibps=_round(tput_p95 / MIB), baseline_mibps=baseline["throughput_mibps"],
                               threshold_share=limits["throughput_high_share"]), "gp3"))
    if storage == "gp2":
        found.append(_rec("gp2_to_gp3", "storage_type", "gp2 ties IOPS to the volume's size; gp3 gives 3,000 IOPS "
                          "and 125 MiB/s at any size for about 20 % less", dict(storage_type="gp2"), "gp3"))
    return found


# ------------------------------------------------------------------------------------------------------ options

def fleet_problems(fleets):
    problems = []
    names = [str(f.get("name") or "") for f in fleets or []]
    for index, fleet in enumerate(fleets or []):
        where = f"app_fleets[{index}]"
        if not str(fleet.get("name") or "").strip():
            problems.append(f"{where} needs a name")
        for key in ("instances", "threads"):
            if fleet.get(key) is None or int(fleet[key]) < 1:
                problems.append(f"{where} ({fleet.get('name')}) {key} must be at least 1, got {fleet.get(key)}")
        min_pool = fleet.get("min_pool")
        if min_pool is not None and (int(min_pool) < 1 or (fleet.get("threads") and int(min_pool) > int(
                fleet["threads"]))):
            problems.append(f"{where} ({fleet.get('name')}) min_pool must be from 1 to threads "
                            f"({fleet.get('threads')}), got {min_pool}")
    duplicates = sorted({n for n in names if names.count(n) > 1 and n})
    if duplicates:
        problems.append(f"app_fleets names {', '.join(duplicates)} more than once: name each fleet once")
    return problems


def option_problems(params):
    """Problems with rds_capacity_info's options, each saying what to change."""
    problems = []
    instances = params.get("db_instance_identifiers") or []
    clusters = params.get("db_cluster_identifiers") or []
    if not instances and not clusters:
        problems.append("give db_instance_identifiers or db_cluster_identifiers: name at least one instance or cluster")
    for name in instances:
        problems += identifier_problems(name, "db_instance_identifiers item")
    for name in clusters:
        problems += identifier_problems(name, "db_cluster_identifiers item")
    for what, names in (("db_instance_identifiers", instances), ("db_cluster_identifiers", clusters)):
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            problems.append(f"{what} names {', '.join(twice)} more than once: name each once")
    lookback = params.get("lookback_days")
    if lookback is None or lookback < 1 or lookback > 455:
        problems.append(f"lookback_days must be from 1 to 455 (CloudWatch keeps 455 days), got {lookback}: the "
                        "advice needs at least a day of metrics")
    headroom = params.get("headroom_percent")
    if headroom is None or not 0 <= headroom < 100:
        problems.append(f"headroom_percent must be from 0 to below 100, got {headroom}")
    surge = params.get("surge_percent")
    if surge is None or not 0 <= surge <= 400:
        problems.append(f"surge_percent must be from 0 to 400 (100 doubles the fleet during a deploy), got {surge}")
    problems += fleet_problems(params.get("app_fleets") or [])
    for key, value in (params.get("thresholds") or {}).items():
        if key not in DEFAULT_THRESHOLDS:
            problems.append(f"thresholds.{key} is not a threshold: use {', '.join(sorted(DEFAULT_THRESHOLDS))}")
        elif not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value < 0:
            problems.append(f"thresholds.{key} must be a finite number of at least 0, got {value!r}")
    return problems


# ------------------------------------------------------------------------------------------------- CloudWatch reads

# (key, metric, stat, whole window?) read for every instance; whole-window reads give one value for the lookback.
METRIC_READS = (
    ("cpu_p50", "CPUUtilization", "p50", True),
    ("cpu_p95", "CPUUtilization", "p95", True),
    ("cpu", "CPUUtilization", "Average", False),
    ("freeable_memory_min", "FreeableMemory", "Minimum", True),
    ("connections_max", "DatabaseConnections", "Maximum", True),
    ("connections", "DatabaseConnections", "Average", False),
    ("read_iops", "ReadIOPS", "Average", False),
    ("write_iops", "WriteIOPS", "Average", False),
    ("read_throughput", "ReadThroughput", "Average", False),
    ("write_throughput", "WriteThroughput", "Average", False),
    ("free_storage", "FreeStorageSpace", "Average", False),
)
# GetMetricData takes at most 500 queries per request.
MAX_QUERIES_PER_CALL = 500
# Series are read with about this many points over the lookback, enough for percentiles and a trend.
SERIES_POINTS = 200


def series_period(lookback_days):
    """Period (seconds, a multiple of 60) that gives about :data:`SERIES_POINTS` points over the lookback."""
    seconds = int(lookback_days) * DAY
    return max(60, int(math.ceil(seconds / SERIES_POINTS / 60.0)) * 60)


def metric_queries(identifiers, lookback_days, aurora=()):
    """GetMetricData queries for every instance, in requests of at most 500 queries, keyed ``(identifier, key)``:
    returns ``(requests, index)`` with ``index[query_id] = (identifier, key)``. A whole-window query has one period
    (the lookback); FreeStorageSpace is skipped for Aurora members (their storage is the cluster volume)."""
    whole, period = int(lookback_days) * DAY, series_period(lookback_days)
    queries, index = [], {}
    for number, identifier in enumerate(identifiers):
        for key, metric, stat, one_value in METRIC_READS:
            if key == "free_storage" and identifier in aurora:
                continue
            query_id = f"i{number}_{key}"
            index[query_id] = (identifier, key)
            queries.append(dict(Id=query_id, ReturnData=True, MetricStat=dict(
                Metric=dict(Namespace="AWS/RDS", MetricName=metric,
                            Dimensions=[dict(Name="DBInstanceIdentifier", Value=identifier)]),
                Period=whole if one_value else period, Stat=stat)))
    requests = [queries[i:i + MAX_QUERIES_PER_CALL] for i in range(0, len(queries), MAX_QUERIES_PER_CALL)]
    return requests, index


def _number(value):
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def figures_from_series(series):
    """The right-sizing figures from one instance's read series ``{key: [(epoch, value)]}``: a whole-window
    percentile when CloudWatch computed it, else the percentile of the series' period averages."""
    def values(key):
        return [v for _unused, v in series.get(key) or [] if _number(v) is not None]

    def single(key):
        found = values(key)
        return max(found) if found and key.endswith(("_max", "_p50", "_p95")) else (min(found) if found else None)

    cpu = values("cpu")
    iops = sum_series(series.get("read_iops") or [], series.get("write_iops") or [])
    throughput = sum_series(series.get("read_throughput") or [], series.get("write_throughput") or [])
    connections = values("connections")
    figures = dict(
        cpu_p50=single("cpu_p50"), cpu_p95=single("cpu_p95"),
        freeable_memory_min=single("freeable_memory_min"),
        connections_max=single("connections_max"), connections_p50=percentile(connections, 0.5),
        iops_p95=percentile([v for _unused, v in iops], 0.95), iops_max=max([v for _unused, v in iops], default=None),
        throughput_p95=percentile([v for _unused, v in throughput], 0.95),
        datapoints=len(cpu),
    )
    figures["cpu_percentile_source"] = "cloudwatch" if figures["cpu_p95"] is not None else None
    if figures["cpu_p95"] is None and cpu:
        figures.update(cpu_p50=percentile(cpu, 0.5), cpu_p95=percentile(cpu, 0.95),
                       cpu_percentile_source="period averages")
    if figures["connections_max"] is None and connections:
        figures["connections_max"] = max(connections)
    return {key: (round(value, 3) if isinstance(value, float) else value) for key, value in figures.items()}

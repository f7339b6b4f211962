# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Memory and vCPUs of RDS DB instance classes: AWS's instance type data when readable, else the shipped table.

Standard library only: the lab (tests/lab) imports this file outside Ansible to give its instances the same memory,
so it must import nothing from Ansible, amazon.aws, boto3 or the rest of this collection.
"""

from __future__ import annotations

import difflib

GIB = 1024 ** 3
# AWS publishes no figure for what it keeps for the OS and its agents; DBInstanceClassMemory is "somewhat lower"
# than the nominal memory. Absolute values assume a tenth is kept (erring low); formula style leaves it to RDS.
RDS_RESERVED_MEMORY_SHARE = 0.10
# One Aurora capacity unit (ACU) is about 2 GiB of memory with matching CPU and networking.
ACU_MEMORY_GIB = 2
SERVERLESS_CLASS = "db.serverless"

_SIZE_VCPUS = {
    "medium": 1, "large": 2, "xlarge": 4, "2xlarge": 8, "4xlarge": 16, "8xlarge": 32, "12xlarge": 48,
    "16xlarge": 64, "24xlarge": 96, "32xlarge": 128,
}
# Burstable classes keep 2 vCPUs up to large, so their memory cannot be derived from the vCPU count.
_BURSTABLE = {"micro": (1, 2), "small": (2, 2), "medium": (4, 2), "large": (8, 2), "xlarge": (16, 4),
              "2xlarge": (32, 8)}
# (family, GiB per vCPU, sizes RDS offers): the current-generation classes of RDS and Aurora PostgreSQL.
_FIXED_RATIO_FAMILIES = (
    ("m5", 4, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge")),
    ("m6g", 4, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")),
    ("m6i", 4, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "32xlarge")),
    ("m7g", 4, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")),
    ("r5", 8, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge")),
    ("r6g", 8, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")),
    ("r6i", 8, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge", "24xlarge", "32xlarge")),
    ("r7g", 8, ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")),
    ("x2g", 16, ("medium", "large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")),
)


def _build_table():
    table = {}
    for family in ("t3", "t4g"):
        for size, (gib, vcpus) in _BURSTABLE.items():
            table[f"db.{family}.{size}"] = {"memory_gib": gib, "vcpus": vcpus}
    for family, gib_per_vcpu, sizes in _FIXED_RATIO_FAMILIES:
        for size in sizes:
            vcpus = _SIZE_VCPUS[size]
            table[f"db.{family}.{size}"] = {"memory_gib": vcpus * gib_per_vcpu, "vcpus": vcpus}
    return table


# Class name -> {"memory_gib", "vcpus"}; nominal figures as AWS publishes them for each class.
INSTANCE_CLASSES = _build_table()


class UnknownInstanceClass(ValueError):
    """A class neither AWS's data nor the table knows; ``suggestions`` holds the closest known names."""

    def __init__(self, instance_class, suggestions):
        self.instance_class = instance_class
        self.suggestions = suggestions
        hint = f" Closest known classes: {', '.join(suggestions)}." if suggestions else ""
        super().__init__(
            f"Unknown DB instance class {instance_class!r}: give one of the current db.* classes "
            f"(t3, t4g, m5, m6g, m6i, m7g, r5, r6g, r6i, r7g, x2g) or {SERVERLESS_CLASS} with max_capacity.{hint}"
        )


def closest_classes(instance_class, count=3):
    """The known class names nearest to ``instance_class`` by spelling."""
    return difflib.get_close_matches(str(instance_class or "").lower(), sorted(INSTANCE_CLASSES), n=count, cutoff=0.5)


def ec2_instance_type(instance_class):
    """EC2's name for a DB instance class (``db.r6g.large`` -> ``r6g.large``), or None for ``db.serverless``."""
    if not instance_class or instance_class == SERVERLESS_CLASS or not instance_class.startswith("db."):
        return None
    return instance_class[len("db."):]


def sizing(instance_class, memory_gib, vcpus, source):
    """The sizing record every recommendation starts from."""
    return {
        "instance_class": instance_class,
        "memory_gib": memory_gib,
        "memory_bytes": int(memory_gib * GIB),
        "vcpus": vcpus,
        "source": source,
    }


def sizing_from_table(instance_class):
    """Sizing from the shipped table; raises :class:`UnknownInstanceClass` with the closest names."""
    known = INSTANCE_CLASSES.get(str(instance_class or "").lower())
    if known is None:
        raise UnknownInstanceClass(instance_class, closest_classes(instance_class))
    return sizing(instance_class, known["memory_gib"], known["vcpus"], "table")


def sizing_from_instance_type(instance_class, instance_type_info):
    """Sizing from one ``InstanceTypes`` item of EC2 DescribeInstanceTypes."""
    mib = instance_type_info["MemoryInfo"]["SizeInMiB"]
    vcpus = instance_type_info["VCpuInfo"]["DefaultVCpus"]
    gib = mib / 1024
    return sizing(instance_class, int(gib) if gib == int(gib) else gib, vcpus, "ec2:DescribeInstanceTypes")


def sizing_for_serverless(max_capacity):
    """Aurora Serverless v2 sizes from its maximum ACUs; AWS publishes no vCPU count per ACU, so vcpus is None."""
    if max_capacity is None or float(max_capacity) <= 0:
        raise ValueError(
            f"Aurora Serverless v2 ({SERVERLESS_CLASS}) is sized from its maximum capacity: give max_capacity in "
            "ACUs (or db_instance_identifier of a member of a cluster with ServerlessV2ScalingConfiguration)."
        )
    gib = float(max_capacity) * ACU_MEMORY_GIB
    return sizing(SERVERLESS_CLASS, int(gib) if gib == int(gib) else gib, None, f"{float(max_capacity):g} ACUs x 2 GiB")

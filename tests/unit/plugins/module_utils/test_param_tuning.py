# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""rds_param_tune's decisions: PGTune's formulas per class and workload, units, RDS formulas, validation, the plan."""

import math

import pytest

from ansible_collections.dbre.rds.plugins.module_utils import instance_classes as ic
from ansible_collections.dbre.rds.plugins.module_utils import param_tuning as pt

GIB = 1024 ** 3

# Classes across every family the table covers, small and large, burstable, Graviton and Intel.
CLASSES = [
    ("db.t3.micro", 1, 2), ("db.t4g.micro", 1, 2), ("db.t4g.medium", 4, 2), ("db.t3.2xlarge", 32, 8),
    ("db.m5.large", 8, 2), ("db.m6g.xlarge", 16, 4), ("db.m6i.32xlarge", 512, 128), ("db.m7g.4xlarge", 64, 16),
    ("db.r5.24xlarge", 768, 96), ("db.r6g.large", 16, 2), ("db.r6i.8xlarge", 256, 32), ("db.r7g.2xlarge", 64, 8),
    ("db.x2g.medium", 16, 1), ("db.x2g.16xlarge", 1024, 64),
]

# The units PostgreSQL (and so RDS) counts each setting in.
UNITS = {
    "shared_buffers": "8kB", "effective_cache_size": "8kB", "wal_buffers": "8kB", "work_mem": "kB",
    "maintenance_work_mem": "kB", "min_wal_size": "MB", "max_wal_size": "MB", "checkpoint_timeout": "s",
    "log_min_duration_statement": "ms", "idle_in_transaction_session_timeout": "ms",
}

COVERED = {
    "shared_buffers", "effective_cache_size", "maintenance_work_mem", "work_mem", "wal_buffers", "min_wal_size",
    "max_wal_size", "checkpoint_completion_target", "checkpoint_timeout", "random_page_cost",
    "effective_io_concurrency", "default_statistics_target", "max_worker_processes", "max_parallel_workers",
    "max_parallel_workers_per_gather", "max_parallel_maintenance_workers", "autovacuum_max_workers",
    "autovacuum_vacuum_cost_limit", "shared_preload_libraries", "track_io_timing", "log_min_duration_statement",
    "idle_in_transaction_session_timeout", "max_connections",
}


def pgtune_expected(memory_gib, vcpus, workload, max_connections=None):
    """PGTune's rules (le0pard/pgtune configurationSlice.js), written out again in kB, on RDS's usable memory."""
    nominal = int(memory_gib * GIB)
    usable = nominal - int(nominal * 0.10)
    ram_kb = usable // 1024
    dw = workload == "analytics"
    default_connections = {"web": 200, "oltp": 300, "analytics": 40, "mixed": 100}[workload]
    connections = max_connections or min(default_connections, usable // 9531392, 5000)
    shared_kb = ram_kb // 4
    wal_kb = min(math.floor(3 * shared_kb / 100), 16384)
    if 14336 < wal_kb < 16384:
        wal_kb = 16384
    wal_kb = max(wal_kb, 32)
    workers = vcpus if vcpus >= 4 else 8
    work_mem = (ram_kb - shared_kb) / ((connections + workers) * 3)
    if workload in ("mixed", "analytics"):
        work_mem = work_mem / 2
    expected = {
        "max_connections": connections,
        "shared_buffers": shared_kb // 8,
        "effective_cache_size": (ram_kb * 3 // 4) // 8,
        "maintenance_work_mem": min(ram_kb // (8 if dw else 16), 2 * 1024 * 1024),
        "work_mem": max(math.floor(work_mem), 64),
        "wal_buffers": wal_kb // 8,
        "min_wal_size": {"web": 1024, "mixed": 1024, "oltp": 2048, "analytics": 4096}[workload],
        "max_wal_size": {"web": 4096, "mixed": 4096, "oltp": 8192, "analytics": 16384}[workload],
        "checkpoint_completion_target": 0.9,
        "random_page_cost": 1.1,
        "effective_io_concurrency": 200,
        "default_statistics_target": 500 if dw else 100,
        "autovacuum_max_workers": max(usable // 64371566592, 3),
        "track_io_timing": 1,
    }
    if vcpus >= 4:
        gather = math.ceil(vcpus / 2) if dw else min(math.ceil(vcpus / 2), 4)
        expected.update(max_worker_processes=vcpus, max_parallel_workers=vcpus,
                        max_parallel_workers_per_gather=gather,
                        max_parallel_maintenance_workers=min(math.ceil(vcpus / 2), 4))
    else:
        expected.update(max_worker_processes=8, max_parallel_workers=8, max_parallel_workers_per_gather=2,
                        max_parallel_maintenance_workers=2)
    expected["autovacuum_vacuum_cost_limit"] = 200 * expected["autovacuum_max_workers"]
    return expected, usable


def by_name(recommendations):
    return {item["name"]: item for item in recommendations}


@pytest.mark.parametrize("workload", pt.WORKLOADS)
@pytest.mark.parametrize("instance_class,memory_gib,vcpus", CLASSES)
def test_absolute_values_follow_pgtune_in_the_parameters_units(instance_class, memory_gib, vcpus, workload):
    sizing = ic.sizing_from_table(instance_class)
    assert (sizing["memory_gib"], sizing["vcpus"]) == (memory_gib, vcpus)
    recommendations, skipped = pt.recommend(sizing, workload)
    got = by_name(recommendations)
    expected = pgtune_expected(memory_gib, vcpus, workload)[0]
    assert skipped == []
    assert COVERED <= set(got)
    for name, value in expected.items():
        assert float(got[name]["value"]) == pytest.approx(value), name
        assert got[name]["unit"] == UNITS.get(name), name
        assert got[name]["rationale"], name
    assert got["shared_preload_libraries"]["value"] == "pg_stat_statements"


@pytest.mark.parametrize("workload", pt.WORKLOADS)
@pytest.mark.parametrize("instance_class,memory_gib,vcpus", CLASSES)
def test_formula_style_is_valid_rds_syntax_and_evaluates_to_the_absolute_values(
        instance_class, memory_gib, vcpus, workload):
    sizing = ic.sizing_from_table(instance_class)
    absolute = by_name(pt.recommend(sizing, workload)[0])
    formula = by_name(pt.recommend(sizing, workload, value_style="formula")[0])
    assert set(formula) == set(absolute)
    usable = pgtune_expected(memory_gib, vcpus, workload)[1]
    variables = {"DBInstanceClassMemory": usable, "DBInstanceVCPU": vcpus}
    uses_formula = set()
    for name, item in formula.items():
        if not pt.is_formula(item["value"]):
            assert item["value"] == absolute[name]["value"], name
            continue
        uses_formula.add(name)
        assert pt.formula_problem(item["value"]) is None, item["value"]
        value = pt.evaluate_formula(item["value"], variables)
        # work_mem and wal_buffers: PGTune floors shared_buffers first, the single RDS formula cannot.
        assert abs(value - int(absolute[name]["value"])) <= (1 if name in ("work_mem", "wal_buffers") else 0), name
    assert {"shared_buffers", "effective_cache_size", "maintenance_work_mem", "work_mem", "wal_buffers",
            "max_connections", "autovacuum_max_workers"} <= uses_formula
    if vcpus >= 4:
        assert formula["max_worker_processes"]["value"] == "{DBInstanceVCPU}"


@pytest.mark.parametrize("text,problem", [
    ("{DBInstanceClassMemory/32768}", None),
    ("{DBInstanceClassMemory*3/32768}", None),
    ("GREATEST({DBInstanceClassMemory*1024/63963136},65536)", None),
    ("SUM({DBInstanceClassMemory/12038},-50003)", None),
    ("LEAST({DBInstanceClassMemory/9531392},5000)", None),
    ("IF({TrueIfReplica},1,0)", None),
    ("{DBInstanceClassMemory*0.25}", "expected"),
    ("{dbinstanceclassmemory/4}", "unknown formula variable"),
    ("MAX({DBInstanceClassMemory/4},1)", "unknown function"),
    ("{DBInstanceClassMemory/32768", "expected"),
    ("IF({TrueIfReplica},1)", "IF takes 3 arguments"),
    ("{DBInstanceClassMemory/0}", "division by zero"),
    ("{DBInstanceClassMemory/32768} + 1", "unexpected text"),
])
def test_formula_syntax(text, problem):
    found = pt.formula_problem(text)
    if problem is None:
        assert found is None
    else:
        assert problem in found


def test_formula_evaluation_truncates_like_rds():
    assert pt.evaluate_formula("{DBInstanceClassMemory/32768}", {"DBInstanceClassMemory": 32768 * 5 + 1}) == 5
    assert pt.evaluate_formula("GREATEST({DBInstanceClassMemory*1024/63963136},65536)",
                               {"DBInstanceClassMemory": 8 * GIB}) == 137518
    assert pt.evaluate_formula("SUM({DBInstanceClassMemory/12038},-50003)", {"DBInstanceClassMemory": GIB}) == 39193


def test_aurora_keeps_its_shared_buffers_and_wal_settings_and_sizes_work_mem_on_the_rest():
    sizing = ic.sizing_from_table("db.r6g.large")
    recommendations, skipped = pt.recommend(sizing, "oltp", storage_type="aurora", aurora=True)
    got = by_name(recommendations)
    assert {s["name"] for s in skipped} == {"shared_buffers", "wal_buffers", "min_wal_size", "max_wal_size",
                                            "checkpoint_completion_target", "checkpoint_timeout"}
    assert all(s["reason"] for s in skipped)
    ram_kb = (16 * GIB - int(16 * GIB * 0.10)) // 1024
    connections = int(got["max_connections"]["value"])
    assert int(got["work_mem"]["value"]) == math.floor((ram_kb - ram_kb * 3 // 4) / ((connections + 8) * 3))
    formula = by_name(pt.recommend(sizing, "oltp", value_style="formula", storage_type="aurora", aurora=True)[0])
    value = pt.evaluate_formula(formula["work_mem"]["value"], {"DBInstanceClassMemory": ram_kb * 1024})
    assert abs(value - int(got["work_mem"]["value"])) <= 1


@pytest.mark.parametrize("storage,cost,concurrency", [
    ("gp2", "1.1", "200"), ("gp3", "1.1", "200"), ("io1", "1.1", "300"), ("io2", "1.1", "300"),
    ("aurora", "1.1", "200"), ("standard", "4", "2"),
])
def test_storage_sets_random_page_cost_and_io_concurrency(storage, cost, concurrency):
    got = by_name(pt.recommend(ic.sizing_from_table("db.m6i.large"), "web", storage_type=storage, iops=3000)[0])
    assert got["random_page_cost"]["value"] == cost
    assert got["effective_io_concurrency"]["value"] == concurrency
    assert storage in got["effective_io_concurrency"]["rationale"]


def test_given_max_connections_wins_and_feeds_work_mem():
    sizing = ic.sizing_from_table("db.r6i.large")
    got = by_name(pt.recommend(sizing, "web", max_connections=50)[0])
    expected = pgtune_expected(16, 2, "web", max_connections=50)[0]
    assert got["max_connections"]["value"] == "50"
    assert int(got["work_mem"]["value"]) == expected["work_mem"]


def test_preload_libraries_keep_what_the_group_has():
    got = by_name(pt.recommend(ic.sizing_from_table("db.m5.large"), current_preload_libraries="pg_cron, auto_explain")[0])
    assert got["shared_preload_libraries"]["value"] == "pg_cron,auto_explain,pg_stat_statements"
    got = by_name(pt.recommend(ic.sizing_from_table("db.m5.large"),
                               current_preload_libraries="pg_stat_statements,pg_cron")[0])
    assert got["shared_preload_libraries"]["value"] == "pg_stat_statements,pg_cron"


def test_serverless_v2_sizes_from_max_capacity():
    sizing = ic.sizing_for_serverless(16)
    assert sizing["memory_gib"] == 32 and sizing["vcpus"] is None
    got = by_name(pt.recommend(sizing, "oltp", aurora=True, storage_type="aurora")[0])
    assert got["max_worker_processes"]["value"] == "8"
    assert "unknown number of" in got["max_worker_processes"]["rationale"]
    with pytest.raises(ValueError, match="max_capacity"):
        ic.sizing_for_serverless(None)


# ---------------------------------------------------------------------------------------------- class table

def test_the_table_covers_every_size_of_the_current_families():
    families = {name.split(".")[1] for name in ic.INSTANCE_CLASSES}
    assert families == {"t3", "t4g", "m5", "m6g", "m6i", "m7g", "r5", "r6g", "r6i", "r7g", "x2g"}
    assert len(ic.INSTANCE_CLASSES) == 2 * 6 + 8 + 7 + 9 + 7 + 8 + 7 + 9 + 7 + 8


def test_the_table_agrees_with_aws_instance_type_data():
    """moto ships AWS's DescribeInstanceTypes data; x2g is checked against x2gd (same memory and vCPUs)."""
    instance_types = pytest.importorskip("moto.ec2.models.instance_types").INSTANCE_TYPES
    for name, known in ic.INSTANCE_CLASSES.items():
        ec2_name = ic.ec2_instance_type(name)
        data = instance_types.get(ec2_name) or instance_types[ec2_name.replace("x2g.", "x2gd.")]
        assert ic.sizing_from_instance_type(name, data)["memory_gib"] == known["memory_gib"], name
        assert data["VCpuInfo"]["DefaultVCpus"] == known["vcpus"], name


@pytest.mark.parametrize("wrong,closest", [
    ("db.t4g.mirco", "db.t4g.micro"), ("db.r6g.larg", "db.r6g.large"), ("r6g.large", "db.r6g.large"),
    ("db.m7g.xxlarge", "db.m7g.xlarge"),
])
def test_unknown_class_names_the_closest(wrong, closest):
    with pytest.raises(ic.UnknownInstanceClass) as error:
        ic.sizing_from_table(wrong)
    assert closest in error.value.suggestions
    assert closest in str(error.value)


def test_ec2_names():
    assert ic.ec2_instance_type("db.r6g.large") == "r6g.large"
    assert ic.ec2_instance_type("db.serverless") is None


# ---------------------------------------------------------------------------------------------------- units

@pytest.mark.parametrize("name,value,unit,expected", [
    ("shared_buffers", "256MB", "8kB", "32768"), ("shared_buffers", "1GB", "8kB", "131072"),
    ("shared_buffers", "1 GiB", "8kB", "131072"), ("work_mem", "64MB", "kB", "65536"), ("work_mem", "4096", "kB", "4096"),
    ("max_wal_size", "2GB", "MB", "2048"), ("checkpoint_timeout", "5min", "s", "300"),
    ("checkpoint_timeout", "15m", "s", "900"), ("log_min_duration_statement", "1.5s", "ms", "1500"),
    ("idle_in_transaction_session_timeout", "1h", "ms", "3600000"), ("log_min_duration_statement", "-1", "ms", "-1"),
])
def test_human_values_convert_to_the_parameters_unit(name, value, unit, expected):
    assert pt.to_parameter_unit(name, value, unit) == expected


@pytest.mark.parametrize("name,value,unit,message", [
    ("shared_buffers", "5min", "8kB", "is a time, but shared_buffers is a memory size counted in 8kB pages"),
    ("checkpoint_timeout", "256MB", "s", "is a memory size, but checkpoint_timeout is a time"),
    ("max_connections", "10MB", None, "takes a plain number without a unit"),
    ("shared_buffers", "100kB", "8kB", "not a whole number"),
    ("work_mem", "12parsecs", "kB", "in unit 'parsecs'"),
])
def test_units_a_parameter_cannot_take_are_errors(name, value, unit, message):
    with pytest.raises(pt.ValueProblem, match=message):
        pt.to_parameter_unit(name, value, unit)


def test_the_unit_comes_from_the_metadata_description():
    assert pt.parameter_unit({"Description": "(8kB) Sets the number of shared memory buffers."}) == "8kB"
    assert pt.parameter_unit({"Description": "(ms) Sets the maximum allowed duration."}) == "ms"
    assert pt.parameter_unit({"Description": "Sets the maximum number of connections.",
                              "ParameterName": "max_connections"}) is None
    assert pt.parameter_unit({"Description": "no unit given"}, "work_mem") == "kB"


def test_human_quantity():
    assert pt.human_quantity("32768", "8kB") == "256MB"
    assert pt.human_quantity("300", "s") == "5min"
    assert pt.human_quantity("{DBInstanceClassMemory/32768}", "8kB") is None


# ----------------------------------------------------------------------------------------------- validation

def meta(name, data_type="integer", allowed=None, apply_type="dynamic", modifiable=True, unit=None, value=None):
    item = {"ParameterName": name, "Description": (f"({unit}) " if unit else "") + f"About {name}.",
            "DataType": data_type, "ApplyType": apply_type, "IsModifiable": modifiable, "Source": "engine-default"}
    if allowed:
        item["AllowedValues"] = allowed
    if value is not None:
        item["ParameterValue"] = value
    return item


METADATA = {m["ParameterName"]: m for m in [
    meta("shared_buffers", allowed="16-1073741823", apply_type="static", unit="8kB"),
    meta("work_mem", allowed="64-2147483647", unit="kB"),
    meta("checkpoint_timeout", allowed="30-86400", unit="s"),
    meta("max_connections", allowed="1-262143", apply_type="static"),
    meta("random_page_cost", "float", "0-1.79769e+308"),
    meta("track_io_timing", "boolean", "0,1"),
    meta("wal_level", "string", "replica,logical", apply_type="static", modifiable=False),
    meta("log_statement", "string", "none,ddl,mod,all"),
    meta("shared_preload_libraries", "list", "auto_explain,pg_cron,pg_stat_statements", apply_type="static"),
]}


def test_overrides_win_and_are_normalised():
    recommendations = [{"name": "work_mem", "value": "2048", "unit": "kB", "rationale": "r"},
                       {"name": "checkpoint_timeout", "value": "900", "unit": "s", "rationale": "r"}]
    desired, sources, skipped, problems = pt.desired_values(
        recommendations, {"work_mem": "64MB", "track_io_timing": True, "log_statement": "DDL",
                          "shared_preload_libraries": ["pg_cron", "pg_stat_statements"]}, METADATA)
    assert problems == []
    assert desired == {"work_mem": "65536", "checkpoint_timeout": "900", "track_io_timing": "1",
                       "log_statement": "ddl", "shared_preload_libraries": "pg_cron,pg_stat_statements"}
    assert sources["work_mem"] == "override" and sources["checkpoint_timeout"] == "recommendation"


def test_recommendations_the_engine_does_not_offer_are_skipped_not_errors():
    recommendations = [{"name": "wal_level", "value": "logical", "unit": None, "rationale": "r"},
                       {"name": "no_such_setting", "value": "1", "unit": None, "rationale": "r"}]
    desired, _sources, skipped, problems = pt.desired_values(recommendations, {}, METADATA)
    assert desired == {} and problems == []
    assert [s["name"] for s in skipped] == ["wal_level", "no_such_setting"]


@pytest.mark.parametrize("overrides,message", [
    ({"shared_bufers": "1GB"}, "shared_bufers is not a parameter of this parameter group's family: check the name. "
                               "Did you mean shared_buffers?"),
    ({"wal_level": "logical"}, "wal_level is not modifiable on RDS"),
    ({"max_connections": 0}, "max_connections: 0 is outside the allowed range 1-262143"),
    ({"shared_buffers": "9TB"}, "shared_buffers: 1207959552 is outside the allowed range 16-1073741823 (8kB pages)"),
    ({"checkpoint_timeout": "256MB"}, "checkpoint_timeout: '256MB' is a memory size"),
    ({"max_connections": "12.5"}, "max_connections: '12.5' is not a whole number"),
    ({"track_io_timing": "maybe"}, "track_io_timing: 'maybe' is not a boolean"),
    ({"log_statement": "everything"}, "log_statement: everything not among the allowed values"),
    ({"shared_preload_libraries": "pg_cron,timescaledb"}, "shared_preload_libraries: timescaledb not among"),
    ({"shared_buffers": "{DBInstanceClassMemory*0.25}"}, "is not valid RDS formula syntax"),
    ({"random_page_cost": "{DBInstanceClassMemory/4}"}, "RDS formulas resolve to integers"),
])
def test_bad_values_are_problems_naming_parameter_range_and_fix(overrides, message):
    problems = pt.desired_values([], overrides, METADATA)[3]
    assert len(problems) == 1
    assert message in problems[0]


@pytest.mark.parametrize("family,ok", [
    ("postgres15", True), ("postgres16", True), ("aurora-postgresql15", True), ("mysql8.0", False),
    ("aurora-mysql8.0", False), ("mariadb10.11", False), ("postgresql15", False), (None, False),
])
def test_only_postgresql_families(family, ok):
    assert (pt.family_problem(family) is None) == ok
    if not ok:
        assert "PostgreSQL" in pt.family_problem(family)


# ------------------------------------------------------------------------------------------------- the plan

def test_plan_changes_only_what_differs_with_apply_methods():
    desired = {"shared_buffers": "32768", "work_mem": "4096", "random_page_cost": "1.1", "track_io_timing": "1",
               "shared_preload_libraries": "pg_stat_statements,pg_cron"}
    current = {"shared_buffers": "{DBInstanceClassMemory/32768}", "work_mem": "4096", "random_page_cost": "1.10",
               "track_io_timing": None, "shared_preload_libraries": "pg_stat_statements, pg_cron"}
    changes = pt.plan_parameter_changes(desired, current, METADATA)
    assert changes == [
        {"name": "shared_buffers", "before": "{DBInstanceClassMemory/32768}", "after": "32768",
         "apply_method": "pending-reboot"},
        {"name": "track_io_timing", "before": None, "after": "1", "apply_method": "immediate"},
    ]
    assert pt.needs_reboot(changes)
    assert pt.parameter_diff(desired, current)["before"]["work_mem"] == "4096"


@pytest.mark.parametrize("count,sizes", [(0, []), (1, [1]), (20, [20]), (21, [20, 1]), (45, [20, 20, 5])])
def test_batches_hold_at_most_twenty(count, sizes):
    changes = [{"name": f"p{i}", "after": str(i), "apply_method": "immediate"} for i in range(count)]
    batches = pt.modify_batches(changes)
    assert [len(b) for b in batches] == sizes
    assert [p["ParameterName"] for b in batches for p in b] == [f"p{i}" for i in range(count)]
    assert all(set(p) == {"ParameterName", "ParameterValue", "ApplyMethod"} for b in batches for p in b)


def test_recommendations_are_annotated_and_converted_with_the_groups_units():
    recommendations = [{"name": "shared_buffers", "value": "32768", "unit": "8kB", "rationale": "r"}]
    in_kb = {"shared_buffers": meta("shared_buffers", allowed="128-8589934584", apply_type="static", unit="kB")}
    converted = pt.in_group_units(recommendations, in_kb)
    assert converted[0]["value"] == "262144" and converted[0]["unit"] == "kB"
    annotated = pt.annotate_recommendations(converted, in_kb)
    assert annotated[0]["apply_type"] == "static"

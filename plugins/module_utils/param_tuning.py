# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Decisions of rds_param_tune as pure functions: recommendations, units, validation and the change plan.

Plain data in (sizing records from ``instance_classes``, boto3-shaped ``Parameters`` items), plain data out.
Nothing here calls AWS or reads module parameters.
"""

from __future__ import annotations

import difflib
import math
import re

from ansible_collections.dbre.rds.plugins.module_utils.instance_classes import RDS_RESERVED_MEMORY_SHARE
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import identifier_problems

WORKLOADS = ("oltp", "web", "mixed", "analytics")
VALUE_STYLES = ("absolute", "formula")
STORAGE_TYPES = ("gp2", "gp3", "io1", "io2", "standard", "aurora", "aurora-iopt1")
MAX_PARAMETERS_PER_MODIFY = 20


KB = 1024
MAINTENANCE_WORK_MEM_CAP_KB = 2 * 1024 * 1024  # PGTune caps maintenance_work_mem at 2 GB
WAL_BUFFERS_CAP_KB = 16 * 1024
WORK_MEM_FLOOR_KB = 64
RDS_CONNECTION_BYTES = 9531392  # RDS's own max_connections rule: LEAST({DBInstanceClassMemory/9531392},5000)
RDS_CONNECTION_CAP = 5000
RDS_AUTOVACUUM_WORKER_BYTES = 64371566592  # RDS's own rule: GREATEST({DBInstanceClassMemory/64371566592},3)
POSTGRES_DEFAULT_WORKERS = 8  # max_worker_processes (and max_parallel_workers) when PGTune sets none

# PGTune's database types, as this module names them.
PGTUNE_TYPE = {"oltp": "oltp", "web": "web", "mixed": "mixed", "analytics": "dw"}
DEFAULT_MAX_CONNECTIONS = {"web": 200, "oltp": 300, "analytics": 40, "mixed": 100}
WAL_SIZE_MB = {"web": (1024, 4096), "mixed": (1024, 4096), "oltp": (2048, 8192), "analytics": (4096, 16384)}
CHECKPOINT_TIMEOUT_S = {"web": 900, "oltp": 900, "mixed": 900, "analytics": 1800}
LOG_MIN_DURATION_MS = {"web": 500, "oltp": 1000, "mixed": 2000, "analytics": 10000}
IDLE_IN_TRANSACTION_MS = {"web": 60000, "oltp": 60000, "mixed": 300000, "analytics": 1800000}
# PGTune: SSD 200, SAN (provisioned, deep queues) 300, HDD 2 (effective_io_concurrency); random_page_cost 1.1 / 4.
STORAGE_IO = {
    "gp2": ("ssd", 200), "gp3": ("ssd", 200), "io1": ("san", 300), "io2": ("san", 300),
    "aurora": ("ssd", 200), "aurora-iopt1": ("ssd", 200), "standard": ("hdd", 2),
}

# Units the recommendations are computed in (PostgreSQL's own units, which RDS keeps).
COMPUTED_UNITS = {
    "shared_buffers": "8kB", "effective_cache_size": "8kB", "wal_buffers": "8kB",
    "work_mem": "kB", "maintenance_work_mem": "kB", "autovacuum_work_mem": "kB",
    "min_wal_size": "MB", "max_wal_size": "MB", "checkpoint_timeout": "s",
    "log_min_duration_statement": "ms", "idle_in_transaction_session_timeout": "ms",
}
# Aurora's storage layer writes no local WAL and checkpoints nothing locally, and its default shared_buffers
# (about 75 % of memory) is right because no OS page cache sits behind it.
AURORA_LEAVES = {
    "shared_buffers": "Aurora's default (SUM({DBInstanceClassMemory/12038},-50003), about 75 % of memory) fits "
                      "Aurora, which has no OS page cache behind shared_buffers; PGTune's 25 % would halve the cache",
    "wal_buffers": "Aurora's storage layer handles WAL; the parameter is not Aurora's to tune",
    "min_wal_size": "Aurora writes no local WAL segments",
    "max_wal_size": "Aurora writes no local WAL segments",
    "checkpoint_completion_target": "Aurora's storage layer does not checkpoint locally",
    "checkpoint_timeout": "Aurora's storage layer does not checkpoint locally",
}

FORMULA_VARIABLES = ("AllocatedStorage", "DBInstanceClassMemory", "DBInstanceVCPU", "EndPointPort", "TrueIfReplica")
FORMULA_FUNCTIONS = {"GREATEST": None, "LEAST": None, "SUM": None, "IF": 3}

MEMORY_UNIT_BYTES = {"B": 1, "kB": 1024, "8kB": 8192, "16kB": 16384, "32kB": 32768, "MB": 1024 ** 2,
                     "GB": 1024 ** 3, "TB": 1024 ** 4}
TIME_UNIT_US = {"us": 1, "ms": 1000, "s": 1000 ** 2, "min": 60 * 1000 ** 2, "h": 3600 * 1000 ** 2,
                "d": 86400 * 1000 ** 2}
_MEMORY_SUFFIXES = {"b": "B", "byte": "B", "bytes": "B", "k": "kB", "kb": "kB", "kib": "kB", "m": "MB", "mb": "MB",
                    "mib": "MB", "g": "GB", "gb": "GB", "gib": "GB", "t": "TB", "tb": "TB", "tib": "TB"}
_TIME_SUFFIXES = {"us": "us", "ms": "ms", "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
                  "min": "min", "mins": "min", "minute": "min", "minutes": "min", "m": "min", "h": "h", "hr": "h",
                  "hour": "h", "hours": "h", "d": "d", "day": "d", "days": "d"}
_HUMAN_VALUE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([A-Za-z]+)?\s*$")
_DESCRIPTION_UNIT = re.compile(r"^\((\d*[A-Za-z]+)\)")
_TRUE_WORDS = ("1", "on", "true", "yes")
_FALSE_WORDS = ("0", "off", "false", "no")


class ValueProblem(ValueError):
    """A value that cannot be applied; the message names the parameter, what is allowed and the fix."""


# ------------------------------------------------------------------------------------------------ RDS formulas

_FORMULA_TOKEN = re.compile(r"\s*(?:(\d+)|([A-Za-z][A-Za-z0-9]*)|(\S))")


def _tokens(text):
    tokens = []
    position = 0
    text = str(text)
    while position < len(text):
        match = _FORMULA_TOKEN.match(text, position)
        if not match or match.end() == position:
            break
        if any(match.groups()):
            tokens.append(match.groups())
        position = match.end()
    return tokens


def is_formula(value):
    """Whether an RDS parameter value is a formula or function rather than a literal."""
    text = str(value).strip()
    return text.startswith("{") or bool(re.match(r"^(GREATEST|LEAST|SUM|IF)\s*\(", text))


class _Formula:
    """RDS formula syntax as AWS documents it, parsed strictly.

    value    := formula | function
    formula  := "{" VARIABLE [ ("*" | "/") INTEGER [ "/" INTEGER ] ] "}"
    function := (GREATEST | LEAST | SUM | IF) "(" argument { "," argument } ")"
    argument := ["-"] INTEGER | formula
    Division truncates, as RDS's does.
    """

    def __init__(self, text, variables=None):
        self.tokens = _tokens(text)
        self.pos = 0
        self.variables = variables

    def parse(self):
        number, word, symbol = self._peek()
        value = self._function() if word is not None else self._formula()
        if self.pos != len(self.tokens):
            raise ValueError("unexpected text after the formula")
        return value

    def _peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else (None, None, None)

    def _symbol(self, expected):
        if self._peek()[2] != expected:
            raise ValueError(f"expected {expected!r}")
        self.pos += 1

    def _integer(self):
        number = self._peek()[0]
        if number is None:
            raise ValueError("expected an integer")
        self.pos += 1
        return int(number)

    def _formula(self):
        self._symbol("{")
        word = self._peek()[1]
        if word not in FORMULA_VARIABLES:
            raise ValueError(f"unknown formula variable {word!r} (known: {', '.join(FORMULA_VARIABLES)})")
        self.pos += 1
        value = self.variables.get(word, 0) if self.variables is not None else 0
        symbol = self._peek()[2]
        if symbol in ("*", "/"):
            self.pos += 1
            operand = self._integer()
            value = value * operand if symbol == "*" else self._divide(value, operand)
            if symbol == "*" and self._peek()[2] == "/":
                self.pos += 1
                value = self._divide(value, self._integer())
        self._symbol("}")
        return value

    @staticmethod
    def _divide(dividend, divisor):
        if divisor == 0:
            raise ValueError("division by zero")
        quotient = abs(dividend) // abs(divisor)
        return quotient if (dividend >= 0) == (divisor > 0) else -quotient

    def _argument(self):
        if self._peek()[2] == "{":
            return self._formula()
        negative = self._peek()[2] == "-"
        if negative:
            self.pos += 1
        value = self._integer()
        return -value if negative else value

    def _function(self):
        name = self._peek()[1]
        if name not in FORMULA_FUNCTIONS:
            raise ValueError(f"unknown function {name!r} (known: {', '.join(FORMULA_FUNCTIONS)})")
        self.pos += 1
        self._symbol("(")
        arguments = [self._argument()]
        while self._peek()[2] == ",":
            self.pos += 1
            arguments.append(self._argument())
        self._symbol(")")
        arity = FORMULA_FUNCTIONS[name]
        if arity is not None and len(arguments) != arity:
            raise ValueError(f"{name} takes {arity} arguments")
        if name == "GREATEST":
            return max(arguments)
        if name == "LEAST":
            return min(arguments)
        if name == "SUM":
            return sum(arguments)
        return arguments[1] if arguments[0] else arguments[2]


def formula_problem(text):
    """None when ``text`` is valid RDS formula syntax, else what is wrong with it."""
    try:
        _Formula(text).parse()
    except ValueError as exc:
        return str(exc)
    return None


def evaluate_formula(text, variables):
    """The integer RDS computes for a formula, given values for its variables (e.g. DBInstanceClassMemory)."""
    return _Formula(text, variables).parse()


# ------------------------------------------------------------------------------------------------------- units

def rds_memory_bytes(nominal_bytes):
    """Estimated DBInstanceClassMemory: the class's memory less what RDS keeps for the OS and its agents."""
    return int(nominal_bytes) - int(int(nominal_bytes) * RDS_RESERVED_MEMORY_SHARE)


def parameter_unit(meta, name=None):
    """The unit of a parameter: RDS puts it first in the description, as in "(8kB) Sets the number of ..."."""
    if meta:
        match = _DESCRIPTION_UNIT.match(str(meta.get("Description") or ""))
        if match and (match.group(1) in MEMORY_UNIT_BYTES or match.group(1) in TIME_UNIT_US):
            return match.group(1)
    return COMPUTED_UNITS.get(name or (meta or {}).get("ParameterName"))


def unit_words(unit):
    """How a unit reads in a message: "8kB pages", "seconds"."""
    return {"8kB": "8kB pages", "s": "seconds", "ms": "milliseconds", "min": "minutes", "us": "microseconds",
            "h": "hours", "d": "days"}.get(unit, unit)


def _unit_kind(unit):
    if unit in MEMORY_UNIT_BYTES:
        return "memory"
    if unit in TIME_UNIT_US:
        return "time"
    return None


def convert_quantity(number, from_unit, to_unit):
    """``number`` ``from_unit`` expressed in ``to_unit`` (same kind), as a float."""
    if _unit_kind(from_unit) == "memory":
        return number * MEMORY_UNIT_BYTES[from_unit] / MEMORY_UNIT_BYTES[to_unit]
    return number * TIME_UNIT_US[from_unit] / TIME_UNIT_US[to_unit]


def to_parameter_unit(name, value, unit):
    """Convert a human value ("256MB", "5min", 30) into an integer count of the parameter's ``unit``.

    Returns the value unchanged (as a string) when it carries no unit. Raises :class:`ValueProblem` when the unit does
    not fit the parameter (a time for a memory setting, any unit for a unitless one) or the result is not whole.
    """
    text = str(value).strip()
    match = _HUMAN_VALUE.match(text)
    if not match or not match.group(2):
        return text
    number, suffix = float(match.group(1)), match.group(2)
    kind = _unit_kind(unit)
    if kind is None:
        raise ValueProblem(
            f"{name}: {text!r} carries a unit, but {name} takes a plain number without a unit; give the number alone."
        )
    if kind == "memory":
        given_unit = suffix if suffix in MEMORY_UNIT_BYTES else _MEMORY_SUFFIXES.get(suffix.lower())
        other = "a time" if suffix.lower() in _TIME_SUFFIXES else f"in unit {suffix!r}"
        examples = "'256MB', '1GB'"
    else:
        given_unit = suffix if suffix in TIME_UNIT_US else _TIME_SUFFIXES.get(suffix.lower())
        other = "a memory size" if suffix.lower() in _MEMORY_SUFFIXES else f"in unit {suffix!r}"
        examples = "'500ms', '30s', '5min'"
    if given_unit is None:
        raise ValueProblem(
            f"{name}: {text!r} is {other}, but {name} is a {'memory size' if kind == 'memory' else 'time'} "
            f"counted in {unit_words(unit)}; give it as e.g. {examples} or a plain number of {unit_words(unit)}."
        )
    converted = convert_quantity(number, given_unit, unit)
    if abs(converted - round(converted)) > 1e-9:
        raise ValueProblem(
            f"{name}: {text!r} is {converted:g} {unit_words(unit)}, not a whole number of them; give a multiple of "
            f"{human_quantity(1, unit) or unit}."
        )
    return str(int(round(converted)))


def human_quantity(value, unit):
    """A readable rendering of an integer value in ``unit`` ("32768" of 8kB -> "256MB"); None for formulas."""
    try:
        number = int(str(value))
    except ValueError:
        return None
    kind = _unit_kind(unit)
    if kind == "memory":
        total = number * MEMORY_UNIT_BYTES[unit]
        for suffix in ("TB", "GB", "MB", "kB"):
            if total >= MEMORY_UNIT_BYTES[suffix] and total % MEMORY_UNIT_BYTES[suffix] == 0:
                return f"{total // MEMORY_UNIT_BYTES[suffix]}{suffix}"
        return f"{total}B"
    if kind == "time":
        total = number * TIME_UNIT_US[unit]
        for suffix in ("d", "h", "min", "s", "ms"):
            if total >= TIME_UNIT_US[suffix] and total % TIME_UNIT_US[suffix] == 0:
                return f"{total // TIME_UNIT_US[suffix]}{suffix}"
        return f"{total}us"
    return None


# -------------------------------------------------------------------------------------------- recommendations

def _item(name, value, rationale):
    return {"name": name, "value": str(value), "unit": COMPUTED_UNITS.get(name), "rationale": rationale}


def _preload_libraries(current):
    libraries = [lib.strip() for lib in str(current or "").split(",") if lib.strip()]
    if "pg_stat_statements" not in libraries:
        libraries.append("pg_stat_statements")
    return ",".join(libraries)


def recommend(sizing, workload="oltp", value_style="absolute", max_connections=None, storage_type="gp3",
              aurora=False, current_preload_libraries=None, iops=None):
    """Recommended parameter values for ``sizing`` (see ``instance_classes.sizing``).

    Returns ``(recommendations, skipped)``: recommendations are ``{"name", "value", "unit", "rationale"}`` with
    values as RDS takes them (numbers in the parameter's own unit, booleans 0/1, or RDS formulas when
    ``value_style`` is ``formula``); skipped are ``{"name", "reason"}`` for settings left to the engine.
    """
    if workload not in WORKLOADS:
        raise ValueError(f"workload must be one of {', '.join(WORKLOADS)}, not {workload!r}")
    if value_style not in VALUE_STYLES:
        raise ValueError(f"value_style must be one of {', '.join(VALUE_STYLES)}, not {value_style!r}")
    formula = value_style == "formula"
    pgtune = PGTUNE_TYPE[workload]
    memory = rds_memory_bytes(sizing["memory_bytes"])
    ram_kb = memory // KB
    vcpus = sizing.get("vcpus")
    where = (f"{sizing['instance_class']}: {sizing['memory_gib']} GiB, {vcpus if vcpus else 'unknown'} vCPUs "
             f"({sizing['source']})")
    memory_basis = ("RDS's DBInstanceClassMemory" if formula else
                    f"{ram_kb} kB, {where} less {int(RDS_RESERVED_MEMORY_SHARE * 100)} % RDS keeps for the OS")
    recs, skipped = [], []

    # max_connections first: work_mem depends on it.
    rds_limit = min(memory // RDS_CONNECTION_BYTES, RDS_CONNECTION_CAP)
    if max_connections:
        connections = int(max_connections)
        recs.append(_item("max_connections", connections, "Given by max_connections."))
    else:
        wanted = DEFAULT_MAX_CONNECTIONS[workload]
        connections = min(wanted, rds_limit)
        rule = (f"PGTune's default for {pgtune} ({wanted}), capped by RDS's memory rule "
                f"LEAST({{DBInstanceClassMemory/{RDS_CONNECTION_BYTES}}},{RDS_CONNECTION_CAP})")
        value = f"LEAST({{DBInstanceClassMemory/{RDS_CONNECTION_BYTES}}},{wanted})" if formula else connections
        recs.append(_item("max_connections", value, f"{rule} = {connections} for this class."))

    # Shared memory: PGTune gives shared_buffers a quarter of RAM; Aurora keeps its own larger default.
    sb_kb = ram_kb * 3 // 4 if aurora else ram_kb // 4
    if aurora:
        skipped.append({"name": "shared_buffers", "reason": AURORA_LEAVES["shared_buffers"]})
    else:
        recs.append(_item("shared_buffers", "{DBInstanceClassMemory/32768}" if formula else sb_kb // 8,
                          f"PGTune: RAM/4 ({memory_basis}), in 8kB pages."))
    recs.append(_item("effective_cache_size", "{DBInstanceClassMemory*3/32768}" if formula else ram_kb * 3 // 4 // 8,
                      f"PGTune: RAM*3/4 ({memory_basis}), in 8kB pages."))

    divisor = 8 if workload == "analytics" else 16
    maintenance_kb = min(ram_kb // divisor, MAINTENANCE_WORK_MEM_CAP_KB)
    recs.append(_item(
        "maintenance_work_mem",
        f"LEAST({{DBInstanceClassMemory/{KB * divisor}}},{MAINTENANCE_WORK_MEM_CAP_KB})" if formula else maintenance_kb,
        f"PGTune: RAM/{divisor} for {pgtune}, capped at 2 GB ({memory_basis}), in kB."))

    parallel = bool(vcpus and vcpus >= 4)
    workers_for_work_mem = vcpus if parallel else POSTGRES_DEFAULT_WORKERS
    slots = connections + workers_for_work_mem
    share = 2 if workload in ("mixed", "analytics") else 1
    work_mem_kb = max(math.floor((ram_kb - sb_kb) / (slots * 3) / share), WORK_MEM_FLOOR_KB)
    sb_share_denominator = 12 if aurora else 4  # (RAM - shared_buffers)/3 = RAM/12 on Aurora (75 %), RAM/4 on RDS
    halved = " halved for mixed and dw," if share == 2 else ""
    recs.append(_item(
        "work_mem",
        f"GREATEST({{DBInstanceClassMemory/{KB * sb_share_denominator * slots * share}}},{WORK_MEM_FLOOR_KB})"
        if formula else work_mem_kb,
        f"PGTune: (RAM - shared_buffers) / ((max_connections {connections} + max_worker_processes "
        f"{workers_for_work_mem}) * 3),{halved} at least 64 kB ({memory_basis}"
        f"{', shared_buffers at Aurora default 75 %' if aurora else ''}), in kB."))

    if aurora:
        for name in ("wal_buffers", "min_wal_size", "max_wal_size", "checkpoint_completion_target",
                     "checkpoint_timeout"):
            skipped.append({"name": name, "reason": AURORA_LEAVES[name]})
    else:
        wal_kb = min(3 * (ram_kb // 4) // 100, WAL_BUFFERS_CAP_KB)
        if 14 * 1024 < wal_kb < WAL_BUFFERS_CAP_KB:
            wal_kb = WAL_BUFFERS_CAP_KB
        wal_kb = max(wal_kb, 32)
        recs.append(_item(
            "wal_buffers", f"LEAST({{DBInstanceClassMemory*3/3276800}},{WAL_BUFFERS_CAP_KB // 8})" if formula
            else wal_kb // 8,
            "PGTune: 3 % of shared_buffers, at most 16 MB, in 8kB pages"
            + (" (the formula omits PGTune's rounding up from 14 MB)." if formula else ".")))
        min_wal, max_wal = WAL_SIZE_MB[workload]
        recs.append(_item("min_wal_size", min_wal, f"PGTune for {pgtune}: {min_wal} MB."))
        recs.append(_item("max_wal_size", max_wal, f"PGTune for {pgtune}: {max_wal} MB."))
        recs.append(_item("checkpoint_completion_target", "0.9",
                          "PGTune: 0.9, spreading checkpoint writes over the interval (PostgreSQL 14+ default)."))
        timeout = CHECKPOINT_TIMEOUT_S[workload]
        recs.append(_item("checkpoint_timeout", timeout,
                          f"Not in PGTune: {timeout // 60} min for {workload}, so that max_wal_size rather than the "
                          "clock triggers checkpoints under load and fewer full-page writes follow them."))

    storage = storage_type if storage_type in STORAGE_IO else "gp3"
    disk, io_concurrency = STORAGE_IO[storage]
    iops_note = f", {iops} provisioned IOPS" if iops else ""
    recs.append(_item("random_page_cost", "4" if disk == "hdd" else "1.1",
                      f"PGTune for {'HDD' if disk == 'hdd' else 'SSD'} storage ({storage}{iops_note})."))
    recs.append(_item("effective_io_concurrency", io_concurrency,
                      f"PGTune for {disk.upper()} storage: {io_concurrency} ({storage}{iops_note})."))
    statistics = 500 if workload == "analytics" else 100
    recs.append(_item("default_statistics_target", statistics, f"PGTune for {pgtune}: {statistics}."))

    if parallel:
        per_gather = math.ceil(vcpus / 2)
        if workload != "analytics":
            per_gather = min(per_gather, 4)
        maintenance_workers = min(math.ceil(vcpus / 2), 4)
        gather_formula = "{DBInstanceVCPU/2}" if workload == "analytics" else "LEAST({DBInstanceVCPU/2},4)"
        cpu_values = {
            "max_worker_processes": ("{DBInstanceVCPU}", vcpus, "PGTune with 4+ vCPUs: one per vCPU."),
            "max_parallel_workers": ("{DBInstanceVCPU}", vcpus, "PGTune with 4+ vCPUs: one per vCPU."),
            "max_parallel_workers_per_gather": (
                gather_formula, per_gather,
                "PGTune with 4+ vCPUs: half the vCPUs" + ("." if workload == "analytics" else ", at most 4.")),
            "max_parallel_maintenance_workers": ("LEAST({DBInstanceVCPU/2},4)", maintenance_workers,
                                                 "PGTune with 4+ vCPUs: half the vCPUs, at most 4."),
        }
        for name, (as_formula, number, rule) in cpu_values.items():
            recs.append(_item(name, as_formula if formula else number, f"{rule} ({where})"))
    else:
        reason = ("PGTune changes parallel settings only from 4 vCPUs; this class has "
                  f"{vcpus if vcpus else 'an unknown number of'} vCPUs, so PostgreSQL's default")
        for name, default in (("max_worker_processes", 8), ("max_parallel_workers", 8),
                              ("max_parallel_workers_per_gather", 2), ("max_parallel_maintenance_workers", 2)):
            recs.append(_item(name, default, f"{reason} {default} stays."))

    autovacuum_workers = max(memory // RDS_AUTOVACUUM_WORKER_BYTES, 3)
    recs.append(_item("autovacuum_max_workers",
                      f"GREATEST({{DBInstanceClassMemory/{RDS_AUTOVACUUM_WORKER_BYTES}}},3)" if formula
                      else autovacuum_workers,
                      "Not in PGTune: RDS's own rule, 3 workers plus one per 60 GiB of DBInstanceClassMemory."))
    recs.append(_item("autovacuum_vacuum_cost_limit", 200 * autovacuum_workers,
                      f"Not in PGTune: the cost limit is shared by all running workers, so 200 (PostgreSQL's "
                      f"vacuum_cost_limit) per worker x {autovacuum_workers} keeps each at the default pace."))
    recs.append(_item("shared_preload_libraries", _preload_libraries(current_preload_libraries),
                      "The group's libraries plus pg_stat_statements, which query statistics need."))
    recs.append(_item("track_io_timing", "1", "I/O timings in pg_stat_statements and EXPLAIN (BUFFERS); cheap on "
                                              "the Nitro clocks RDS instances use."))
    slow = LOG_MIN_DURATION_MS[workload]
    recs.append(_item("log_min_duration_statement", slow,
                      f"Logs statements slower than {slow} ms, rare for {workload} yet enough to find slow ones."))
    idle = IDLE_IN_TRANSACTION_MS[workload]
    recs.append(_item("idle_in_transaction_session_timeout", idle,
                      f"Ends sessions idle in a transaction for {idle // 1000} s: they hold locks and stop vacuum."))
    return recs, skipped


# ----------------------------------------------------------------------------------------- values and metadata

def close_parameter_names(name, metadata, count=3):
    return difflib.get_close_matches(str(name).lower(), sorted(metadata), n=count, cutoff=0.6)


def _allowed_ranges(allowed):
    """AllowedValues "16-1073741823" or "0,1-100" as numeric (low, high) pairs; None when not numeric."""
    ranges = []
    for part in str(allowed).split(","):
        part = part.strip()
        match = re.match(r"^(-?[0-9.]+(?:e[+-]?\d+)?)(?:-(-?[0-9.]+(?:e[+-]?\d+)?))?$", part)
        if not match:
            return None
        low = float(match.group(1))
        ranges.append((low, float(match.group(2)) if match.group(2) else low))
    return ranges


def normalise_value(name, value, meta):
    """The RDS string for a user's value: units converted, booleans to 0/1, lists joined, enum case fixed.

    Raises :class:`ValueProblem` naming the parameter and the fix.
    """
    data_type = meta.get("DataType")
    if isinstance(value, bool):
        # YAML reads true/yes/on as a boolean: for a number that is a slip (max_connections: yes), never 1.
        if data_type != "boolean":
            raise ValueProblem(f"{name}: {value!r} is a boolean (YAML reads true/yes/on/false/no/off as one), but "
                               f"{name} is {_type_words(data_type)}; give {_type_words(data_type)} instead.")
        value = "1" if value else "0"
    if isinstance(value, dict) or (isinstance(value, (list, tuple)) and data_type in ("integer", "float", "boolean")):
        raise ValueProblem(f"{name}: {value!r} is a {'dict' if isinstance(value, dict) else 'list'}, but {name} "
                           f"is {_type_words(data_type)}; give one value.")
    if isinstance(value, (list, tuple)):
        value = ",".join(str(item).strip() for item in value)
    if isinstance(value, float) and value.is_integer() and data_type == "integer":
        value = int(value)
    text = str(value).strip()
    if data_type == "boolean":
        lowered = text.lower()
        if lowered in _TRUE_WORDS:
            return "1"
        if lowered in _FALSE_WORDS:
            return "0"
        raise ValueProblem(f"{name}: {text!r} is not a boolean; give true/false (RDS stores 1/0).")
    if data_type in ("integer", "float"):
        if is_formula(text):
            return text
        return to_parameter_unit(name, text, parameter_unit(meta, name))
    if data_type == "string" and meta.get("AllowedValues"):
        allowed = [item.strip() for item in str(meta["AllowedValues"]).split(",")]
        for item in allowed:
            if item.lower() == text.lower():
                return item
    return text


def _type_words(data_type):
    return {"integer": "an integer", "float": "a number", "boolean": "a boolean", "list": "a list",
            "string": "a string"}.get(data_type, f"of type {data_type or 'unknown'}")


def value_problem(name, value, meta):
    """None when RDS would accept ``value`` for the parameter described by ``meta``, else the reason and the fix."""
    unit = parameter_unit(meta, name)
    allowed = meta.get("AllowedValues")
    data_type = meta.get("DataType")
    unit_note = f" ({unit_words(unit)})" if unit else ""
    if not meta.get("IsModifiable", False):
        return (f"{name} is not modifiable on RDS (RDS manages it; source {meta.get('Source', 'unknown')}): "
                f"remove it from overrides.")
    if data_type in ("integer", "float") and is_formula(value):
        if data_type == "float":
            return f"{name}: RDS formulas resolve to integers, but {name} is a float; give a number."
        problem = formula_problem(value)
        return None if problem is None else (
            f"{name}: {value!r} is not valid RDS formula syntax ({problem}); write e.g. "
            "'{DBInstanceClassMemory/32768}' or 'GREATEST({DBInstanceClassMemory/16384},65536)'.")
    if data_type == "boolean":
        return None if value in ("0", "1") else f"{name}: {value!r} is not a boolean; give true/false (1/0)."
    if data_type in ("integer", "float"):
        try:
            number = int(value) if data_type == "integer" else float(value)
        except ValueError:
            kind = "a whole number" if data_type == "integer" else "a number"
            return (f"{name}: {value!r} is not {kind}; give {kind}{' of ' + unit_words(unit) if unit else ''} "
                    f"within {allowed}.")
        ranges = _allowed_ranges(allowed) if allowed else None
        if ranges and not any(low <= number <= high for low, high in ranges):
            return (f"{name}: {value} is outside the allowed range {allowed}{unit_note}; give a value within it"
                    f"{' (units such as 256MB or 5min are converted for you)' if unit else ''}.")
        return None
    if allowed and data_type in ("string", "list"):
        choices = [item.strip() for item in str(allowed).split(",")]
        given = [item.strip() for item in value.split(",")] if data_type == "list" else [value]
        unknown = [item for item in given if item and item not in choices]
        if unknown:
            return (f"{name}: {', '.join(unknown)} not among the allowed values ({allowed}); "
                    f"give {'items' if data_type == 'list' else 'one'} of those.")
    return None


def desired_values(recommendations, overrides, metadata):
    """Merge recommendations with overrides (which win) and check every value against the group's metadata.

    ``metadata`` maps parameter name -> boto3 Parameter item. Returns ``(desired, sources, skipped, problems)``:
    ``desired`` name -> RDS value string, ``sources`` name -> "recommendation" | "override", ``skipped`` the
    recommendations this engine does not offer or lets no one change, ``problems`` every error found.
    """
    desired, sources, skipped, problems = {}, {}, [], []
    overrides = overrides or {}
    overridden = {str(name).lower() for name in overrides}
    for item in recommendations:
        name = item["name"]
        if name in overridden:
            continue
        meta = metadata.get(name)
        if meta is None:
            skipped.append({"name": name, "reason": "this engine version's parameter group has no such parameter"})
            continue
        if not meta.get("IsModifiable", False):
            skipped.append({"name": name, "reason": "RDS does not let this parameter be modified on this engine"})
            continue
        desired[name], sources[name] = item["value"], "recommendation"
    for raw_name, raw_value in overrides.items():
        name = str(raw_name).lower()
        meta = metadata.get(name)
        if meta is None:
            close = close_parameter_names(name, metadata)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            problems.append(f"{raw_name} is not a parameter of this parameter group's family: check the name.{hint}")
            continue
        if raw_value is None:
            problems.append(f"{name}: no value given; give a value or drop it from overrides.")
            continue
        try:
            desired[name], sources[name] = normalise_value(name, raw_value, meta), "override"
        except ValueProblem as exc:
            problems.append(str(exc))
    for name, value in desired.items():
        problem = value_problem(name, value, metadata[name])
        if problem:
            problems.append(problem)
    return desired, sources, skipped, problems


# --------------------------------------------------------------------------------------------- the change plan

def _number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def same_value(current, wanted, data_type=None):
    """Whether the group already holds ``wanted`` (numbers compared as numbers, lists item by item)."""
    if current is None:
        return False
    current, wanted = str(current).strip(), str(wanted).strip()
    if current == wanted:
        return True
    if data_type in ("integer", "float", "boolean") and not is_formula(current) and not is_formula(wanted):
        left, right = _number(current), _number(wanted)
        return left is not None and left == right
    if data_type == "list":
        return [i.strip() for i in current.split(",") if i.strip()] == [i.strip() for i in wanted.split(",") if i.strip()]
    if is_formula(current) and is_formula(wanted):
        return re.sub(r"\s+", "", current) == re.sub(r"\s+", "", wanted)
    return False


def plan_parameter_changes(desired, current, metadata):
    """The changes needed: ``[{"name", "before", "after", "apply_method"}]`` for values that differ, sorted by name.

    ``current`` maps name -> the group's ParameterValue (None when unset). ``immediate`` for dynamic parameters,
    ``pending-reboot`` for static ones.
    """
    changes = []
    for name in sorted(desired):
        meta = metadata[name]
        if same_value(current.get(name), desired[name], meta.get("DataType")):
            continue
        changes.append({
            "name": name,
            "before": current.get(name),
            "after": desired[name],
            "apply_method": "immediate" if meta.get("ApplyType") == "dynamic" else "pending-reboot",
        })
    return changes


def modify_batches(changes, size=MAX_PARAMETERS_PER_MODIFY):
    """boto3 ``Parameters`` lists of at most ``size`` items (RDS takes at most 20 per modify call)."""
    items = [{"ParameterName": c["name"], "ParameterValue": c["after"], "ApplyMethod": c["apply_method"]}
             for c in changes]
    return [items[i:i + size] for i in range(0, len(items), size)]


def annotate_recommendations(recommendations, metadata):
    """Recommendations with the unit and apply type the group's metadata gives (what the module returns)."""
    annotated = []
    for item in recommendations:
        meta = metadata.get(item["name"]) or {}
        annotated.append(dict(
            item,
            unit=parameter_unit(meta, item["name"]) if meta else item["unit"],
            apply_type=meta.get("ApplyType"),
        ))
    return annotated


def parameter_diff(desired, current):
    """Ansible's diff for the parameters the module manages."""
    return {
        "before": {name: current.get(name) for name in sorted(desired)},
        "after": {name: desired[name] for name in sorted(desired)},
    }


def needs_reboot(changes):
    return any(c["apply_method"] == "pending-reboot" for c in changes)


def family_problem(family):
    """None for a PostgreSQL family (postgresNN, aurora-postgresqlNN), else the error to report."""
    if re.match(r"^(postgres|aurora-postgresql)\d+(\.\d+)?$", str(family or "")):
        return None
    return (f"family {family!r} is not PostgreSQL: rds_param_tune tunes RDS PostgreSQL (postgresNN) and Aurora "
            "PostgreSQL (aurora-postgresqlNN) parameter groups only; use a PostgreSQL group.")


def is_aurora_family(family):
    return str(family or "").startswith("aurora-postgresql")


def in_group_units(recommendations, metadata):
    """Recommendations with absolute values re-expressed in the unit the group's metadata gives, where it differs
    from the unit they were computed in (whole results only); formulas are left as they are."""
    converted = []
    for item in recommendations:
        meta = metadata.get(item["name"])
        computed = COMPUTED_UNITS.get(item["name"])
        actual = parameter_unit(meta, item["name"]) if meta else computed
        if meta and computed and actual and actual != computed and not is_formula(item["value"]) \
                and _unit_kind(actual) == _unit_kind(computed):
            quantity = convert_quantity(int(item["value"]), computed, actual)
            item = dict(item, value=str(int(quantity)), unit=actual)
        converted.append(item)
    return converted


# ----------------------------------------------------------------------------------- the options of one run

GROUP_NAME_OPTIONS = ("db_parameter_group_name", "db_cluster_parameter_group_name")
SIZING_OPTIONS = ("db_instance_class", "db_instance_identifier")
# What each item of parameter_groups may set; an item's missing keys take the top-level option's value.
GROUP_OPTIONS = GROUP_NAME_OPTIONS + ("family", "description", "tags") + SIZING_OPTIONS + (
    "max_capacity", "storage_type", "workload", "max_connections", "value_style", "overrides",
    "apply_recommendations")
PARAMETER_GROUP_NAME_MAX = 255
SERVERLESS_MIN_ACU, SERVERLESS_MAX_ACU = 0.5, 256
POSTGRES_MAX_CONNECTIONS = 262143  # PostgreSQL's MAX_BACKENDS
TAG_KEY_MAX, TAG_VALUE_MAX = 128, 256


def merge_overrides(common, own):
    """The top-level overrides with an item's own on top (names compared case-insensitively, the item's win)."""
    merged = dict(common or {})
    for name, value in (own or {}).items():
        for same in [key for key in merged if str(key).lower() == str(name).lower()]:
            del merged[same]
        merged[name] = value
    return merged


def group_requests(params):
    """One request (option name -> value) per group to tune.

    Without ``parameter_groups`` the top-level options are the one request. With it, each item is a request: the
    item's own options over the top-level ones, except that the group's name is always the item's, an item giving
    db_instance_class or db_instance_identifier replaces both top-level ones, and overrides merge (item's win).
    """
    common = {key: params.get(key) for key in GROUP_OPTIONS}
    items = params.get("parameter_groups")
    if not items:
        return [common]
    requests = []
    for item in items:
        own = {key: value for key, value in (item or {}).items() if value is not None and key in GROUP_OPTIONS}
        request = dict(common, **{key: None for key in GROUP_NAME_OPTIONS})
        if any(key in own for key in SIZING_OPTIONS):
            request.update({key: None for key in SIZING_OPTIONS})
        request.update(own)
        request["overrides"] = merge_overrides(common["overrides"], own.get("overrides"))
        requests.append(request)
    return requests


def group_name_of(request):
    """(option, name) of the group a request tunes; the name is None when none or both are given."""
    given = [key for key in GROUP_NAME_OPTIONS if request.get(key) is not None]
    return (given[0], request[given[0]]) if len(given) == 1 else (None, None)


def _blank(value):
    return value is None or not str(value).strip()


def option_problems(request, where=""):
    """Every problem of one request's options that needs no AWS call; ``where`` names the item (" of ...").

    Each problem reads "<option><where>: <what is wrong>; <what to give>".
    """
    problems = []
    key, name = group_name_of(request)
    if key is None:
        problems.append(f"db_parameter_group_name{where}: give exactly one of db_parameter_group_name (a DB parameter "
                        "group) and db_cluster_parameter_group_name (a DB cluster parameter group).")
    elif not _blank(name) and str(name).strip().lower().startswith("default."):
        problems.append(f"{key}{where}: {name} is an RDS default group; RDS default groups cannot be modified; give "
                        "the name of your own group (with family to create it) and attach it to the instances.")
    else:
        problems.extend(identifier_problems(name, f"{key}{where}", maximum=PARAMETER_GROUP_NAME_MAX))

    sizing = [option for option in SIZING_OPTIONS if request.get(option) is not None]
    instance_class = request.get("db_instance_class")
    if len(sizing) != 1:
        problems.append(f"db_instance_class{where}: give exactly one of db_instance_class (the class to size for) "
                        "and db_instance_identifier (an instance whose class is read).")
    elif sizing == ["db_instance_identifier"]:
        problems.extend(identifier_problems(request["db_instance_identifier"], f"db_instance_identifier{where}"))
    elif _blank(instance_class) or not str(instance_class).strip().startswith("db."):
        problems.append(f"db_instance_class{where}: {instance_class!r} is not a DB instance class; give it as RDS "
                        "names it, for example db.r6g.large or db.serverless.")
    elif instance_class == "db.serverless" and request.get("max_capacity") is None:
        problems.append(f"max_capacity{where}: db.serverless is sized from the maximum capacity; give max_capacity "
                        "in ACUs, or db_instance_identifier of a member of a Serverless v2 cluster.")

    capacity = request.get("max_capacity")
    if capacity is not None and (isinstance(capacity, bool) or not SERVERLESS_MIN_ACU <= capacity <= SERVERLESS_MAX_ACU
                                 or float(capacity) * 2 != int(float(capacity) * 2)):
        problems.append(f"max_capacity{where}: {capacity!r} is not an Aurora Serverless v2 capacity; give ACUs from "
                        f"{SERVERLESS_MIN_ACU:g} to {SERVERLESS_MAX_ACU} in steps of 0.5.")

    connections = request.get("max_connections")
    if isinstance(connections, bool):
        problems.append(f"max_connections{where}: {connections!r} is a boolean (YAML reads true/yes/on as one); "
                        "give the number of connections to plan for.")
    elif connections is not None and connections < 1:
        problems.append(f"max_connections{where}: it must be at least 1.")
    elif connections is not None and connections > POSTGRES_MAX_CONNECTIONS:
        problems.append(f"max_connections{where}: {connections} is more than PostgreSQL allows "
                        f"({POSTGRES_MAX_CONNECTIONS}); give a number from 1 to {POSTGRES_MAX_CONNECTIONS}.")

    family = request.get("family")
    if family is not None:
        problem = family_problem(family) if not _blank(family) else (
            "family is blank; give a family such as postgres15 or aurora-postgresql15, or leave it out for an "
            "existing group.")
        if problem:
            problems.append(f"family{where}: {problem}")
    if request.get("description") is not None and _blank(request["description"]):
        problems.append(f"description{where}: it is blank, and RDS needs a description for a group it creates; "
                        "give one or leave the option out.")

    for tag_key, tag_value in (request.get("tags") or {}).items():
        if _blank(tag_key) or len(str(tag_key)) > TAG_KEY_MAX or str(tag_key).lower().startswith("aws:"):
            problems.append(f"tags{where}: {tag_key!r} is not a tag key RDS accepts; give 1-{TAG_KEY_MAX} characters "
                            "not starting with aws:.")
        elif tag_value is not None and len(str(tag_value)) > TAG_VALUE_MAX:
            problems.append(f"tags{where}: the value of {tag_key} is longer than {TAG_VALUE_MAX} characters; "
                            "shorten it.")

    seen = {}
    for override in (request.get("overrides") or {}):
        if _blank(override):
            problems.append(f"overrides{where}: a parameter name is blank; give the parameter's name.")
            continue
        lowered = str(override).strip().lower()
        if lowered in seen:
            problems.append(f"overrides{where}: {seen[lowered]} and {override} name the same parameter; keep one.")
        seen[lowered] = override
    return problems


def duplicate_group_problems(requests):
    """Problems for a group named twice in one run (RDS names are case-insensitive)."""
    problems, seen = [], {}
    for index, request in enumerate(requests):
        key, name = group_name_of(request)
        if key is None or _blank(name):
            continue
        identity = (key, str(name).strip().lower())
        if identity in seen:
            problems.append(f"parameter_groups[{index}]: {name} is already parameter_groups[{seen[identity]}]; "
                            "give each group once, with all its settings in one item.")
        else:
            seen[identity] = index
    return problems


def instance_problem(identifier, instance, family, where=""):
    """Why the instance named by db_instance_identifier makes no sense for a group of ``family`` (None if it does)."""
    engine = str((instance or {}).get("Engine") or "")
    cluster_id = (instance or {}).get("DBClusterIdentifier")
    label = f"db_instance_identifier{where}: {identifier}"
    if engine not in ("postgres", "aurora-postgresql"):
        return (f"{label} runs {engine or 'an unknown engine'}, not PostgreSQL; give a PostgreSQL instance, or "
                "db_instance_class to size the group without one.")
    if engine == "aurora-postgresql" and not is_aurora_family(family):
        return (f"{label} is a member of the Aurora cluster {cluster_id!r}, but {family} is an RDS PostgreSQL family "
                "that no Aurora instance can use; tune an aurora-postgresqlNN group (its instance-level group, or "
                "the cluster's with db_cluster_parameter_group_name), or give db_instance_class to size this group.")
    if engine == "postgres" and is_aurora_family(family):
        return (f"{label} is an RDS PostgreSQL instance, not an Aurora member, but {family} is an Aurora family; "
                "give a member of the Aurora cluster, or db_instance_class to size this group.")
    return None


def shared_default_families(groups):
    """The (cluster, family) pairs whose engine defaults are read once per run and shared by its groups.

    ``groups`` are (cluster, family, exists) triples. A new group needs its family's defaults anyway; two or more
    existing groups of one family cost fewer calls as one defaults read plus each group's own (Source user) values
    than as each group's full parameter list. A lone existing group keeps its one full read.
    """
    counts, shared = {}, set()
    for cluster, family, exists in groups:
        if not exists:
            shared.add((cluster, family))
        else:
            counts[(cluster, family)] = counts.get((cluster, family), 0) + 1
    return shared | {pair for pair, count in counts.items() if count >= 2}


def group_parameters(engine_defaults, own_items):
    """A group's parameters as a full describe lists them: the family's engine defaults, the group's own on top."""
    merged = {item["ParameterName"]: item for item in engine_defaults}
    for item in own_items:
        merged[item["ParameterName"]] = dict(merged.get(item["ParameterName"], {}), **item)
    return list(merged.values())


def group_users(name, cluster, instances=(), clusters=()):
    """[{"id", "waits" (for a reboot), "multi_az"}] for the described instances or clusters that use group ``name``."""
    found = []
    if cluster:
        for described in clusters:
            if str(described.get("DBClusterParameterGroup", "")).lower() != name.lower():
                continue
            for member in described.get("DBClusterMembers") or []:
                found.append({"id": member["DBInstanceIdentifier"],
                              "waits": member.get("DBClusterParameterGroupStatus") == "pending-reboot",
                              "multi_az": False})
        return found
    for instance in instances:
        for group in instance.get("DBParameterGroups") or []:
            if str(group.get("DBParameterGroupName", "")).lower() == name.lower():
                found.append({"id": instance["DBInstanceIdentifier"],
                              "waits": group.get("ParameterApplyStatus") == "pending-reboot",
                              "multi_az": bool(instance.get("MultiAZ"))})
    return found

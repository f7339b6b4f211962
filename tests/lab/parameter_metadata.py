# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""RDS parameter metadata for the lab, derived from each PostgreSQL major version's own pg_settings.

Pure functions only: the moto patches in ``tests.lab.fidelity`` and the tests call them.
``data/pg15_settings.json`` caches the pg_settings rows of a throwaway PostgreSQL 15
(``tests.lab.postgres.engine_parameters()``; ``test_parameter_metadata.py`` keeps it in step) and
``data/pg18_settings.json`` those of a throwaway PostgreSQL 18 (``tests.lab.pg18.engine_parameters()``;
``test_pg18.py`` keeps it in step). The families ``postgres15`` and ``aurora-postgresql15`` read the first,
``postgres18`` the second; RDS's system defaults and RDS-only parameters are the same for both majors.
"""

from __future__ import annotations

import json
import pathlib
import re
from functools import lru_cache

from tests.lab import collection

DATA = pathlib.Path(__file__).resolve().parent / "data"
SETTINGS_CACHES = {"15": DATA / "pg15_settings.json", "18": DATA / "pg18_settings.json"}
SETTINGS_CACHE = SETTINGS_CACHES["15"]
SETTINGS_FIELDS = ("name", "unit", "category", "short_desc", "context", "vartype", "min_val", "max_val", "enumvals",
                   "boot_val")

GIB = 1024 ** 3

# Instance classes and RDS's memory reserve come from the collection's own tables (one source of truth).
INSTANCE_CLASSES = collection.instance_classes.INSTANCE_CLASSES
# db.serverless has no fixed memory: the lab sizes it as an Aurora Serverless v2 instance of this many ACUs.
SERVERLESS_LAB_ACUS = 2
# Used when no class applies (an Aurora cluster's own PostgreSQL before any instance is added).
DEFAULT_INSTANCE_CLASS = "db.t3.medium"
# RDS keeps part of each class's memory for the OS and its own agents; DBInstanceClassMemory is what is left.
MEMORY_RESERVE_SHARE = collection.instance_classes.RDS_RESERVED_MEMORY_SHARE

FAMILY_ENGINES = {"postgres15": "postgres", "aurora-postgresql15": "aurora-postgresql", "postgres18": "postgres",
                  "mysql8.0": "mysql"}
POSTGRES_FAMILIES = ("postgres15", "aurora-postgresql15", "postgres18")
# The first minor version RDS offered of each major (a parameter's MinimumEngineVersion).
FIRST_MINOR = {"15": "15.2", "18": "18.1"}

# Values that RDS sets in its default parameter group (Source "system").
_POSTGRES_SYSTEM_DEFAULTS = {
    "shared_buffers": "{DBInstanceClassMemory/32768}",
    "effective_cache_size": "{DBInstanceClassMemory/16384}",
    "max_connections": "LEAST({DBInstanceClassMemory/9531392},5000)",
    "maintenance_work_mem": "GREATEST({DBInstanceClassMemory*1024/63963136},65536)",
    "autovacuum_max_workers": "GREATEST({DBInstanceClassMemory/64371566592},3)",
    "shared_preload_libraries": "pg_stat_statements",
    "max_wal_size": "2048",
    "min_wal_size": "192",
    "log_rotation_age": "60",
    "log_rotation_size": "100000",
    "log_timezone": "UTC",
    "timezone": "UTC",
    "password_encryption": "scram-sha-256",
    "track_io_timing": "1",
    "hot_standby_feedback": "0",
    "rds.force_ssl": "0",
    "rds.logical_replication": "0",
    "rds.log_retention_period": "4320",
}
_AURORA_SYSTEM_DEFAULTS = dict(_POSTGRES_SYSTEM_DEFAULTS, **{
    "shared_buffers": "SUM({DBInstanceClassMemory/12038},-50003)",
})
for _name in ("max_wal_size", "min_wal_size", "rds.log_retention_period"):
    _AURORA_SYSTEM_DEFAULTS.pop(_name)

# Settings RDS manages itself: listed, never modifiable.
_RDS_RESERVED = {
    "archive_command", "archive_library", "archive_mode", "archive_timeout", "config_file", "data_directory",
    "external_pid_file", "hba_file", "ident_file", "listen_addresses", "log_directory", "log_file_mode",
    "log_filename", "log_line_prefix", "log_destination", "logging_collector", "port", "restore_command",
    "ssl_ca_file", "ssl_cert_file", "ssl_crl_dir", "ssl_crl_file", "ssl_key_file", "ssl_passphrase_command",
    "ssl_passphrase_command_supports_reload", "unix_socket_directories", "unix_socket_group",
    "unix_socket_permissions", "wal_level", "recovery_target", "recovery_target_action", "recovery_target_inclusive",
    "recovery_target_lsn", "recovery_target_name", "recovery_target_time", "recovery_target_timeline",
    "recovery_target_xid", "primary_conninfo", "primary_slot_name", "promote_trigger_file", "cluster_name",
    "event_source", "bonjour", "bonjour_name", "full_page_writes", "fsync", "ssl", "data_sync_retry",
    "krb_server_keyfile", "syslog_facility", "syslog_ident", "syslog_sequence_numbers", "syslog_split_messages",
    "shared_memory_type", "dynamic_shared_memory_type", "wal_sync_method", "wal_consistency_checking",
    "ignore_checksum_failure", "zero_damaged_pages", "ignore_invalid_pages", "allow_system_table_mods",
    "log_timezone",
}

# Parameters that exist only on RDS (or only once a preloaded library defines them).
_RDS_EXTRA = [
    {"ParameterName": "rds.force_ssl", "Description": "Force SSL connections.", "ApplyType": "dynamic",
     "DataType": "boolean", "AllowedValues": "0,1", "IsModifiable": True},
    {"ParameterName": "rds.logical_replication", "Description": "Enables logical decoding.", "ApplyType": "static",
     "DataType": "boolean", "AllowedValues": "0,1", "IsModifiable": True},
    {"ParameterName": "rds.log_retention_period",
     "Description": "Amazon RDS for PostgreSQL will delete PostgreSQL logs that are older than N minutes.",
     "ApplyType": "dynamic", "DataType": "integer", "AllowedValues": "1440-10080", "IsModifiable": True},
    {"ParameterName": "rds.rds_superuser_reserved_connections",
     "Description": "Sets the number of connection slots reserved for rds_superusers.", "ApplyType": "static",
     "DataType": "integer", "AllowedValues": "0-8388607", "IsModifiable": True},
    {"ParameterName": "rds.restrict_password_commands",
     "Description": "restricts password-related commands to members of rds_password", "ApplyType": "static",
     "DataType": "boolean", "AllowedValues": "0,1", "IsModifiable": True},
    {"ParameterName": "rds.accepted_password_auth_method",
     "Description": "Force authentication for connections with password stored locally.", "ApplyType": "dynamic",
     "DataType": "string", "AllowedValues": "md5+scram,scram", "IsModifiable": True},
    {"ParameterName": "rds.allowed_extensions",
     "Description": "Specifies which extensions are allowed to be installed.",
     "ApplyType": "dynamic", "DataType": "list", "IsModifiable": True},
    {"ParameterName": "rds.adaptive_autovacuum", "Description": "Adaptively tunes autovacuum parameters.",
     "ApplyType": "dynamic", "DataType": "boolean", "AllowedValues": "0,1", "IsModifiable": True},
    {"ParameterName": "pg_stat_statements.max",
     "Description": "Sets the maximum number of statements tracked by pg_stat_statements.", "ApplyType": "static",
     "DataType": "integer", "AllowedValues": "100-2147483647", "IsModifiable": True},
    {"ParameterName": "pg_stat_statements.track",
     "Description": "Selects which statements are tracked by pg_stat_statements.", "ApplyType": "dynamic",
     "DataType": "string", "AllowedValues": "all,none,top", "IsModifiable": True},
    {"ParameterName": "pg_stat_statements.track_utility",
     "Description": "Selects whether utility commands are tracked by pg_stat_statements.", "ApplyType": "dynamic",
     "DataType": "boolean", "AllowedValues": "0,1", "IsModifiable": True},
]
_PRELOAD_LIBRARIES = ("auto_explain,orafce,pgaudit,pglogical,pg_bigm,pg_cron,pg_hint_plan,pg_prewarm,pg_similarity,"
                      "pg_stat_statements,pg_tle,pg_transport,plprofiler")

_MYSQL_PARAMETERS = [
    {"ParameterName": "max_connections", "ParameterValue": "{DBInstanceClassMemory/12582880}", "Source": "system",
     "Description": "The number of simultaneous client connections allowed.", "ApplyType": "dynamic",
     "DataType": "integer", "AllowedValues": "1-100000", "IsModifiable": True},
    {"ParameterName": "innodb_buffer_pool_size", "ParameterValue": "{DBInstanceClassMemory*3/4}", "Source": "system",
     "Description": "The size in bytes of the memory buffer innodb uses to cache data and indexes of its tables.",
     "ApplyType": "static", "DataType": "integer", "AllowedValues": "5242880-18446744073709551615",
     "IsModifiable": True},
    {"ParameterName": "slow_query_log", "Description": "Enable or disable the slow query log",
     "ApplyType": "dynamic", "DataType": "boolean", "AllowedValues": "0,1", "IsModifiable": True,
     "Source": "engine-default"},
    {"ParameterName": "long_query_time",
     "Description": "Defines what MySQL considers long queries", "ApplyType": "dynamic", "DataType": "float",
     "AllowedValues": "0-31536000", "IsModifiable": True, "Source": "engine-default"},
    {"ParameterName": "binlog_format", "ParameterValue": "ROW", "Source": "system",
     "Description": "What form of binary logging the master will use.", "ApplyType": "dynamic",
     "DataType": "string", "AllowedValues": "ROW,STATEMENT,MIXED", "IsModifiable": True},
]

# Local PostgreSQL must never see these, whatever the group says (RDS-only, or owned by the lab's PgCluster).
NOT_FOR_LOCAL_POSTGRES = _RDS_RESERVED | {
    "rds.force_ssl", "rds.log_retention_period", "rds.rds_superuser_reserved_connections",
    "rds.restrict_password_commands", "rds.accepted_password_auth_method", "rds.allowed_extensions",
    "rds.adaptive_autovacuum", "rds.logical_replication",
}


class ParameterError(Exception):
    """A request RDS would reject: ``code`` is RDS's error code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@lru_cache(maxsize=4)
def settings_rows(major: str = "15") -> tuple[dict, ...]:
    """The cached pg_settings rows of PostgreSQL ``major`` (15 or 18)."""
    return tuple(json.loads(SETTINGS_CACHES[major].read_text())["rows"])


def major_of_family(family: str) -> str:
    """The PostgreSQL major version of a PostgreSQL family: "postgres18" is "18"."""
    return re.sub(r"^[a-z-]+", "", family)


def refresh_cache(major: str = "15") -> pathlib.Path:
    """Rewrite data/pg<major>_settings.json from a throwaway PostgreSQL of that major version
    (``python -m tests.lab.parameter_metadata [15|18]``)."""
    if major == "18":
        from tests.lab.pg18 import engine_parameters
        source = "tests.lab.pg18.engine_parameters()"
    else:
        from tests.lab.postgres import engine_parameters
        source = "tests.lab.postgres.engine_parameters()"

    rows = settings_row_subset(engine_parameters())
    cache = SETTINGS_CACHES[major]
    cache.write_text(json.dumps({"source": f"pg_settings of a throwaway PostgreSQL {major} ({source})", "rows": rows},
                                indent=1, sort_keys=True) + "\n")
    settings_rows.cache_clear()
    return cache


def settings_row_subset(rows) -> list[dict]:
    """The fields the cache keeps, in name order (to compare the cache with a live pg_settings)."""
    return sorted(({k: row.get(k) for k in SETTINGS_FIELDS} for row in rows), key=lambda r: r["name"])


def _rds_data_type(row: dict) -> tuple[str, str | None]:
    vartype = row["vartype"]
    if vartype == "bool":
        return "boolean", "0,1"
    if vartype == "integer":
        return "integer", f"{row['min_val']}-{row['max_val']}"
    if vartype == "real":
        return "float", f"{_trim_number(row['min_val'])}-{_trim_number(row['max_val'])}"
    if vartype == "enum":
        return "string", ",".join(row["enumvals"] or [])
    return "string", None


def _trim_number(text: str) -> str:
    value = float(text)
    return str(int(value)) if value.is_integer() else repr(value)


def parameter_from_setting(row: dict) -> dict:
    """One pg_settings row as an RDS Parameter (without a value)."""
    data_type, allowed = _rds_data_type(row)
    description = row.get("short_desc") or ""
    if row.get("unit"):
        description = f"({row['unit']}) {description}"
    context = row["context"]
    parameter = {
        "ParameterName": row["name"].lower(),
        "Description": description,
        "Source": "engine-default",
        "ApplyType": "static" if context in ("postmaster", "internal") else "dynamic",
        "DataType": data_type,
        "IsModifiable": context != "internal" and row["name"].lower() not in _RDS_RESERVED,
        "ApplyMethod": "pending-reboot",
    }
    if allowed is not None:
        parameter["AllowedValues"] = allowed
    if row.get("unit"):
        parameter["_Unit"] = row["unit"]
    return parameter


@lru_cache(maxsize=8)
def _family_parameters(family: str) -> tuple[dict, ...]:
    if family.startswith("mysql"):
        parameters = [dict(p, ApplyMethod="pending-reboot", MinimumEngineVersion="8.0.11") for p in _MYSQL_PARAMETERS]
        return tuple(sorted(parameters, key=lambda p: p["ParameterName"]))
    if family not in POSTGRES_FAMILIES:
        raise ParameterError("InvalidParameterValue",
                             f"Invalid parameter group family: {family}")
    system = _AURORA_SYSTEM_DEFAULTS if family.startswith("aurora") else _POSTGRES_SYSTEM_DEFAULTS
    major = major_of_family(family)
    parameters = {row["name"].lower(): parameter_from_setting(row) for row in settings_rows(major)}
    for extra in _RDS_EXTRA:
        if extra["ParameterName"] not in parameters:
            parameters[extra["ParameterName"]] = dict(extra, Source="engine-default", ApplyMethod="pending-reboot")
    parameters["shared_preload_libraries"].update(DataType="list", AllowedValues=_PRELOAD_LIBRARIES)
    for name, value in system.items():
        parameters[name].update(ParameterValue=value, Source="system")
    for parameter in parameters.values():
        parameter["MinimumEngineVersion"] = FIRST_MINOR[major]
        if family.startswith("aurora"):
            parameter["SupportedEngineModes"] = ["provisioned"]
    return tuple(sorted(parameters.values(), key=lambda p: p["ParameterName"]))


def is_known_family(family: str) -> bool:
    return family in FAMILY_ENGINES


def engine_default_parameters(family: str) -> list[dict]:
    """describe_engine_default_parameters' Parameters for a family, without lab-internal keys."""
    return [public(p) for p in _family_parameters(family)]


def parameter_index(family: str) -> dict[str, dict]:
    return {p["ParameterName"]: p for p in _family_parameters(family)}


def public(parameter: dict) -> dict:
    return {k: v for k, v in parameter.items() if not k.startswith("_")}


def group_parameters(family: str, user_values: dict[str, dict]) -> list[dict]:
    """describe_db_parameters' list: the family's parameters with the group's own values (Source "user") on top."""
    merged = []
    for parameter in _family_parameters(family):
        item = public(parameter)
        own = user_values.get(parameter["ParameterName"])
        if own is not None and own.get("ParameterValue") is not None:
            item.update(ParameterValue=str(own["ParameterValue"]), Source="user",
                        ApplyMethod=own.get("ApplyMethod") or "pending-reboot")
        merged.append(item)
    return merged


_FORMULA = re.compile(r"^[\s{}A-Za-z0-9*/+,()\-]+$")


def _is_formula(value: str) -> bool:
    return "{" in value or value.upper().startswith(("GREATEST(", "LEAST(", "SUM(", "IF("))


def validate_modification(family: str, parameters: list[dict], *, is_default_group: bool = False,
                          reset: bool = False) -> list[dict]:
    """Check a ModifyDBParameterGroup/ResetDBParameterGroup request as RDS does; return the normalised list.

    Raises ParameterError with RDS's code; nothing of a rejected request may be applied.
    """
    if is_default_group:
        raise ParameterError("InvalidParameterValue", "The parameter group can't be modified because it is a default "
                                                      "parameter group.")
    if not parameters and not reset:
        raise ParameterError("InvalidParameterValue", "Parameters must be provided.")
    if len(parameters) > 20:
        raise ParameterError("InvalidParameterValue",
                             f"A maximum of 20 parameters can be modified in a single request "
                             f"({len(parameters)} were given).")
    index = parameter_index(family)
    checked = []
    for given in parameters:
        name = given.get("ParameterName")
        meta = index.get(name)
        if meta is None:
            raise ParameterError("InvalidParameterValue", f"Could not find parameter with name: {name}")
        if not meta["IsModifiable"]:
            raise ParameterError("InvalidParameterValue", f"The parameter {name} cannot be modified.")
        method = given.get("ApplyMethod") or ("immediate" if meta["ApplyType"] == "dynamic" else "pending-reboot")
        if method not in ("immediate", "pending-reboot"):
            raise ParameterError("InvalidParameterValue", f"Invalid apply method {method} for parameter {name}.")
        if method == "immediate" and meta["ApplyType"] == "static":
            raise ParameterError("InvalidParameterCombination",
                                 "cannot use immediate apply method for static parameter")
        value = given.get("ParameterValue")
        if not reset:
            if value is None:
                raise ParameterError("InvalidParameterValue", f"A value must be provided for parameter {name}.")
            value = str(value)
            check_value(meta, value)
        checked.append({"ParameterName": name, "ParameterValue": value, "ApplyMethod": method})
    return checked


def check_value(meta: dict, value: str) -> None:
    name, data_type, allowed = meta["ParameterName"], meta["DataType"], meta.get("AllowedValues")
    problem = f"Value: {value} is outside of range: {allowed} for parameter: {name}"
    if data_type in ("integer", "float") and _is_formula(value):
        if not _FORMULA.match(value):
            raise ParameterError("InvalidParameterValue", f"Invalid formula {value} for parameter: {name}")
        try:
            evaluate_formula(value, 8 * GIB, 2)
        except (ValueError, ZeroDivisionError, IndexError) as exc:
            raise ParameterError("InvalidParameterValue", f"Invalid formula {value} for parameter: {name}") from exc
        return
    if data_type == "boolean":
        if value not in ("0", "1"):
            raise ParameterError("InvalidParameterValue", problem)
    elif data_type in ("integer", "float"):
        try:
            number = int(value) if data_type == "integer" else float(value)
        except ValueError:
            raise ParameterError("InvalidParameterValue", problem) from None
        if allowed:
            low, high = _range(allowed)
            if not low <= number <= high:
                raise ParameterError("InvalidParameterValue", problem)
    elif data_type == "string" and allowed:
        if value not in allowed.split(","):
            raise ParameterError("InvalidParameterValue", problem)
    elif data_type == "list" and allowed:
        unknown = [v.strip() for v in value.split(",") if v.strip() and v.strip() not in allowed.split(",")]
        if unknown:
            raise ParameterError("InvalidParameterValue", problem)


def _range(allowed: str) -> tuple[float, float]:
    match = re.match(r"^(-?[0-9.e+]+)-(-?[0-9.e+]+)$", allowed)
    if not match:
        return float("-inf"), float("inf")
    return float(match.group(1)), float(match.group(2))


# ---------------------------------------------------------------------------------------------------------------
# Instance classes and formulas

def class_sizing(instance_class: str | None) -> dict:
    """The collection's sizing record of a class; an unknown class is rejected as RDS rejects it."""
    if instance_class == collection.instance_classes.SERVERLESS_CLASS:
        return collection.instance_classes.sizing_for_serverless(SERVERLESS_LAB_ACUS)
    try:
        return collection.instance_classes.sizing_from_table(instance_class or DEFAULT_INSTANCE_CLASS)
    except collection.instance_classes.UnknownInstanceClass:
        raise ParameterError("InvalidParameterValue", f"Invalid DB Instance class: {instance_class}") from None


def instance_class_memory(instance_class: str | None) -> int:
    """DBInstanceClassMemory in bytes: the class's nominal memory less RDS's reserve."""
    nominal = class_sizing(instance_class)["memory_bytes"]
    return nominal - int(nominal * MEMORY_RESERVE_SHARE)


def instance_class_vcpu(instance_class: str | None) -> int:
    return class_sizing(instance_class)["vcpus"] or 2


def evaluate_formula(text: str, memory: int, vcpu: int = 2) -> int:
    """Evaluate an RDS formula such as ``LEAST({DBInstanceClassMemory/9531392},5000)`` to an integer."""
    return _FormulaParser(text, {"DBInstanceClassMemory": memory, "DBInstanceVCPU": vcpu,
                                 "AllocatedStorage": 20 * GIB, "EndPointPort": 5432}).parse()


class _FormulaParser:
    _TOKEN = re.compile(r"\s*(?:(\d+)|([A-Za-z_][A-Za-z0-9_]*)|(.))")

    def __init__(self, text: str, variables: dict[str, int]):
        self.tokens = [m.groups() for m in self._TOKEN.finditer(text.strip()) if any(m.groups())]
        self.pos = 0
        self.variables = variables

    def parse(self) -> int:
        value = self._expression()
        if self.pos != len(self.tokens):
            raise ValueError("trailing characters in formula")
        return int(value)

    def _peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else (None, None, None)

    def _take(self, symbol: str) -> None:
        if self._peek()[2] != symbol:
            raise ValueError(f"expected {symbol}")
        self.pos += 1

    def _expression(self) -> int:
        value = self._term()
        while self._peek()[2] in ("+", "-"):
            op = self._peek()[2]
            self.pos += 1
            value = value + self._term() if op == "+" else value - self._term()
        return value

    def _term(self) -> int:
        value = self._factor()
        while self._peek()[2] in ("*", "/"):
            op = self._peek()[2]
            self.pos += 1
            right = self._factor()
            value = value * right if op == "*" else value // right
        return value

    def _factor(self) -> int:
        number, word, symbol = self._peek()
        if number is not None:
            self.pos += 1
            return int(number)
        if symbol == "-":
            self.pos += 1
            return -self._factor()
        if symbol in ("{", "("):
            self.pos += 1
            value = self._expression()
            self._take("}" if symbol == "{" else ")")
            return value
        if word is not None:
            self.pos += 1
            if word in self.variables:
                return self.variables[word]
            name = word.upper()
            if name not in ("GREATEST", "LEAST", "SUM", "IF"):
                raise ValueError(f"unknown name {word}")
            self._take("(")
            args = [self._expression()]
            while self._peek()[2] == ",":
                self.pos += 1
                args.append(self._expression())
            self._take(")")
            if name == "GREATEST":
                return max(args)
            if name == "LEAST":
                return min(args)
            if name == "SUM":
                return sum(args)
            return args[1] if args[0] else args[2]
        raise ValueError("unexpected token in formula")


def local_settings(family: str, user_values: dict[str, dict], instance_class: str | None,
                   extra_user_values: dict[str, dict] | None = None) -> dict[str, str]:
    """The settings a local PostgreSQL starts with: the group's values (system and user), formulas evaluated."""
    if family not in POSTGRES_FAMILIES:
        return {}
    memory, vcpu = instance_class_memory(instance_class), instance_class_vcpu(instance_class)
    index = parameter_index(family)
    values = {name: p["ParameterValue"] for name, p in index.items() if p.get("ParameterValue") is not None}
    for own in (user_values, extra_user_values or {}):
        for name, item in own.items():
            if item.get("ParameterValue") is not None and name in index:
                values[name] = str(item["ParameterValue"])
    settings = {}
    for name, value in values.items():
        if name == "rds.logical_replication":
            if value == "1":
                settings["wal_level"] = "logical"
            continue
        if name == "rds.force_ssl":  # applied by the lab's PgCluster (pg_hba.conf), not a postgresql.conf setting
            settings[name] = "1" if value == "1" else "0"
            continue
        if name in NOT_FOR_LOCAL_POSTGRES:
            continue
        meta = index[name]
        if meta["DataType"] in ("integer", "float") and _is_formula(value):
            value = str(evaluate_formula(value, memory, vcpu))
        elif meta["DataType"] == "boolean":
            value = "on" if value == "1" else "off"
        settings[name] = value
    return settings


if __name__ == "__main__":
    import sys

    print(f"wrote {refresh_cache(*sys.argv[1:2])}")

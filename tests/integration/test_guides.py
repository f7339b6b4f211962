# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The guides work as written: their runnable blocks run against the lab, and every name they cite exists.

docs/README.md ("How the guides are tested") states the rules; tests/tools/guides.py reads the documents.

- Runnable blocks (``<!-- runnable -->`` right before the fence) of docs/guides/*.md, README.md and docs/README.md run
  in document order against one lab, after the substitution rule, as one test each. The lab holds what the guides
  start from: orders-db as playbooks/provision_rds.yml builds it from playbooks/vars/example.yml (Multi-AZ, database
  orders, master dbadmin with its password in rds-provision/orders-db/master, its own parameter group), the demo's
  sample orders, the login secrets of example.yml, the CPU alarm rds_monitoring makes and a ``drill`` login. The
  fixture makes them with boto3 and SQL, in seconds; test_rds_provision.py and the molecule site scenario run the
  playbooks that make them for real.
- The static checks need no lab and take a second.
"""

import json
import os
import pathlib
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import psycopg2
import pytest
import yaml

from tests.tools import guides

REPO = guides.REPO
BIN = pathlib.Path(sys.executable).parent
INSTANCE = "orders-db"
EXAMPLE = yaml.safe_load(guides.EXAMPLE.read_text(encoding="utf-8"))

DOCUMENTS = guides.guide_files()
BLOCKS = [block for path in DOCUMENTS for block in guides.blocks(path)]
RUNNABLE = [block for block in BLOCKS if block.runnable]
MODULES = guides.module_docs()
ROLES = guides.role_variables()
EXAMPLE_VARIABLES = guides.example_variables()
PLAYBOOK_VARIABLES = guides.playbook_variables()
PG_SETTINGS = {row["name"] for row in json.loads((REPO / "tests" / "lab" / "data" / "pg15_settings.json")
                                                 .read_text())["rows"]}
# PostgreSQL names the guides cite that are no setting: extensions, roles, catalogs.
PG_NAMES = {"pg_stat_statements", "pg_monitor", "pg_read_all_stats", "pg_stat_activity", "pg_authid", "rds_iam"}

# Names a guide of a module may cite that are neither its options nor its return values, and why.
OTHER_NAMES = {
    "set_stats": "ansible.builtin.set_stats",
    "arm_lossy_failover": "the lab's control call (docs/lab.md)",
    "dbre_rds_failover_probe": "probe_table's default value",
    "expires_at": "a key of the probe table's comment",
    "create_instance": "a phase of the restore drill",
    "wait_available": "a phase of the restore drill",
    "describe_db_instance_automated_backups": "the boto3 call",
    "call_once": "the helper in plugins/module_utils/aws_clients.py",
    "manage_master_user_password": "the option amazon.aws 10 lacks (provisioning.md)",
    "orders_owner": "users.md's example: the owner role rds_users makes for database orders",
    "orders_readonly": "users.md's example: a group role rds_users makes",
    "orders_readwrite": "users.md's example: a group role rds_users makes",
    "orders_monitoring": "users.md's example: a group role rds_users makes",
}
# Collection names that exist but are no option or variable: roles, modules, filters, facts the roles set.
RETIRED_FILTERS = {"rds_provision_normalize", "rds_provision_problems", "rds_provision_members",
                   "rds_provision_placement", "rds_provision_placement_problems", "rds_provision_endpoints"}


def _role_facts():
    facts = set()
    for path in (REPO / "roles").glob("*/tasks/*.yml"):
        guides._set_names(guides.load_yaml(path.read_text(encoding="utf-8")), facts)
    return facts


def _stats_and_awx_variables():
    names = set()
    for path in list((REPO / "playbooks").glob("*.yml")) + [REPO / "playbooks" / "awx" / "configure_awx.yml"]:
        data = guides.load_yaml(path.read_text(encoding="utf-8"))
        for play in data or []:
            names.update((play.get("vars") or {}).keys())
            for task in play.get("tasks") or []:
                names.update(((task.get("ansible.builtin.set_stats") or {}).get("data") or {}).keys())
    return names


COLLECTION_NAMES = (set(MODULES) | set(ROLES) | _role_facts() | _stats_and_awx_variables() | RETIRED_FILTERS
                    | {path.stem for path in (REPO / "plugins" / "filter").glob("*.py")} | {"rds_provision_plan"}
                    | {path.stem for path in (REPO / "playbooks").glob("*.yml")})
PREFIXED = re.compile(r"^(dbre_rds|dbre_awx|rds_provision|rds_users|rds_monitoring)_[a-z0-9_]+$")


def _documented_words(module):
    """Every name a module's DOCUMENTATION and RETURN mention: options, return keys, choices, keys of returned
    dicts described in prose (`C(confirmed_by)`)."""
    strings = guides._module_strings(REPO / "plugins" / "modules" / f"{module}.py")
    return set(re.findall(r"[a-z][a-z0-9_]*", strings.get("DOCUMENTATION", "") + strings.get("RETURN", "")))


# ------------------------------------------------------------------------------------------------ static checks


def test_runnable_markers_each_mark_a_fence_and_the_guides_have_some():
    assert [problem for path in DOCUMENTS for problem in guides.stray_markers(path)] == []
    marked = {block.path.name for block in RUNNABLE}
    for guide in ("failover_drill.md", "restore_drill.md", "parameter_tuning.md", "monitoring.md", "users.md"):
        assert guide in marked, f"{guide} has no runnable block"


def test_runnable_blocks_run_only_ansible_playbook_and_parse():
    problems = []
    for block in RUNNABLE:
        if block.lang in ("console", "shell", "bash", "sh"):
            commands = guides.console_commands(block.text)
            if not commands:
                problems.append(f"{block.where}: a runnable console block with no `$ ` command")
            for command in commands:
                if guides.is_lab_lifecycle(command):
                    continue
                words = shlex.split(command)
                if words[0] not in guides.PROGRAMS:
                    problems.append(f"{block.where}: `{command}` is not one of {guides.PROGRAMS}")
        elif block.lang in ("yaml", "yml"):
            try:
                guides.as_playbook(block.text)
            except (ValueError, yaml.YAMLError) as error:
                problems.append(f"{block.where}: {error}")
        else:
            problems.append(f"{block.where}: a runnable block must be console or yaml, not {block.lang!r}")
    assert problems == []


def test_commands_from_the_checkout_use_the_virtual_environment():
    """A command that runs a playbook of the checkout uses .venv/bin/ansible-playbook (what `make setup` installs);
    bare `ansible-playbook` is for the installed collection (`dbre.rds.<playbook>`)."""
    problems = []
    for block in BLOCKS:
        if block.lang not in ("console", "shell", "bash", "sh"):
            continue
        for command in guides.console_commands(block.text):
            words = shlex.split(command) if command else []
            if words and words[0] == "ansible-playbook" and any(
                    word.endswith(".yml") and "@" not in word for word in words[1:2]):
                problems.append(f"{block.where}: `{command}`")
    assert problems == []


def test_module_tasks_roles_and_registered_results_use_documented_names():
    problems = []
    for block in BLOCKS:
        if block.lang not in ("yaml", "yml"):
            continue
        for kind, name, args in guides.task_uses(block):
            if kind == "module":
                if MODULES.get(name, {}).get("error"):
                    problems.append(f"{block.where}: dbre.rds.{name}'s DOCUMENTATION does not parse")
                unknown = sorted(set(args) - MODULES.get(name, {"options": set()})["options"])
                problems += [f"{block.where}: dbre.rds.{name} has no option {option}" for option in unknown]
            elif kind == "role":
                unknown = sorted(set(args) - ROLES[name]["variables"])
                problems += [f"{block.where}: dbre.rds.{name} has no variable {var}" for var in unknown]
            else:
                unknown = sorted(set(args) - PLAYBOOK_VARIABLES)
                problems += [f"{block.where}: extra_data {var} is read by no playbook" for var in unknown]
        for module, register, chains in guides.registered_uses(block):
            for chain in chains:
                if chain[0] not in MODULES[module]["returns"] | {"changed", "failed", "msg"}:
                    problems.append(f"{block.where}: {register}.{'.'.join(chain)}: dbre.rds.{module} returns no "
                                    f"{chain[0]}")
                elif len(chain) > 1 and chain[1] not in MODULES[module]["returns"] | {"md", "json", "xml"}:
                    problems.append(f"{block.where}: {register}.{'.'.join(chain)}: no {chain[1]} in "
                                    f"dbre.rds.{module}'s RETURN")
    assert problems == []


def _known_in(path):
    """Names a guide of the collection may cite: the documentation of every dbre.rds module and role it names, and
    the options of the amazon.aws modules it names in backticks."""
    text = path.read_text(encoding="utf-8")
    named = set(re.findall(r"dbre\.rds\.(\w+)", text))
    known = set()
    for module in named & set(MODULES):
        known |= MODULES[module]["options"] | MODULES[module]["returns"] | _documented_words(module)
    for role in named & set(ROLES):
        known |= ROLES[role]["names"]
        known |= set(re.findall(r"[a-z][a-z0-9_]*", (REPO / "roles" / role / "defaults" / "main.yml").read_text()))
    import ansible_collections.amazon.aws as amazon_aws
    modules = pathlib.Path(list(amazon_aws.__path__)[0]) / "plugins" / "modules"
    for name in set(guides.backticked(path)) | set(re.findall(r"amazon\.aws\.(\w+)", text)):
        source = modules / f"{name.split('.')[-1]}.py"
        if re.fullmatch(r"[\w.]+", name) and source.exists():
            known |= guides._options((guides.load_yaml(guides._module_strings(source)["DOCUMENTATION"]) or {})
                                     .get("options"), set())
    return known


def test_names_in_backticks_exist():
    """The collection's variables everywhere; in the guide of a module or role (its title names `dbre.rds.<name>`),
    every snake_case name is in the documentation of a dbre.rds module or role the guide names (options, return
    values, choices, role variables and their suboptions), an option of an amazon.aws module it names, a collection
    name, a PostgreSQL setting or name, or one of OTHER_NAMES."""
    problems = []
    variables = PLAYBOOK_VARIABLES | EXAMPLE_VARIABLES | set().union(*(role["names"] for role in ROLES.values()))
    for path in DOCUMENTS:
        subject = re.search(r"`dbre\.rds\.\w+`", path.read_text(encoding="utf-8").splitlines()[0])
        known = _known_in(path) if subject else set()
        for token in sorted(set(guides.backticked(path))):
            if not re.fullmatch(r"[a-z][a-z0-9]*(_[a-z0-9]+)+", token):
                continue
            if PREFIXED.match(token):
                if token not in variables | COLLECTION_NAMES | set(OTHER_NAMES):
                    problems.append(f"{path.relative_to(REPO)}: `{token}` is no variable of the playbooks or roles")
            elif subject and token not in known | COLLECTION_NAMES | PG_SETTINGS | PG_NAMES | set(OTHER_NAMES):
                problems.append(f"{path.relative_to(REPO)}: `{token}` is in the documentation of no module or role "
                                f"the guide names")
    assert problems == []


def test_variables_the_playbooks_read_are_in_example_yml():
    facts = _role_facts()  # what the roles publish (rds_provision_endpoints, ...), read by the summary template
    missing = sorted(name for name in PLAYBOOK_VARIABLES - facts
                     if not guides.documented_variable(name, EXAMPLE_VARIABLES, ROLES))
    assert missing == [], "document them in playbooks/vars/example.yml (a commented `# name: default` line will do)"


def test_extra_vars_in_commands_are_variables_the_playbooks_read():
    problems = []
    for path in DOCUMENTS:
        for name, command in guides.extra_vars(path):
            if not (guides.documented_variable(name, EXAMPLE_VARIABLES, ROLES) or name in _demo_variables()):
                problems.append(f"{path.relative_to(REPO)}: -e {name}= in `{command}` is not documented")
    assert problems == []


def _demo_variables():
    names = set()
    for path in (REPO / "playbooks" / "demo").glob("*.yml"):
        text = path.read_text(encoding="utf-8")
        names.update(name for name in re.findall(r"\b(demo_[a-z0-9_]+)\b", text))
    return names


def test_every_path_a_guide_names_exists():
    missing = [f"{path.relative_to(REPO)}: {named}" for path in DOCUMENTS for named in guides.named_paths(path)
               if not guides.resolve(path, named).exists()]
    assert missing == []


def test_every_guide_is_in_the_docs_index_and_getting_started_next():
    index = (REPO / "docs" / "README.md").read_text(encoding="utf-8")
    start = (REPO / "docs" / "guides" / "getting_started.md").read_text(encoding="utf-8")
    next_list = start.split("## 5. Next", 1)[-1] if "## 5. Next" in start else ""
    problems = []
    for path in sorted((REPO / "docs" / "guides").glob("*.md")):
        if f"(guides/{path.name})" not in index:
            problems.append(f"docs/README.md's table misses {path.name}")
        if path.name != "getting_started.md" and f"({path.name})" not in next_list:
            problems.append(f"getting_started.md's Next list misses {path.name}")
    assert problems == []


# ------------------------------------------------------------------------------------------------ the lab


@pytest.fixture(scope="module")
def guide_lab(lab):
    """The lab in the state the guides start from (see the module docstring), and the variables the rule adds."""
    lab.control.reset()
    work = pathlib.Path(tempfile.mkdtemp(prefix="dbre-rds-guides-"))
    os.chmod(work, 0o755)
    try:
        yield _prepare(lab, work)
    finally:
        lab.control.reset()
        shutil.rmtree(work, ignore_errors=True)


def _prepare(lab, work):
    """orders-db and what the guides start from (docs/README.md lists it); the environment and the variables file."""
    rds, secretsmanager = lab.client("rds"), lab.client("secretsmanager")
    declaration = EXAMPLE["rds_provision_instances"][0]
    password = secrets.token_urlsafe(18)
    group = f"{INSTANCE}-postgres15"
    marker = [{"Key": "dbre.rds:rds_provision", "Value": INSTANCE}]
    rds.create_db_parameter_group(DBParameterGroupName=group, DBParameterGroupFamily="postgres15",
                                  Description=f"{INSTANCE} tuned by dbre.rds.rds_param_tune", Tags=marker)
    rds.create_db_instance(DBInstanceIdentifier=INSTANCE, Engine="postgres", EngineVersion="15.7",
                           DBInstanceClass="db.t3.micro", AllocatedStorage=20, MultiAZ=True,
                           AvailabilityZone="us-east-1a", DBName=declaration["db_name"], MasterUsername="dbadmin",
                           MasterUserPassword=password, BackupRetentionPeriod=7, DBParameterGroupName=group,
                           Tags=marker)
    secretsmanager.create_secret(Name=f"rds-provision/{INSTANCE}/master",
                                 SecretString=json.dumps({"username": "dbadmin", "password": password}))
    for login in EXAMPLE["rds_users_logins"]:
        if "password_secret" in login:
            name = login["password_secret"].replace("{{ dbre_rds_db_instance_identifier }}", INSTANCE)
            secretsmanager.create_secret(Name=name, SecretString=json.dumps({"password": secrets.token_urlsafe(18)}))
    deadline = time.monotonic() + 120
    described = rds.describe_db_instances(DBInstanceIdentifier=INSTANCE)["DBInstances"][0]
    while described["DBInstanceStatus"] != "available":
        assert time.monotonic() < deadline, "orders-db did not become available"
        time.sleep(0.3)
        described = rds.describe_db_instances(DBInstanceIdentifier=INSTANCE)["DBInstances"][0]
    lab.client("cloudwatch").put_metric_alarm(
        AlarmName=f"rds-{INSTANCE}-cpu-utilization", MetricName="CPUUtilization", Namespace="AWS/RDS",
        Statistic="Average", Period=300, EvaluationPeriods=3, Threshold=85, ComparisonOperator="GreaterThanThreshold",
        Dimensions=[{"Name": "DBInstanceIdentifier", "Value": INSTANCE}])
    conn = psycopg2.connect(host=described["Endpoint"]["Address"], port=described["Endpoint"]["Port"],
                            user="dbadmin", password=password, dbname="orders", connect_timeout=10)
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute((REPO / "playbooks" / "demo" / "files" / "orders.sql").read_text(), {"rows": 500})
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        cursor.execute("CREATE ROLE drill LOGIN PASSWORD %s", (password,))
        cursor.execute("GRANT CREATE, USAGE ON SCHEMA public TO drill")
    conn.close()
    variables = {
        # docs/README.md, "How the guides are tested": what the test adds to every ansible-playbook it runs
        "dbre_rds_report_dir": str(work / "reports"), "dbre_rds_progress_log": str(work / "reports" / "drills.log"),
        "dbre_rds_poll_interval": 0.5, "dbre_rds_async_poll": 1, "dbre_rds_failover_settle_seconds": 1,
    }
    used = set(re.findall(r"\b(vault_[a-z0-9_]+)\b", "".join(block.text for block in RUNNABLE)))
    variables.update({name: password for name in used})
    (work / "lab_vars.json").write_text(json.dumps(variables))
    os.chmod(work / "lab_vars.json", 0o600)
    # lab.env starts from os.environ, which under make already holds ANSIBLE_COLLECTIONS_PATH: update, never repeat.
    env = dict(os.environ)
    env.update(lab.env)
    env.update(ANSIBLE_COLLECTIONS_PATH=str(REPO / ".build"), ANSIBLE_LOCALHOST_WARNING="0",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0", ANSIBLE_NOCOLOR="1", ANSIBLE_PIPELINING="1")
    return {"work": work, "env": env}


def _run(guide_lab, words, where, timeout=300):
    words = words + ["-e", f"@{guide_lab['work'] / 'lab_vars.json'}"]
    started = time.monotonic()
    done = subprocess.run(words, cwd=REPO, env=guide_lab["env"], capture_output=True, text=True, timeout=timeout,
                          check=False)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, (f"{where} fails as written (exit {done.returncode}, {elapsed:.0f} s): "
                                  f"{' '.join(words)}\n{done.stdout[-5000:]}\n{done.stderr[-2000:]}")
    return done.stdout


@pytest.mark.parametrize("block", RUNNABLE, ids=[block.where for block in RUNNABLE])
def test_runnable_block_works_against_the_lab(guide_lab, block):
    work = guide_lab["work"]
    text = guides.substitute(block.text, work)
    if block.lang in ("yaml", "yml"):
        playbook = work / f"{block.path.stem}-{block.line}.yml"
        playbook.write_text(yaml.safe_dump(guides.as_playbook(text), sort_keys=False))
        output = _run(guide_lab, [str(BIN / "ansible-playbook"), str(playbook), *block.options], block.where)
        assert "failed=0" in output
        return
    ran = 0
    for command in guides.console_commands(text):
        if guides.is_lab_lifecycle(command):
            continue
        words = shlex.split(command)
        assert words[0] in guides.PROGRAMS, f"{block.where}: `{command}` may not run from the test"
        output = _run(guide_lab, [str(REPO / words[0])] + words[1:] + block.options, block.where)
        assert "failed=0" in output
        ran += 1
    assert ran, f"{block.where}: nothing to run"

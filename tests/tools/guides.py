# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the guides say, read mechanically: fenced blocks, the blocks marked runnable, and the names and paths they cite.

tests/integration/test_guides.py uses it to run the runnable blocks against the lab and to check every name against
the modules' documentation, the roles' argument specifications and playbooks/vars/example.yml. The rules are
documented in docs/README.md ("How the guides are tested"); keep the two in step.
"""

from __future__ import annotations

import ast
import pathlib
import re
import shlex
import textwrap
from dataclasses import dataclass, field

import yaml

REPO = pathlib.Path(__file__).resolve().parents[2]

# A fenced block is runnable when the line right before its opening fence is this comment. Options after the colon
# are ansible-playbook arguments (for a YAML block) such as --check --diff.
RUNNABLE = re.compile(r"^<!--\s*runnable(?::\s*(?P<options>.*?))?\s*-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)\s*$")

# The substitution rule, applied in this order to the text of every runnable block (docs/README.md lists it).
LAB_REGION = "us-east-1"
SUBSTITUTIONS = [
    ("eu-west-1", LAB_REGION),          # the region the guides' production examples use -> the lab's region
    ("orders-prod", "orders-db"),       # the production instance of the examples -> playbooks/vars/example.yml's
    ("/var/lib/dbre/", "{work}/"),      # report directories and progress logs -> the test's own directory
    ("/var/log/dbre/", "{work}/"),
    ("/tmp/", "{work}/"),
]
# Lines of a runnable console block that the test's own lab stands for: it is up, and its environment is set.
LAB_LIFECYCLE = (
    re.compile(r"^make lab-up( && source \.lab/env\.sh)?$"),
    re.compile(r"^source \.lab/env\.sh$"),
    re.compile(r"^make lab-down$"),
    re.compile(r"^export ANSIBLE_COLLECTIONS_PATH=\$PWD/\.build$"),
)
# The only programs a runnable console block may run. Never `make test` or `make demo` from inside the test.
PROGRAMS = (".venv/bin/ansible-playbook",)


class _Loader(yaml.SafeLoader):
    """yaml.SafeLoader that reads Ansible's !unsafe and !vault tags as plain strings."""


_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))
_Loader.add_constructor("!vault", lambda loader, node: loader.construct_scalar(node))


def load_yaml(text: str):
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader with two scalar tags


@dataclass
class Block:
    path: pathlib.Path
    line: int                       # 1-based line of the opening fence
    lang: str
    text: str
    runnable: bool = False
    options: list = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def guide_files(repo: pathlib.Path = REPO) -> list[pathlib.Path]:
    """The documents the tests read: every guide, README.md and docs/README.md."""
    return sorted((repo / "docs" / "guides").glob("*.md")) + [repo / "README.md", repo / "docs" / "README.md"]


def blocks(path: pathlib.Path) -> list[Block]:
    """The fenced blocks of a Markdown file, with their marker (indented fences are dedented)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found, index = [], 0
    while index < len(lines):
        match = FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        start, indent, fence = index, match["indent"], match["fence"]
        end = index + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        body = textwrap.dedent("\n".join(line[len(indent):] if line.startswith(indent) else line
                                         for line in lines[start + 1:end]))
        marker = RUNNABLE.match(lines[start - 1].strip()) if start > 0 else None
        options = shlex.split(marker["options"] or "") if marker else []
        found.append(Block(path, start + 1, match["lang"].lower(), body + "\n", bool(marker), options))
        index = end + 1
    return found


def stray_markers(path: pathlib.Path) -> list[str]:
    """Runnable markers that are not right before an opening fence (they would silently mark nothing)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    problems = []
    for number, line in enumerate(lines, 1):
        if "runnable" in line and line.strip().startswith("<!--"):
            following = lines[number] if number < len(lines) else ""
            if not RUNNABLE.match(line.strip()) or not FENCE.match(following):
                problems.append(f"{path.relative_to(REPO)}:{number}: runnable marker not right before a fence")
    return problems


def substitute(text: str, work: pathlib.Path) -> str:
    for old, new in SUBSTITUTIONS:
        text = text.replace(old, new.format(work=work))
    return text


def _complete(command: str) -> bool:
    if command.endswith("\\"):
        return False
    try:
        shlex.split(command)
    except ValueError:  # an open quote: the command goes on on the next line
        return False
    return True


def console_commands(text: str) -> list[str]:
    """The commands of a console block: lines after `$ `, with backslash continuations and quoted line breaks
    joined; output lines are ignored."""
    commands, current = [], None
    for line in text.splitlines():
        if current is not None:
            current = current.rstrip("\\").rstrip() + " " + line.strip()
        elif line.startswith("$ "):
            current = line[2:].strip()
        else:
            continue
        if _complete(current):
            commands.append(current)
            current = None
    if current is not None:
        commands.append(current.rstrip("\\").rstrip())
    return [re.sub(r"\s+#[^'\"]*$", "", command).strip() for command in commands]


def is_lab_lifecycle(command: str) -> bool:
    return any(pattern.match(command) for pattern in LAB_LIFECYCLE)


def as_playbook(text: str) -> list:
    """A YAML block as a playbook: plays are kept, a list of tasks is wrapped in a play on localhost."""
    data = load_yaml(text)
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise ValueError("a runnable YAML block must be a playbook or a list of tasks")
    if all("hosts" in item or "import_playbook" in item or "ansible.builtin.import_playbook" in item for item in data):
        return data
    return [{"name": "Guide tasks", "hosts": "localhost", "connection": "local", "gather_facts": False,
             "tasks": data}]


# ------------------------------------------------------------------------------------------------ what exists


def _options(spec: dict | None, into: set) -> set:
    for name, option in (spec or {}).items():
        into.add(name)
        option = option or {}
        into.update(option.get("aliases") or [])
        _options(option.get("suboptions") or option.get("options"), into)
    return into


def _returns(spec: dict | None, into: set) -> set:
    for name, value in (spec or {}).items():
        into.add(name)
        _returns((value or {}).get("contains"), into)
    return into


def _module_strings(path: pathlib.Path) -> dict:
    """Top-level string constants of a Python file (DOCUMENTATION, RETURN) and of its classes (doc fragments)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found[target.id] = node.value.value
    return found


def _fragment(name: str) -> dict:
    """The options of a doc fragment such as dbre.rds.wait or amazon.aws.common.modules."""
    parts = name.split(".")
    if parts[:2] == ["dbre", "rds"]:
        path = REPO / "plugins" / "doc_fragments" / f"{parts[2]}.py"
    elif parts[:2] == ["amazon", "aws"]:
        import ansible_collections.amazon.aws as amazon_aws
        path = pathlib.Path(list(amazon_aws.__path__)[0]) / "plugins" / "doc_fragments" / f"{parts[2]}.py"
    else:
        return {}
    if not path.exists():
        return {}
    strings = _module_strings(path)
    text = strings.get(parts[3].upper() if len(parts) > 3 else "DOCUMENTATION", "")
    return (load_yaml(text) or {}).get("options") or {}


def module_docs(repo: pathlib.Path = REPO) -> dict:
    """{module: {"options": names, "returns": keys at any depth}} from each module's DOCUMENTATION and RETURN."""
    docs = {}
    for path in sorted((repo / "plugins" / "modules").glob("*.py")):
        if path.name.startswith("_"):
            continue
        strings = _module_strings(path)
        try:
            documentation = load_yaml(strings.get("DOCUMENTATION", "")) or {}
            returns = _returns(load_yaml(strings.get("RETURN", "")) or {}, set())
        except yaml.YAMLError as error:  # sanity's validate-modules says more; a guide naming it fails here
            docs[path.stem] = {"options": set(), "returns": set(), "error": str(error).replace("\n", " ")}
            continue
        options = _options(documentation.get("options"), set())
        for fragment in documentation.get("extends_documentation_fragment") or []:
            _options(_fragment(fragment), options)
        docs[path.stem] = {"options": options, "returns": returns}
    return docs


def role_variables(repo: pathlib.Path = REPO) -> dict:
    """{role: names} of every entry point's options (and their suboptions) in meta/argument_specs.yml."""
    roles = {}
    for path in sorted((repo / "roles").glob("*/meta/argument_specs.yml")):
        specs = (load_yaml(path.read_text(encoding="utf-8")) or {}).get("argument_specs") or {}
        top, nested = set(), set()
        for entry in specs.values():
            top.update((entry.get("options") or {}).keys())
            _options(entry.get("options"), nested)
        roles[path.parent.parent.name] = {"variables": top, "names": nested}
    return roles


EXAMPLE = REPO / "playbooks" / "vars" / "example.yml"
COMMENTED_KEY = re.compile(r"^#\s*([a-z][a-z0-9_]*):")


def example_variables(path: pathlib.Path = EXAMPLE) -> set:
    """Variables playbooks/vars/example.yml sets, or documents as a commented-out `# name: value` line."""
    text = path.read_text(encoding="utf-8")
    names = set((load_yaml(text) or {}).keys())
    names.update(match[1] for match in map(COMMENTED_KEY.match, text.splitlines()) if match)
    return names


JINJA = re.compile(r"{{(.*?)}}|{%(.*?)%}", re.S)
NAME = re.compile(r"(?<![\w.'\"])([a-z_][a-z0-9_]*)\b")
PLAYBOOK_VARIABLE = re.compile(r"^(dbre_rds|rds_provision|rds_users|rds_monitoring)_[a-z0-9_]+$")


def _expressions(node, into: list):
    """Jinja expressions of a parsed playbook: templated strings, and bare `when`/`that` conditions."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("when", "that", "changed_when", "failed_when", "until") and not isinstance(value, dict):
                into.extend(value if isinstance(value, list) else [value])
            else:
                _expressions(value, into)
    elif isinstance(node, list):
        for item in node:
            _expressions(item, into)
    elif isinstance(node, str):
        into.extend(a or b for a, b in JINJA.findall(node))
    return into


def _set_names(node, into: set):
    """Names a playbook sets itself: set_fact keys, register, play and task vars, loop_var."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("ansible.builtin.set_fact", "set_fact", "vars") and isinstance(value, dict):
                into.update(value)
            elif key in ("register", "loop_var") and isinstance(value, str):
                into.add(value)
            _set_names(value, into)
    elif isinstance(node, list):
        for item in node:
            _set_names(item, into)
    return into


def playbook_variables(repo: pathlib.Path = REPO) -> set:
    """The collection's variables (dbre_rds_*, rds_provision_*, ...) that playbooks/*.yml and tasks/ read
    without setting them themselves (the demo and AWX playbooks are not the collection's)."""
    paths = sorted((repo / "playbooks").glob("*.yml")) + sorted((repo / "playbooks" / "tasks").glob("*.yml"))
    paths += sorted((repo / "playbooks" / "templates").glob("*.j2"))
    read, set_here = set(), set()
    for path in paths:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".j2":
            expressions = [a or b for a, b in JINJA.findall(text)]
        else:
            data = load_yaml(text)
            expressions = _expressions(data, [])
            _set_names(data, set_here)
        for expression in expressions:
            read.update(name for name in NAME.findall(str(expression)) if PLAYBOOK_VARIABLE.match(name))
    return read - set_here


def documented_variable(name: str, example: set, roles: dict) -> bool:
    """A variable is documented when example.yml names it, or when it is a role variable (roles document theirs
    in meta/argument_specs.yml and example.yml points there)."""
    return name in example or any(name in role["variables"] for role in roles.values())


# ------------------------------------------------------------------------------------------------ what guides name


BACKTICK = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
PATH = re.compile(r"^(?:\.\./)*(?:docs|playbooks|roles|plugins|tests|benchmarks|meta|collections|extensions|changelogs)"
                  r"/[\w./-]*[\w]$|^(?:galaxy\.yml|requirements\.txt|bindep\.txt|Makefile)$")


def prose(path: pathlib.Path) -> str:
    """The text of a Markdown file outside its fenced blocks."""
    out, inside = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        match = FENCE.match(line)
        if match and inside is None:
            inside = match["fence"]
            continue
        if inside is not None:
            if line.strip() == inside:
                inside = None
            continue
        out.append(line)
    return "\n".join(out)


def backticked(path: pathlib.Path) -> list[str]:
    return BACKTICK.findall(prose(path))


def named_paths(path: pathlib.Path) -> list[str]:
    """Repository paths a document names: in backticks, as Markdown links, and in its console commands."""
    text = path.read_text(encoding="utf-8")
    found = [token for token in BACKTICK.findall(prose(path)) if PATH.match(token)]
    found += [link for link in re.findall(r"\]\(([^)#\s]+)", text) if not re.match(r"^[a-z]+:", link)]
    for block in blocks(path):
        if block.lang in ("console", "shell", "bash", "sh"):
            for command in console_commands(block.text):
                found += [word.lstrip("@") for word in shlex.split(command, posix=True)
                          if PATH.match(word.lstrip("@"))]
    return found


def resolve(document: pathlib.Path, named: str) -> pathlib.Path:
    """Links resolve from the document's directory, paths in backticks and commands from the repository root."""
    relative = (document.parent / named)
    return relative if named.startswith("..") or relative.exists() else REPO / named


def extra_vars(path: pathlib.Path) -> list[tuple[str, str]]:
    """(name, command) of every `-e name=value` in a document's console commands and backticks."""
    found = []
    texts = [command for block in blocks(path) if block.lang in ("console", "shell", "bash", "sh")
             for command in console_commands(block.text)]
    texts += [token for token in backticked(path) if "ansible-playbook" in token]
    for text in texts:
        found += [(name, text) for name in re.findall(r"(?:^|\s)-e\s+([a-z_][a-z0-9_]*)=", text)]
    return found


def task_uses(block: Block) -> list[tuple[str, str, dict]]:
    """(kind, name, arguments) of every dbre.rds module task and dbre.rds role in a YAML block (indented
    fragments included); ('extra_data', '', vars) for AWX schedules' extra_data."""
    try:
        data = load_yaml(block.text)
    except yaml.YAMLError:
        return []
    found = []

    def walk(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(key, str) and key.startswith("dbre.rds.") and isinstance(value, dict):
                    found.append(("module", key.split(".")[2], value))
                elif key == "role" and isinstance(value, str) and value.startswith("dbre.rds.") \
                        and isinstance(node.get("vars"), dict):
                    found.append(("role", value.split(".")[2], node["vars"]))
                elif key == "extra_data" and isinstance(value, dict):
                    found.append(("extra_data", "", value))
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)
    walk(data)
    return found


def registered_uses(block: Block) -> list[tuple[str, str, list[str]]]:
    """(module, register name, attribute chains read from it in the same block) for dbre.rds module tasks."""
    try:
        data = load_yaml(block.text)
    except yaml.YAMLError:
        return []
    registered = {}

    def walk(node):
        if isinstance(node, dict):
            module = next((key.split(".")[2] for key in node if isinstance(key, str) and key.startswith("dbre.rds.")),
                          None)
            if module and isinstance(node.get("register"), str):
                registered[node["register"]] = module
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)
    walk(data)
    found = []
    for name, module in registered.items():
        chains = re.findall(rf"(?<![\w.]){re.escape(name)}((?:\.[a-z_][a-z0-9_]*)+)", block.text)
        found.append((module, name, [chain.lstrip(".").split(".") for chain in chains]))
    return found

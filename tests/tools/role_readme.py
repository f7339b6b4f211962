# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write a role's README.md from its meta/argument_specs.yml, so the README lists every variable with its default.

Usage: ``python tests/tools/role_readme.py roles/<role>`` writes ``roles/<role>/README.md``;
``--check`` only reports (exit 1) when the README is not what the spec gives.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys

import yaml

MARKUP = re.compile(r"\b([CIOVMRE]V?)\(([^)]*)\)")


def plain(text):
    """Ansible doc markup (C(), O(), V(), M(), RV()) as Markdown code spans."""
    return MARKUP.sub(lambda match: f"`{match.group(2).split('#module:')[-1]}`", str(text))


def sentences(description):
    if isinstance(description, list):
        return " ".join(plain(line) for line in description)
    return plain(description or "")


def cell(value):
    return str(value).replace("|", "\\|").replace("\n", " ")


def default_text(spec):
    if "default" not in spec:
        return "required" if spec.get("required") else "—"
    return f"`{yaml.safe_dump(spec['default'], default_flow_style=True, width=1000).strip().removesuffix('...').strip()}`"


def type_text(spec):
    kind = spec.get("type", "str")
    if spec.get("elements"):
        kind = f"list of {spec['elements']}"
    if spec.get("choices"):
        kind += " (" + ", ".join(f"`{choice}`" for choice in spec["choices"]) + ")"
    if spec.get("no_log"):
        kind += ", secret"
    return kind


def rows(options, prefix=""):
    for name, spec in options.items():
        full = f"{prefix}{name}"
        yield f"| `{full}` | {cell(type_text(spec))} | {cell(default_text(spec))} | {cell(sentences(spec.get('description')))} |"
        if spec.get("options"):
            sub_prefix = f"{full}[]." if spec.get("type") == "list" else f"{full}."
            yield from rows(spec["options"], sub_prefix)


def render(role_dir):
    role_dir = pathlib.Path(role_dir)
    specs = yaml.safe_load((role_dir / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    main = specs.get("main", {})
    lines = [
        f"# dbre.rds.{role_dir.name}",
        "",
        "<!-- Generated from meta/argument_specs.yml by tests/tools/role_readme.py: edit the spec, then run",
        f"     python tests/tools/role_readme.py roles/{role_dir.name} -->",
        "",
        plain(main.get("short_description", "")),
        "",
    ]
    for paragraph in main.get("description") or []:
        lines += [plain(paragraph), ""]
    guides = sorted((role_dir.parent.parent / "docs" / "guides").glob("*.md"))
    for guide in guides:
        if f"dbre.rds.{role_dir.name}`" in guide.read_text().split("\n", 1)[0]:
            lines += [f"A walk-through with examples: [docs/guides/{guide.name}](../../docs/guides/{guide.name}).", ""]
    for entry_point, spec in specs.items():
        lines += [f"## Entry point `{entry_point}`", ""]
        if entry_point != "main":
            lines += [sentences(spec.get("short_description")), ""]
            for paragraph in spec.get("description") or []:
                lines += [plain(paragraph), ""]
        lines += ["| Variable | Type | Default | Description |", "| --- | --- | --- | --- |"]
        lines += list(rows(spec.get("options") or {}))
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role_dir")
    parser.add_argument("--check", action="store_true", help="exit 1 when README.md is not current")
    args = parser.parse_args(argv)
    readme = pathlib.Path(args.role_dir) / "README.md"
    text = render(args.role_dir)
    if args.check:
        current = readme.read_text() if readme.exists() else ""
        if current != text:
            print(f"{readme} is not current: run python tests/tools/role_readme.py {args.role_dir}")
            return 1
        return 0
    readme.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())

# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection builds into a tarball that installs into an empty collections path and documents its modules, and
the execution environment definition makes a build context that holds it and every requirement."""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml
from packaging.specifiers import SpecifierSet

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent


def run(args, **kwargs):
    kwargs.setdefault("cwd", ROOT)
    done = subprocess.run([str(BIN / args[0])] + args[1:], capture_output=True, text=True, check=False, timeout=300,
                          **kwargs)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    """The collection's tarball, as `make build` makes it (once for the file)."""
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    out = tmp_path_factory.mktemp("dist")
    run(["ansible-galaxy", "collection", "build", "--force", "--output-path", str(out)])
    return out / f"dbre-rds-{galaxy['version']}.tar.gz"


def test_build_install_and_document(tarball, tmp_path):
    assert tarball.name == "dbre-rds-0.1.0.tar.gz"

    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert "MANIFEST.json" in names and "meta/runtime.yml" in names
    leaked = [n for n in names if n.split("/")[0].startswith((".venv", ".lab", ".build")) or "__pycache__" in n]
    assert leaked == []

    collections = tmp_path / "collections"
    collections.mkdir()
    # only the empty path (and the dependencies that ship with ansible), not the checkout's .build link
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(collections))
    run(["ansible-galaxy", "collection", "install", str(tarball), "-p", str(collections)], env=env)
    installed = collections / "ansible_collections" / "dbre" / "rds"
    assert (installed / "MANIFEST.json").exists()

    listed = run(["ansible-doc", "-t", "module", "-l", "dbre.rds", "--json"], env=env).stdout
    modules = sorted(yaml.safe_load(listed))
    expected = sorted(f"dbre.rds.{p.stem}" for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
    assert modules == expected and modules


def test_action_group_lists_every_module_and_extends_amazon_aws():
    runtime = yaml.safe_load((ROOT / "meta" / "runtime.yml").read_text())
    group = runtime["action_groups"]["rds"]
    metadata = [entry for entry in group if isinstance(entry, dict)]
    members = sorted(entry for entry in group if isinstance(entry, str))
    assert metadata == [{"metadata": {"extend_group": ["amazon.aws.aws"]}}]
    assert members == sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__")


def requirement_lines(path):
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def test_the_execution_environment_context_holds_the_collection_and_every_requirement(tarball, tmp_path):
    """`ansible-builder create` on meta/execution-environment.yml, its paths as they are (relative to meta/), with
    the tarball where `make build` puts it; then the galaxy stage's install of dbre.rds, offline, from the context."""
    checkout = tmp_path / "checkout"
    (checkout / "meta").mkdir(parents=True)
    for name in ("meta/execution-environment.yml", "meta/ee-requirements.yml", "requirements.txt", "bindep.txt"):
        shutil.copy(ROOT / name, checkout / name)
    (checkout / ".build" / "dist").mkdir(parents=True)
    shutil.copy(tarball, checkout / ".build" / "dist" / tarball.name)
    context = tmp_path / "context"
    created = run(["ansible-builder", "create", "-f", str(checkout / "meta" / "execution-environment.yml"),
                   "-c", str(context), "--output-filename", "Containerfile"], cwd=checkout)
    assert "No matches" not in created.stdout + created.stderr
    build = context / "_build"

    assert (build / "collections" / tarball.name).read_bytes() == tarball.read_bytes()
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    collections = yaml.safe_load((build / "requirements.yml").read_text())["collections"]
    assert collections[0] == {"name": f"collections/{tarball.name}", "type": "file"}
    assert {entry["name"]: entry["version"] for entry in collections[1:]} == galaxy["dependencies"]
    assert requirement_lines(build / "requirements.txt") == requirement_lines(ROOT / "requirements.txt")
    assert requirement_lines(build / "bindep.txt") == requirement_lines(ROOT / "bindep.txt")

    containerfile = (context / "Containerfile").read_text()
    core = yaml.safe_load((ROOT / "meta" / "execution-environment.yml").read_text())["dependencies"]["ansible_core"]
    tested = next(line.split("==")[1] for line in requirement_lines(ROOT / "tests" / "requirements-dev.txt")
                  if line.startswith("ansible-core=="))
    assert tested in SpecifierSet(core["package_pip"].split("ansible-core", 1)[1])
    assert f'ANSIBLE_INSTALL_REFS="{core["package_pip"]} ansible-runner"' in containerfile
    assert "COPY _build /build\nWORKDIR /build" in containerfile
    assert 'ansible-galaxy collection install $ANSIBLE_GALAXY_CLI_COLLECTION_OPTS -r requirements.yml' in containerfile

    # What the galaxy stage runs in /build, for the tarball entry alone (the others come from Galaxy, online).
    (build / "offline.yml").write_text(yaml.safe_dump({"collections": collections[:1]}))
    installed = tmp_path / "installed"
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(installed))
    run(["ansible-galaxy", "collection", "install", "--no-deps", "-r", "offline.yml", "-p", str(installed)],
        cwd=build, env=env)
    manifest = json.loads((installed / "ansible_collections" / "dbre" / "rds" / "MANIFEST.json").read_text())
    assert manifest["collection_info"]["version"] == galaxy["version"]

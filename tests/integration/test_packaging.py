# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection builds into a tarball that installs into an empty collections path and documents its modules."""

import os
import pathlib
import subprocess
import sys
import tarfile

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent


def run(args, **kwargs):
    return subprocess.run([str(BIN / args[0])] + args[1:], cwd=ROOT, capture_output=True, text=True, check=True,
                          timeout=300, **kwargs)


def test_build_install_and_document(tmp_path):
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    run(["ansible-galaxy", "collection", "build", "--force", "--output-path", str(tmp_path)])
    tarball = tmp_path / f"dbre-rds-{galaxy['version']}.tar.gz"
    assert tarball.name == "dbre-rds-0.1.0.tar.gz"

    with tarfile.open(tarball) as archive:
        names = archive.getnames()
    assert "MANIFEST.json" in names and "meta/runtime.yml" in names
    leaked = [n for n in names if n.split("/")[0] in (".venv", ".lab", ".build") or "__pycache__" in n]
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

# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build ``dbre-rds-lab`` from this repository's tests/lab without moving it.

The lab's modules import each other as ``tests.lab.*`` and load two of the collection's module_utils from
``plugins/module_utils``: the wheel keeps that layout under ``dbre_rds_lab/tree/`` and ``dbre_rds_lab.cli`` puts
that folder first on ``sys.path``. In a checkout the tree is copied from the repository; in an sdist it is already
inside the package (the sdist carries the copy), so a wheel builds from either.
"""

import pathlib
import re
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
PACKED_TREE = HERE / "dbre_rds_lab" / "tree"
# What the lab needs at run time: its code and data, not its tests, fixtures or proof scripts.
LAB_GLOBS = ("tests/__init__.py", "tests/lab/*.py", "tests/lab/fidelity/*.py", "tests/lab/data/*.json",
             "tests/lab/rds_hooks.c")
LEFT_OUT = ("test_*.py", "fixtures.py", "prove_fidelity.py")


def shared_module_utils(root: pathlib.Path):
    """The collection's module_utils tests/lab/collection.py loads (``_load("<name>")``): the lab's tables."""
    names = set(re.findall(r"""_load\(["'](\w+)["']\)""", (root / "tests" / "lab" / "collection.py").read_text()))
    return [f"plugins/module_utils/{name}.py" for name in sorted(names)]


def source_tree() -> pathlib.Path:
    if (REPO / "galaxy.yml").exists() and (REPO / "tests" / "lab" / "__main__.py").exists():
        return REPO
    if (PACKED_TREE / "tests" / "lab" / "__main__.py").exists():
        return PACKED_TREE
    raise RuntimeError("dbre-rds-lab builds from a checkout of dbre.rds (lab/ beside tests/lab) or from its sdist")


def lab_files(root: pathlib.Path):
    for pattern in LAB_GLOBS + tuple(shared_module_utils(root)):
        for path in sorted(root.glob(pattern)):
            if not any(path.match(name) for name in LEFT_OUT):
                yield path.relative_to(root)


def copy_tree(destination: pathlib.Path) -> None:
    root = source_tree()
    files = list(lab_files(root))
    if not any(str(path) == "tests/lab/__main__.py" for path in files):
        raise RuntimeError(f"no lab found under {root}")
    for relative in files:
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / relative, target)


def collection_version() -> str:
    galaxy = REPO / "galaxy.yml"
    if galaxy.exists():
        return re.search(r"^version:\s*['\"]?([^'\"\s]+)", galaxy.read_text(), re.MULTILINE).group(1)
    return re.search(r"^Version:\s*(\S+)", (HERE / "PKG-INFO").read_text(), re.MULTILINE).group(1)


class BuildPyWithLab(build_py):
    def run(self):
        super().run()
        copy_tree(pathlib.Path(self.build_lib) / "dbre_rds_lab" / "tree")


class SdistWithLab(sdist):
    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        copy_tree(pathlib.Path(base_dir) / "dbre_rds_lab" / "tree")


setup(
    version=collection_version(),
    packages=["dbre_rds_lab"],
    cmdclass={"build_py": BuildPyWithLab, "sdist": SdistWithLab},
)

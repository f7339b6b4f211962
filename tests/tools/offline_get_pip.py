# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write a stand-in for ansible-test's get-pip bootstrap script, so `ansible-test sanity` needs no internet.

ansible-test bootstraps pip into each of its virtual environments with a get-pip script that it downloads from a
host outside the package registries. This writes, into ansible-test's cache folder, a script that installs the same
pip version from a wheel taken from the package registry instead.
"""

import pathlib
import re
import subprocess
import sys

STAND_IN = '''"""Stand-in for get-pip: installs pip from a local wheel (written by dbre.rds tests/tools/offline_get_pip.py)."""
import glob
import sys

WHEEL_DIR = {wheel_dir!r}
wheel = glob.glob(WHEEL_DIR + "/pip-{version}-*.whl")[0]
sys.path.insert(0, wheel)
from pip._internal.cli.main import main  # noqa: E402

# get-pip's own flags (it installs neither setuptools nor wheel here anyway)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--no-index", "--find-links", WHEEL_DIR] + args))
'''


def ansible_test_pip_version():
    import ansible_test

    source = pathlib.Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
    match = re.search(r"pip='([0-9.]+)'", source.read_text())
    if not match:
        sys.exit(f"cannot find the pip version ansible-test bootstraps in {source}")
    return match.group(1)


def main():
    version = ansible_test_pip_version()
    cache = pathlib.Path.home() / ".ansible" / "test" / "cache"
    wheel_dir = cache / "wheels"
    target = cache / f"get_pip_{version.replace('.', '_')}.py"
    if not list(wheel_dir.glob(f"pip-{version}-*.whl")):
        wheel_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
             "-d", str(wheel_dir), f"pip=={version}"],
            check=True,
        )
    target.write_text(STAND_IN.format(wheel_dir=str(wheel_dir), version=version))
    print(f"ansible-test get-pip stand-in for pip {version}: {target}")


if __name__ == "__main__":
    main()

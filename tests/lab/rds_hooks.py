# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build ``rds_hooks.so`` (tests/lab/rds_hooks.c) once per source and PostgreSQL version.

The library lets members of rds_superuser manage subscriptions and FOR ALL TABLES publications, as RDS does (see
the C file). It is compiled with gcc against ``pg_config --includedir-server`` (Debian's postgresql-server-dev-15)
into the directory every lab on the machine shares (``$TMPDIR/dbre-rds-lab``, beside the initdb template), named
by a digest of the source and the server version, and loaded with an absolute path in shared_preload_libraries.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

SOURCE = Path(__file__).with_name("rds_hooks.c")
_lock = threading.Lock()


class RdsHooksBuildError(RuntimeError):
    """The library could not be built; the message names what to install."""


def _pg_config(pg_bin: Path, flag: str) -> str:
    return subprocess.run([str(pg_bin / "pg_config"), flag], check=True, capture_output=True, text=True,
                          timeout=30).stdout.strip()


def library_path(pg_bin: Path) -> Path:
    """The absolute path of the built library, building it first when this source and server have none yet."""
    version = _pg_config(pg_bin, "--version")
    include = Path(_pg_config(pg_bin, "--includedir-server"))
    digest = hashlib.sha256(SOURCE.read_bytes() + version.encode()).hexdigest()[:12]
    shared = Path(tempfile.gettempdir()) / "dbre-rds-lab"
    target = shared / f"rds_hooks-{digest}.so"
    with _lock:
        if target.exists():
            return target
        if not (include / "postgres.h").exists():
            raise RdsHooksBuildError(
                f"the lab builds tests/lab/rds_hooks.c against the PostgreSQL server headers, and {include}/postgres.h "
                "is missing: install the Debian package postgresql-server-dev-15 (make system-packages)")
        compiler = shutil.which(os.environ.get("CC", "gcc"))
        if compiler is None:
            raise RdsHooksBuildError("the lab builds tests/lab/rds_hooks.c with gcc, which is missing: install the "
                                     "Debian package gcc (postgresql-server-dev-15 pulls it in)")
        shared.mkdir(parents=True, exist_ok=True)
        os.chmod(shared, os.stat(shared).st_mode | 0o755)
        fd, staging = tempfile.mkstemp(prefix=".rds_hooks.", suffix=".so", dir=shared)
        os.close(fd)
        try:
            command = [compiler, "-shared", "-fPIC", "-O2", "-Wall", "-Werror=implicit-function-declaration",
                       "-I", str(include), "-o", staging, str(SOURCE)]
            proc = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
            if proc.returncode != 0:
                raise RdsHooksBuildError(f"compiling tests/lab/rds_hooks.c failed:\n{proc.stderr.strip()}")
            os.chmod(staging, 0o755)
            os.replace(staging, target)
        finally:
            if os.path.exists(staging):
                os.unlink(staging)
    return target

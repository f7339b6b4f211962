# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pytest fixtures for the lab: ``lab`` (session) and ``lab_clean`` (per test).

The lab runs as a separate process, so its moto patches never leak into tests that use moto in-process.
``LAB_FIDELITY=off`` starts plain moto instead: the behaviour tests then fail, which is how they show the gap.
``LAB_URL`` (with ``LAB_REUSE=1``) points the fixture at a lab that is already up instead of starting one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.lab.__main__ import lab_env, start_daemon, stop_daemon
from tests.lab.control import LabControl


@dataclass
class Lab:
    endpoint_url: str
    env: dict = field(default_factory=dict)
    control: LabControl | None = None
    fidelity: bool = True
    state_dir: Path | None = None

    def client(self, service: str = "rds", region: str = "us-east-1", **kwargs):
        """A boto3 client pointed at the lab (standard retry mode, few attempts: tests stay fast), in ``region``."""
        import boto3
        from botocore.config import Config

        config = kwargs.pop("config", None) or Config(retries={"mode": "standard", "max_attempts": 3},
                                                      connect_timeout=5, read_timeout=120)
        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=region,
                            aws_access_key_id="testing", aws_secret_access_key="testing", config=config, **kwargs)


def _fidelity_wanted() -> bool:
    return os.environ.get("LAB_FIDELITY", "on").lower() not in ("off", "0", "false", "plain")


@pytest.fixture(scope="session")
def lab():
    """A running lab: ``.endpoint_url``, ``.env`` (for subprocesses), ``.control`` (LabControl), ``.client()``."""
    if os.environ.get("LAB_REUSE") and os.environ.get("LAB_URL"):
        url = os.environ["LAB_URL"]
        yield Lab(url, lab_env(url), LabControl(url), fidelity=LabControl(url).health().get("fidelity", True))
        return
    fidelity = _fidelity_wanted()
    state_dir = Path(tempfile.mkdtemp(prefix="dbre-rds-lab-"))
    os.chmod(state_dir, 0o755)
    process = None
    try:
        process, info = start_daemon(state_dir, fidelity=fidelity, parent_pid=os.getpid())
        url = info["url"]
        yield Lab(url, dict(os.environ, **lab_env(url, info.get("ca_cert"))), LabControl(url), fidelity=fidelity,
                  state_dir=state_dir)
    finally:
        stop_daemon(state_dir, process.pid if process else None)
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture
def lab_clean(lab):
    """The lab with no resources, faults, stuck states or calls left by an earlier test (reset before and after)."""
    lab.control.reset()
    yield lab
    lab.control.reset()


def pytest_configure(config):
    config.addinivalue_line("markers", "lab: needs the lab (moto server with fidelity patches, PostgreSQL 15)")

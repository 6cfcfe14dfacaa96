"""docs/operations.md: the settings it names exist, its roles are the sample configuration's, the
command it shows renders the committed configuration, and its per-tenant access example is the
one the tests run."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

from app.settings import VARIABLES
from deploy.nats_permissions import ROLES

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "operations.md").read_text()


def test_every_setting_it_names_is_a_setting() -> None:
    named = set(re.findall(
        r"\b(?:NATS_[A-Z_]+|INGEST_TOKEN|READ_TOKEN|READ_ACCESS|HOST|LOG_LEVEL|LOG_FORMAT|[A-Z]+_(?:RETENTION|MAX_BYTES|TTL))\b",
        DOC,
    ))
    assert {"HOST", "READ_TOKEN", "READ_ACCESS", "LOG_FORMAT"} <= named
    server_side = {f"NATS_{role.upper()}_PASSWORD" for role in ROLES}
    assert named - server_side <= VARIABLES.keys(), sorted(named - server_side - VARIABLES.keys())


def test_its_roles_are_the_configuration_s() -> None:
    table_roles = re.findall(r"^\| `([a-z]+)` \| ", DOC, re.MULTILINE)
    assert tuple(table_roles) == ROLES


def test_the_generator_command_renders_the_committed_configuration() -> None:
    (command,) = re.findall(r"^\.venv/bin/python (deploy/nats_permissions\.py .*?) > deploy/nats-accounts\.conf$",
                            DOC.replace("\\\n    ", ""), re.MULTILINE)
    rendered = subprocess.run(
        [sys.executable, *shlex.split(command)], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert rendered == (REPO / "deploy" / "nats-accounts.conf").read_text()


def test_its_retention_table_names_every_retention_setting() -> None:
    table = DOC.split("## Retention", 1)[1].split("\n\n- ", 1)[0]
    retention = {name for name in VARIABLES if name.endswith(("_RETENTION", "_MAX_BYTES", "_TTL"))}
    assert retention and retention <= set(re.findall(r"`([A-Z_]+)`", table)), retention


def test_its_per_tenant_access_example_is_the_one_the_tests_run() -> None:
    """tests/apps/tenants.py is what tests/integration/test_read_access.py and test_web_process.py
    run as READ_ACCESS; the document shows it whole."""
    section = DOC.split("### Per-tenant access", 1)[1]
    (example,) = re.findall(r"^```python\n(.*?)^```$", section, re.MULTILINE | re.DOTALL)
    assert example == (REPO / "tests" / "apps" / "tenants.py").read_text()

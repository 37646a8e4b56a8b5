"""jmap-jam (npm), run with node: bearer-token auth, batched calls with back-references, upload and
download. The journey itself is tests/interop/js/journey.mjs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .conftest import Demo

JS = Path(__file__).resolve().parent / "js"
NODE = shutil.which("node")
NPM = shutil.which("npm")

pytestmark = pytest.mark.skipif(
    NODE is None or NPM is None, reason="node and npm are needed to run the jmap-jam journey (CI has them)"
)


def _install() -> None:
    """`npm ci` from the lock file, once: later runs reuse node_modules."""
    if (JS / "node_modules" / "jmap-jam" / "package.json").exists():
        return
    assert NPM is not None
    result = subprocess.run(
        [NPM, "ci", "--prefix", str(JS), "--no-audit", "--no-fund"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_jmap_jam_journey(demo: Demo) -> None:
    _install()
    assert NODE is not None
    token = demo.token("jmap-jam")
    result = subprocess.run(
        [NODE, str(JS / "journey.mjs"), demo.session_url, token], capture_output=True, text=True, timeout=120
    )
    steps = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("ok ")]
    assert result.returncode == 0, result.stdout + result.stderr
    assert steps == [
        "session", "echo", "back-references", "download", "upload", "create", "download", "method",
    ]

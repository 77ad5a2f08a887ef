"""posthog-node (tests/node, installed with ``npm ci``): the Node client of the gateway tests,
and the oracle for PostHog calls its Python SDK lacks (``unsetPersonProperties``,
``overrideFeatureFlags``). Tests skip where Node or npm is missing or the registry cannot be
reached."""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from .support import child_env

NODE = Path(__file__).parent / "node"
#: What ``npm ci`` must have installed (an older tests/node/node_modules may lack the newest).
PACKAGES = ("@opentelemetry/exporter-logs-otlp-http", "posthog-node")


def node_modules() -> Path:
    """The packages of tests/node/package-lock.json, installed once (a skip when they cannot be)."""
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("Node.js and npm are not installed")
    modules = NODE / "node_modules"
    with open(NODE / "package.json") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)  # pytest-xdist workers: one npm at a time
        if not all((modules / name).exists() for name in PACKAGES):
            done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=str(NODE),
                                  capture_output=True, text=True, timeout=600)  # fmt: skip
            if done.returncode != 0:
                pytest.skip("npm ci failed (no registry?): %s" % done.stderr.strip()[-300:])
    return modules


def posthog_node(host: str, api_key: str, calls: List[Dict[str, Any]], tmp_path: Path,
                 options: Optional[Dict[str, Any]] = None) -> List[Any]:  # fmt: skip
    """Make ``calls`` with posthog-node against ``host``; what each returned."""
    node_modules()
    script = tmp_path / "posthog_node_calls.json"
    script.write_text(json.dumps({"options": options or {}, "calls": calls}))
    done = subprocess.run(["node", str(NODE / "posthog_node.mjs"), str(script)], capture_output=True, text=True,
                          timeout=60, env=child_env(POSTHOG_API_KEY=api_key, POSTHOG_HOST=host))  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])

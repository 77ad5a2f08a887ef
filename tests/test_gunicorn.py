"""gunicorn --preload with several workers: every operation emitted in every worker arrives.

Which workers serve is the kernel's choice (often several, sometimes one): the test
checks, for each request, that the worker that served it delivered its operations.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import requests

from .conftest import API_KEY
from .support import child_env, free_port
from .test_autoconfigure import APPS

pytest.importorskip("gunicorn")


def test_every_worker_delivers_with_preload(server, tmp_path):
    port = free_port()
    env = child_env(POSTHOG_API_KEY=API_KEY, POSTHOG_HOST=server.url, POSTHOG_OTEL_SPOOL_DIR=str(tmp_path))
    master = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--preload", "--workers", "3", "--bind", "127.0.0.1:%d" % port,
         "--graceful-timeout", "20", "wsgi_app:app"],
        cwd=str(APPS), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        served_by = {}  # request number -> pid of the worker that answered it
        deadline = time.monotonic() + 30
        served = 0
        while served < 60:
            assert time.monotonic() < deadline, "gunicorn did not serve in time"
            try:
                reply = requests.get("http://127.0.0.1:%d/?%d" % (port, served), timeout=5)
            except requests.ConnectionError:
                time.sleep(0.1)
                continue
            served_by["request-%d" % served] = reply.text
            served += 1
    finally:
        master.send_signal(signal.SIGTERM)
        stderr = master.communicate(timeout=60)[1]
    assert master.returncode == 0, stderr
    events = server.wait_for_events(120, timeout=10)
    person_updates = {e["distinct_id"]: str(e["$set"]["worker"]) for e in events if e["event"] == "$set"}
    captures = {e["distinct_id"]: str(e["properties"]["worker"]) for e in events if e["event"] == "served"}
    assert person_updates == served_by and captures == served_by
    assert len(events) == 120  # nothing twice

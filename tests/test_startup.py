"""What start-up costs is what it does: configure() imports nothing it does not need, yet what it
skipped still works when the application brings it in later."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from .conftest import API_KEY
from .support import child_env
from .test_processes import ROOT, needs_fork

LATE_MULTIPROCESSING = """
    import json, sys
    import posthog_otel as posthog

    posthog.configure()
    print(json.dumps("multiprocessing" in sys.modules), flush=True)  # configure() did not import it

    import multiprocessing  # the application brings it in afterwards

    def work(i):
        return posthog.set("child-%d" % i, {"i": i})  # no flush: children end with os._exit

    if __name__ == "__main__":
        fork = multiprocessing.get_context("fork")
        with fork.Pool(2) as pool:
            uuids = pool.map(work, range(6))
        pool.join()
        print(json.dumps(uuids), flush=True)
"""


@needs_fork
def test_multiprocessing_imported_after_configure_still_delivers_from_its_children(server, tmp_path):
    env = child_env(POSTHOG_API_KEY=API_KEY, POSTHOG_HOST=server.url, POSTHOG_OTEL_SPOOL_DIR=str(tmp_path))
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(LATE_MULTIPROCESSING)], env=env, cwd=str(ROOT),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    imported, uuids = (json.loads(line) for line in done.stdout.splitlines()[:2])
    assert imported is False
    assert None not in uuids
    assert sorted(e["uuid"] for e in server.wait_for_events(len(uuids))) == sorted(uuids)


def test_importing_the_package_and_configuring_leave_heavy_modules_alone(tmp_path):
    code = textwrap.dedent(
        """
        import sys, tempfile
        import posthog_otel
        posthog_otel.configure(api_key="%s", host="http://127.0.0.1:9", spool_dir=tempfile.mkdtemp())
        print(sorted(m for m in ("multiprocessing", "asyncio", "difflib") if m in sys.modules))
        """
        % API_KEY
    )
    done = subprocess.run([sys.executable, "-c", code], env=child_env(), cwd=str(ROOT), capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"

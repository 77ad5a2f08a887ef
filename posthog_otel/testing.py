"""Helpers for your own tests: a real local PostHog, in-process, and a real OTel pipeline.

With pytest, the ``posthog_local`` fixture is available as soon as posthog-otel is
installed (it is registered as a pytest plugin)::

    def test_signup_identifies_the_user(posthog_local):
        my_app.signup(email="jane@example.com")          # calls posthog_otel.set / alias / ...

        person = posthog_local.person("user-42")          # flushes the pipeline first
        assert person["properties"]["email"] == "jane@example.com"
        assert [e["event"] for e in posthog_local.events] == ["$create_alias", "$set"]

Outside pytest, ``with LocalPostHog() as posthog_local:`` does the same.  While it is
active it wins over every other configuration: whatever the code under test configures
(``configure(api_key=..., host=...)``, ``posthog_otel.api_key = ...``, a ``Posthog(...)``
client, a ``PostHogLogExporter`` of its own) delivers to it, never to a real project, and
``POSTHOG_HOST``/``POSTHOG_API_KEY`` point at it too.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from opentelemetry.sdk._logs import LoggerProvider

from . import _config, _emitter, _setup, _state
from ._local.server import LocalServer
from ._local.store import Store

API_KEY = "phc_posthog_otel_testing_local_key"

__all__ = ["API_KEY", "LocalPostHog", "posthog_local"]


class LocalPostHog:
    """A local PostHog server plus a pipeline that delivers the operations to it."""

    def __init__(self, db_path: Optional[Any] = None) -> None:
        self._tmp = None
        if db_path is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="posthog-otel-")
            db_path = Path(self._tmp.name) / "local.sqlite3"
        self.store = Store(db_path)
        self.server = LocalServer(self.store).start()
        self.url = self.server.url
        self.api_key = API_KEY
        self._saved_redirect = _config.REDIRECT
        _config.REDIRECT = {
            "api_key": API_KEY,
            "host": self.url,
            "spool_dir": str(Path(self.store.path).parent / "spool"),
            "handle_sigterm": False,  # the test runner's signals are not ours to change
        }
        self.logger_provider = LoggerProvider(shutdown_on_exit=False)
        self.pipeline = _setup.configure(
            api_key=API_KEY,
            host=self.url,
            logger_provider=self.logger_provider,
            schedule_delay_millis=50,
            handle_sigterm=False,  # the test runner's signals are not ours to change
            spool_dir=str(Path(self.store.path).parent / "spool"),
        )
        self._saved_env = {name: os.environ.get(name) for name in ("POSTHOG_HOST", "POSTHOG_API_KEY")}
        os.environ["POSTHOG_HOST"] = self.url
        os.environ["POSTHOG_API_KEY"] = API_KEY

    def flush(self) -> bool:
        """Deliver everything emitted so far, by every pipeline of the process (the module's, each
        ``Posthog`` client's); the queries below call this first."""
        flushed = [pipeline.flush() for pipeline in _setup.pipelines()]
        return all(flushed) if flushed else self.pipeline.flush()

    @property
    def events(self) -> List[Dict[str, Any]]:
        self.flush()
        return self.store.events()

    def persons(self) -> List[Dict[str, Any]]:
        self.flush()
        return self.store.persons()

    def person(self, distinct_id: str) -> Dict[str, Any]:
        """The person that ``distinct_id`` belongs to, after alias merges. A person that does not
        exist fails the test, saying so (``find_person`` returns None instead)."""
        found = self.find_person(distinct_id)
        if found is None:
            known = sorted({i for p in self.store.persons() for i in p.get("distinct_ids", ())})
            raise AssertionError(
                "the local PostHog has no person with distinct id %r; persons it has: %s"
                % (distinct_id, ", ".join(map(repr, known[:20])) + (" ..." if len(known) > 20 else "") or "none")
            )
        return found

    def find_person(self, distinct_id: str) -> Optional[Dict[str, Any]]:
        """The person that ``distinct_id`` belongs to, after alias merges; None if none."""
        self.flush()
        return self.store.person(distinct_id)

    def groups(self) -> List[Dict[str, Any]]:
        self.flush()
        return self.store.groups()

    def group(self, group_type: str, group_key: str) -> Optional[Dict[str, Any]]:
        self.flush()
        return self.store.group(group_type, group_key)

    def close(self) -> None:
        _config.REDIRECT = self._saved_redirect
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        current = _state.pipeline
        if current is not None:
            current.shutdown()
            _state.pipeline = None
        for pipeline in _setup.pipelines():  # the code under test's own clients, all pointed here
            if pipeline.exporter.settings.host == self.url:
                pipeline.shutdown()
        _emitter.emitter.unbind()
        self.logger_provider.shutdown()
        self.server.stop()
        self.store.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> "LocalPostHog":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


try:
    import pytest
except ImportError:  # pragma: no cover - the helpers work without pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture
    def posthog_local(tmp_path: Path) -> Iterator[LocalPostHog]:
        """A local PostHog receiving this test's operations; see the module docstring."""
        local = LocalPostHog(tmp_path / "posthog-local.sqlite3")
        try:
            yield local
        finally:
            local.close()

"""A Python exception as PostHog's SDK describes it in ``$exception_list``, read on the caller's thread.

What is read here is what cannot wait for the exporter's thread: the exception's message
(``str()`` of an object the application may change), its traceback's frames (a frame's
line moves on as soon as the caller does), and the source lines around each frame
(``linecache``, checked against the file as Python's own tracebacks are). The result is
plain data (OpenTelemetry ``AnyValue``: maps, lists, text, ints), so the record can leave
the process through any exporter, a Collector and the gateway.

The shape is PostHog's Python SDK 7.91.1's, field for field (``tests/test_exceptions_conformance.py``
compares them): the exception, its cause or context chain and its group members, depth
first, at most 50 entries; per frame ``filename`` (module-relative), ``abs_path``,
``function``, ``module``, ``lineno``, five lines of context each side, and ``in_app``
where it can be told (outside ``site-packages``/``dist-packages`` and under the working
directory: in; in those: out; otherwise left out). Paths are worked out once per file.
"""

from __future__ import annotations

import builtins
import inspect
import linecache
import os
import re
import sys
from types import FrameType, TracebackType
from typing import Any, Dict, List, Optional, Set, Tuple

from .._text import is_sendable

#: Entries of one ``$exception_list`` and group members looked at, as PostHog's SDK bounds them.
MAX_ENTRIES = 50
MAX_GROUP_MEMBERS = 1000
#: Source lines kept on each side of a frame's line, and the longest kept (in UTF-8 bytes).
CONTEXT_LINES = 5
MAX_LINE_BYTES = 1024

_GROUP: Any = getattr(builtins, "BaseExceptionGroup", None)  # Python 3.11+
_EXTERNAL = re.compile(r"[\\/](?:dist|site)-packages[\\/]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_OPTIMIZED = inspect.CO_OPTIMIZED
_HIDE = ("__traceback_hide__", "__tracebackhide__")
_HIDE_NAMES = frozenset(_HIDE)
_OWN_PACKAGE = __name__.partition(".")[0]

#: Frames of an exception that was never raised: (frame, line) from the outermost call in.
Stack = List[Tuple[FrameType, Optional[int]]]


def exception_list(
    exc_type: Any, value: BaseException, tb: Optional[TracebackType], mechanism: Optional[Dict[str, Any]] = None,
    stack: Optional[Stack] = None,
) -> List[Dict[str, Any]]:  # fmt: skip
    """``$exception_list`` of an exception: ``stack`` stands for the traceback of one never raised."""
    walk = _Walk()
    _walk(walk, exc_type, value, tb, mechanism or {}, 0, 0, None, stack)
    return walk.out


def current_stack() -> Stack:
    """The caller's stack, without this package's frames at its innermost end (as PostHog's SDK
    leaves out its own): for an exception passed to ``capture_exception`` that was never raised."""
    frames: Stack = []
    frame: Optional[FrameType] = sys._getframe(1)
    while frame is not None:
        if frames or not _is_ours(frame):
            frames.append((frame, frame.f_lineno))
        frame = frame.f_back
    frames.reverse()
    return frames


def location(tb: Optional[TracebackType], stack: Optional[Stack]) -> str:
    """Where the exception was raised (file and line of the innermost frame): the rate limit's key."""
    if stack:
        frame, line = stack[-1]
        return "%s:%s" % (frame.f_code.co_filename, line)
    last = None
    while tb is not None:
        last, tb = tb, tb.tb_next
    return "" if last is None else "%s:%s" % (last.tb_frame.f_code.co_filename, last.tb_lineno)


def type_name(exc_type: Any) -> str:
    name = getattr(exc_type, "__qualname__", None) or getattr(exc_type, "__name__", None)
    return sendable_text(name if isinstance(name, str) else str(name))


# --- the walk: PostHog's order ------------------------------------------------------------------


class _Walk:
    __slots__ = ("out", "seen", "keep", "inspected")

    def __init__(self) -> None:
        self.out: List[Dict[str, Any]] = []
        self.seen: Set[int] = set()
        self.keep: List[BaseException] = []  # ids stay unique while the walk holds the objects
        self.inspected = 0


def _walk(
    walk: _Walk, exc_type: Any, value: BaseException, tb: Optional[TracebackType], mechanism: Dict[str, Any],
    exception_id: int, parent_id: int, source: Optional[str], stack: Optional[Stack],
) -> int:  # fmt: skip
    """Append ``value``, then its cause (or context) chain, then its group's members; the next id."""
    if id(value) in walk.seen or exception_id >= MAX_ENTRIES:
        return exception_id
    walk.seen.add(id(value))
    walk.keep.append(value)
    walk.out.append(_entry(exc_type, value, tb, mechanism, exception_id, parent_id, source, stack))
    parent, exception_id = exception_id, exception_id + 1
    cause, relation = _cause(value)
    if cause is not None and exception_id < MAX_ENTRIES:
        exception_id = _walk(walk, type(cause), cause, _traceback(cause), {}, exception_id, parent, relation, None)
    if _GROUP is not None and isinstance(value, _GROUP):
        members = value.exceptions
        index = 0
        while index < len(members) and exception_id < MAX_ENTRIES and walk.inspected < MAX_GROUP_MEMBERS:
            walk.inspected += 1
            member = members[index]
            index += 1
            exception_id = _walk(
                walk, type(member), member, _traceback(member), {}, exception_id, parent, "member", None
            )
    return exception_id


def _cause(value: BaseException) -> Tuple[Optional[BaseException], str]:
    if getattr(value, "__suppress_context__", False):
        return getattr(value, "__cause__", None), "cause"
    return getattr(value, "__context__", None), "context"


def _traceback(value: BaseException) -> Optional[TracebackType]:
    return getattr(value, "__traceback__", None)


def _entry(
    exc_type: Any, value: BaseException, tb: Optional[TracebackType], given: Dict[str, Any], exception_id: int,
    parent_id: int, source: Optional[str], stack: Optional[Stack],
) -> Dict[str, Any]:  # fmt: skip
    entry: Dict[str, Any] = {
        "mechanism": _mechanism(value, given, exception_id, parent_id, source, stack is not None),
        "module": _type_module(exc_type),
        "type": type_name(exc_type),
        "value": _message(value),
    }
    frames = _frames(tb) if stack is None else [_frame(f, line) for f, line in stack if not _hidden(f)]
    if frames:
        entry["stacktrace"] = {"frames": frames, "type": "raw"}
    return entry


def _mechanism(
    value: BaseException,
    given: Dict[str, Any],
    exception_id: int,
    parent_id: int,
    source: Optional[str],
    synthetic: bool,
) -> Dict[str, Any]:
    mechanism = dict(given)
    mechanism["exception_id"] = exception_id
    errno = getattr(value, "errno", None)
    if errno is not None:
        number = errno if type(errno) in (int, float, bool) else _safe_str(errno)
        mechanism.setdefault("meta", {}).setdefault("errno", {}).setdefault("number", number)
    if source:
        mechanism["source"] = source
    if exception_id == 0:
        mechanism.setdefault("type", "generic")
        mechanism.setdefault("handled", True)
        mechanism.pop("source", None)
    else:
        mechanism["parent_id"] = parent_id
        mechanism["type"] = "chained"
        mechanism.pop("handled", None)
    mechanism.setdefault("synthetic", synthetic)
    if _GROUP is not None and isinstance(value, _GROUP):
        mechanism["is_exception_group"] = True
    return mechanism


def _type_module(exc_type: Any) -> Optional[str]:
    module = getattr(exc_type, "__module__", None)
    if module in (None, "builtins", "__builtins__"):
        return None
    return sendable_text(module if isinstance(module, str) else str(module))


def _message(value: BaseException) -> str:
    """As PostHog's SDK: a ``message`` or ``detail`` attribute (Django, DRF), else ``str()``."""
    try:
        message: Any = getattr(value, "message", "") or getattr(value, "detail", "") or value
    except Exception:  # a property that raises, or a __bool__ that does
        message = value
    return _safe_str(message)


def _safe_str(value: Any) -> str:
    try:
        text = str(value)
    except Exception:
        try:
            text = repr(value)
        except Exception:
            text = "<broken repr>"
    return sendable_text(text)


# --- frames -----------------------------------------------------------------------------------


def _frames(tb: Optional[TracebackType]) -> List[Dict[str, Any]]:
    frames = []
    checked: Set[str] = set()
    while tb is not None:
        frame = tb.tb_frame
        if not _hidden(frame):
            frames.append(_frame(frame, tb.tb_lineno, checked))
        tb = tb.tb_next
    return frames


def _hidden(frame: FrameType) -> bool:
    """``__traceback_hide__`` / ``__tracebackhide__`` set in the frame (and Sentry's own frames), as
    PostHog's SDK skips them; a function's locals are only read when it has such a name."""
    module = frame.f_globals.get("__name__")
    if isinstance(module, str) and module.startswith("sentry_sdk."):
        return True
    code = frame.f_code
    if (
        code.co_flags & _OPTIMIZED
        and _HIDE_NAMES.isdisjoint(code.co_varnames)
        and _HIDE_NAMES.isdisjoint(code.co_cellvars)
    ):
        return False
    for name in _HIDE:
        try:
            if frame.f_locals[name]:
                return True
        except Exception:
            pass
    return False


def _frame(frame: FrameType, lineno: Optional[int], checked: Optional[Set[str]] = None) -> Dict[str, Any]:
    code = frame.f_code
    path = code.co_filename
    module = frame.f_globals.get("__name__")
    if type(module) is not str:
        module = None
    filename, abs_path, in_app = _paths(module, path)
    pre, line, post = _source(path, lineno, frame.f_globals, checked) if module is not None else ([], None, [])
    data: Dict[str, Any] = {
        "platform": "python",
        "filename": filename,
        "abs_path": abs_path,
        "function": sendable_text(code.co_name) or "<unknown>",
        "module": sendable_text(module) if module is not None else None,
        "lineno": lineno,
        "pre_context": pre,
        "context_line": line,
        "post_context": post,
    }
    if in_app is not None:
        data["in_app"] = in_app
    return data


_paths_seen: Dict[Tuple[Optional[str], str], Tuple[Optional[str], Optional[str], Optional[bool]]] = {}
_project_root: List[Optional[str]] = []


def _paths(module: Optional[str], path: str) -> Tuple[Optional[str], Optional[str], Optional[bool]]:
    """(filename, abs_path, in_app) of a code file; worked out once per absolute path."""
    key = (module, path)
    found = _paths_seen.get(key)
    if found is not None:
        return found
    filename = _filename_for_module(module, path) or None
    abs_path = os.path.abspath(path) if path else None
    in_app = True if _in_app_modules and _in_app_module(module) else _in_app(abs_path)
    found = (sendable_text(filename) if filename else None, sendable_text(abs_path) if abs_path else None, in_app)
    if os.path.isabs(path):  # a relative one depends on the working directory of the moment
        if len(_paths_seen) >= 4096:
            _paths_seen.clear()
        _paths_seen[key] = found
    return found


def _filename_for_module(module: Optional[str], path: str) -> Optional[str]:
    """The path from the top package's parent (``app/views.py``), as PostHog's SDK writes it."""
    if not path or not module:
        return path
    try:
        if path.endswith(".pyc"):
            path = path[:-1]
        base = module.split(".", 1)[0]
        if base == module:
            return os.path.basename(path)
        base_path = sys.modules[base].__file__
        if not base_path:
            return path
        return path.split(base_path.rsplit(os.sep, 2)[0], 1)[-1].lstrip(os.sep)
    except Exception:
        return path


def set_project_root(path: Optional[str]) -> None:
    """PostHog's ``project_root``: frames under it are the application's own (None: the
    working directory, as by default)."""
    _project_root[:] = [os.path.abspath(path)] if path else []
    _paths_seen.clear()


def set_in_app_modules(prefixes: Any) -> None:
    """PostHog's ``in_app_modules``: frames of these modules (and their submodules) are in-app."""
    _in_app_modules[:] = [str(p) for p in prefixes or ()]
    _paths_seen.clear()


_in_app_modules: List[str] = []


def _in_app_module(module: Optional[str]) -> bool:
    return bool(module) and any(module == p or module.startswith(p + ".") for p in _in_app_modules)  # type: ignore[union-attr]


def _in_app(abs_path: Optional[str]) -> Optional[bool]:
    if abs_path is None:
        return None
    if _EXTERNAL.search(abs_path):
        return False
    root = project_root()
    if root is not None and abs_path.startswith(root):
        return True
    return None


def project_root() -> Optional[str]:
    """The working directory when the first exception was captured (PostHog's SDK: when its
    client was made): frames under it are the application's own."""
    if not _project_root:
        try:
            _project_root.append(os.getcwd())
        except OSError:
            _project_root.append(None)
    return _project_root[0]


def _source(
    path: str, lineno: Optional[int], module_globals: Dict[str, Any], checked: Optional[Set[str]]
) -> Tuple[List[str], Optional[str], List[str]]:
    """Five lines before, the line, five after; the file as it is now (``linecache``, checked
    once per file and capture, as ``traceback`` does)."""
    if not path or lineno is None or lineno < 1:
        return [], None, []
    if checked is None or path not in checked:
        linecache.checkcache(path)
        if checked is not None:
            checked.add(path)
    try:
        lines = linecache.getlines(path, module_globals)
    except Exception:  # a loader that raises
        return [], None, []
    index = lineno - 1
    if index >= len(lines):
        return [], None, []
    lower = max(0, index - CONTEXT_LINES)
    upper = min(index + 1 + CONTEXT_LINES, len(lines))
    clean = _cleaned(path, lines, lower, upper)
    return clean[lower:index], clean[index], clean[index + 1 : upper]


#: Per file, the lines ``linecache`` holds and those lines made ready to send, filled as they
#: are first needed: a hot path's frames cost a slice, not eleven strips and checks each time.
_cleaned_lines: Dict[str, Tuple[List[str], List[Any]]] = {}


def _cleaned(path: str, lines: List[str], lower: int, upper: int) -> List[Any]:
    found = _cleaned_lines.get(path)
    if found is None or found[0] is not lines:  # first seen, or linecache read the file again
        if len(_cleaned_lines) >= 512:
            _cleaned_lines.clear()
        found = (lines, [None] * len(lines))
        _cleaned_lines[path] = found
    clean = found[1]
    for number in range(lower, upper):
        if clean[number] is None:
            clean[number] = _line(lines[number])
    return clean


def _line(text: str) -> str:
    """A source line without its end; past ``MAX_LINE_BYTES`` cut to them with ``...`` (PostHog's
    SDK sends null for such a line)."""
    text = text.strip("\r\n")
    if len(text) > MAX_LINE_BYTES // 4:
        raw = text.encode("utf-8", "surrogatepass")
        if len(raw) > MAX_LINE_BYTES:
            text = raw[: MAX_LINE_BYTES - 3].decode("utf-8", "ignore") + "..."
    return sendable_text(text)


def sendable_text(text: str) -> str:
    """Text that can be sent: lone surrogates (undecodable bytes in a path or a message) become
    U+FFFD here, because an exception report is better with a replaced character than dropped."""
    if text.isascii() or is_sendable(text):
        return text
    return _SURROGATE.sub("\ufffd", text)


def _is_ours(frame: FrameType) -> bool:
    module = frame.f_globals.get("__name__") or ""
    return module == _OWN_PACKAGE or module.startswith(_OWN_PACKAGE + ".")

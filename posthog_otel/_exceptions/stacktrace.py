"""Stack trace text (``exception.stacktrace``) read back into PostHog's ``$exception_list`` entries.

OpenTelemetry carries an exception's stack as text, written by the language's own
formatter. Three formats are read: Python's (``traceback.format_exception``, chained
exceptions and 3.11 exception groups included), the JVM's (``Caused by:``) and V8's
(Node.js ``Error.stack``). Anything else returns None, and the caller keeps the text whole.

Pure: text in, entries out. Entries come outermost first, each cause after its wrapper and
each group's members after the group's own chain, as PostHog's Python SDK orders them; the
frames of an entry run from the outermost call to the innermost, as Python prints them
(JVM and V8 text is reversed into that order).
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .. import _schema as schema
from .frames import sendable_text

#: A parsed exception: its type, message, frames, and the chains of its group members.
Node = Dict[str, Any]

#: Text past this is not parsed (kept whole): a parser must not be a CPU sink for one record.
MAX_TEXT = 256 * 1024
#: Entries kept at most, as PostHog's SDK bounds its walk.
MAX_ENTRIES = 50
_EXTERNAL = re.compile(r"[\\/](?:dist|site)-packages[\\/]")

# --- Python -------------------------------------------------------------------------------------

_PY_FRAME = re.compile(r'^[ \t]*File "(?P<file>[^"]*)", line (?P<line>\d+)(?:, in (?P<func>.*))?$')
_PY_SEPARATORS = {
    "The above exception was the direct cause of the following exception:": "cause",
    "During handling of the above exception, another exception occurred:": "context",
}
_PY_HEADERS = ("Traceback (most recent call last):", "Exception Group Traceback (most recent call last):")
_PY_EXCEPTION = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?:: (?P<value>.*))?$")
_PY_GROUP = re.compile(r"^(?P<indent> *)\+ Exception Group Traceback \(most recent call last\):$")
_CARETS = re.compile(r"^[ \t]*[\^~]+[ \t]*$")


def parse(text: str) -> Optional[Tuple[str, List[Node]]]:
    """(language, chain of nodes: the outermost first) or None when the text is in no known format."""
    if not text or len(text) > MAX_TEXT:
        return None
    lines = text.splitlines()
    for language, detect, read in _FORMATS:
        if detect(text):
            try:
                chain = read(lines)
            except (ValueError, IndexError):
                chain = None
            return (language, chain) if chain else None
    return None


def _is_python(text: str) -> bool:
    return "Traceback (most recent call last):" in text or 'File "' in text


def _python(lines: List[str]) -> Optional[List[Node]]:
    """Blocks of a chain, printed root cause first, joined by the separator sentences."""
    blocks: List[List[str]] = [[]]
    relations: List[str] = []
    for line in lines:
        relation = _PY_SEPARATORS.get(line.strip()) if not line.startswith((" ", "|")) else None
        if relation is not None:
            relations.append(relation)
            blocks.append([])
        else:
            blocks[-1].append(line)
    chain = []
    for block, relation in zip(reversed(blocks), ["", *reversed(relations)]):
        node = _python_block(block)
        if node is None:
            return None
        node["relation"] = relation  # how the node before it (its wrapper) holds it
        chain.append(node)
    return chain


def _python_block(lines: List[str]) -> Optional[Node]:
    lines = [line for line in lines if line.strip()]
    if not lines:
        return None
    group = _PY_GROUP.match(lines[0])
    if group:
        return _python_group(_unindent_group(lines, len(group.group("indent"))))
    if lines[0].strip() == _PY_HEADERS[1]:
        return _python_group(lines)
    return _python_single(lines)


def _python_single(lines: List[str]) -> Optional[Node]:
    """Header, frames (each with its source line and carets), then ``Type: message`` lines."""
    frames: List[Dict[str, Any]] = []
    index = 1 if lines and lines[0].strip() in _PY_HEADERS else 0
    while index < len(lines):
        match = _PY_FRAME.match(lines[index])
        if match is None:
            if frames and lines[index].startswith("    ") and not _CARETS.match(lines[index]):
                if frames[-1]["context_line"] is None:  # the source line Python printed (stripped)
                    frames[-1]["context_line"] = lines[index].strip()
            elif not (lines[index].startswith("  ") or _CARETS.match(lines[index])):
                break
            index += 1
            continue
        frames.append(_python_frame(match))
        index += 1
    if index >= len(lines):
        return None
    head = _PY_EXCEPTION.match(lines[index].strip())
    if head is None:
        return None
    value = (
        "\n".join([head.group("value") or "", *lines[index + 1 :]])
        if index + 1 < len(lines)
        else head.group("value") or ""
    )
    module, _, name = head.group("type").rpartition(".")
    return {"type": name, "module": module or None, "value": value, "frames": frames, "members": []}


def _node(head: "re.Match[str]", relation: str) -> Node:
    """An exception of a JVM or V8 stack, from its ``Type: message`` line."""
    return {"type": head.group("type"), "module": None, "value": head.group("value") or "", "frames": [],
            "members": [], "relation": relation}  # fmt: skip


def _python_frame(match: "re.Match[str]") -> Dict[str, Any]:
    path = match.group("file")
    frame: Dict[str, Any] = {
        "platform": "python",
        "filename": path,
        "abs_path": path,
        "function": (match.group("func") or "").strip() or "<unknown>",
        "module": None,
        "lineno": int(match.group("line")),
        "pre_context": [],
        "context_line": None,
        "post_context": [],
    }
    if _EXTERNAL.search(path):
        frame["in_app"] = False
    return frame


def _unindent_group(lines: List[str], indent: int) -> List[str]:
    """A top-level group (``  + Exception Group...``, ``  | ...``) in the form members have."""
    out = []
    for line in lines:
        line = line[indent:] if line[:indent].strip() == "" else line
        out.append(line[2:] if line.startswith(("+ ", "| ")) else "" if line == "|" else line)
    return out


def _python_group(lines: List[str]) -> Optional[Node]:
    """The group's own traceback, then ``+-+--- 1 ---`` and each member two columns in, ``| ``-prefixed."""
    start = next((i for i, line in enumerate(lines) if line.startswith("+-+")), len(lines))
    node = _python_single(lines[:start])
    if node is None:
        return None
    node["group"] = True
    member: Optional[List[str]] = None
    members: List[List[str]] = []
    for line in lines[start:]:
        if line.startswith("+-+") or line.startswith("  +-") and not line.startswith("  +-+"):
            member = [] if "... " not in line else None  # "+--- ... ---": "and N more exceptions"
            if member is not None:
                members.append(member)
        elif member is not None and line.startswith("  "):
            content = line[2:]
            member.append(content[2:] if content.startswith("| ") else "" if content == "|" else content)
    for text in members:
        chain = _python(text)
        if chain:
            node["members"].append(chain)
    return node


# --- JVM (Java, Kotlin, Scala) ------------------------------------------------------------------

_JVM_FRAME = re.compile(r"^[ \t]+at (?:[\w.$-]+/)?(?P<func>[^\s(/]+)\((?P<where>[^)]*)\)[ \t]*$")
_JVM_HEAD = re.compile(r'^(?:Exception in thread "[^"]*" |Caused by: )?(?P<type>[\w$.]+)(?::\s?(?P<value>.*))?$')


def _is_jvm(text: str) -> bool:
    return re.search(r"^[ \t]+at [\w.$/-]+\([^)]*\)[ \t]*$", text, re.MULTILINE) is not None


def _jvm(lines: List[str]) -> Optional[List[Node]]:
    """``Type: message``, its frames (innermost first), then ``Caused by: ...`` for each cause."""
    chain: List[Node] = []
    node: Optional[Node] = None
    suppressed = False  # inside a "Suppressed:" block: neither this exception's frames nor a cause
    for line in lines:
        stripped = line.strip()
        frame = _JVM_FRAME.match(line)
        if not stripped or stripped.startswith("... ") and stripped.endswith(" more"):
            continue
        if frame is not None:
            if node is not None and not suppressed:
                node["frames"].append(_jvm_frame(frame))
        elif stripped.startswith("Suppressed: "):
            suppressed = True
        elif node is None or line.startswith("Caused by: "):
            head = _JVM_HEAD.match(stripped)
            if head is None:
                return None
            node = _node(head, "cause" if chain else "")
            chain.append(node)
            suppressed = False
        elif not node["frames"] and not suppressed:
            node["value"] += "\n" + line  # a message of several lines
    for node in chain:
        node["frames"].reverse()  # printed innermost first
    return chain or None


def _jvm_frame(match: "re.Match[str]") -> Dict[str, Any]:
    function = match.group("func")
    filename, _, line = match.group("where").partition(":")
    frame: Dict[str, Any] = {"platform": "custom", "lang": "java", "function": function,
                             "module": function.rpartition(".")[0] or None}  # fmt: skip
    if filename and filename not in ("Native Method", "Unknown Source"):
        frame["filename"] = filename
    if line.isdigit():
        frame["lineno"] = int(line)
    return frame


# --- V8 (Node.js) -------------------------------------------------------------------------------

_V8_CALL = re.compile(r"^[ \t]+at (?P<func>.*) \((?P<where>[^()]*)\)[ \t]*$")  # at fn (file:line:col)
_V8_BARE = re.compile(r"^[ \t]+at (?P<where>[^()\s][^()]*)$")  # at file:line:col
_V8_WHERE = re.compile(r"^(?P<file>.+):(?P<line>\d+):(?P<col>\d+)$")
_V8_HEAD = re.compile(r"^(?P<type>[\w$.]+)(?:: (?P<value>.*))?$")


def _is_v8(text: str) -> bool:
    return re.search(r"^[ \t]+at .*:\d+:\d+\)?[ \t]*$", text, re.MULTILINE) is not None


def _v8(lines: List[str]) -> Optional[List[Node]]:
    head = _V8_HEAD.match(lines[0].strip()) if lines else None
    if head is None:
        return None
    node = _node(head, "")
    for line in lines[1:]:
        call = _V8_CALL.match(line) or _V8_BARE.match(line)
        where = _V8_WHERE.match(call.group("where").rstrip()) if call else None
        if call is not None and where is not None:
            path = where.group("file")
            entry: Dict[str, Any] = {"platform": "custom", "lang": "javascript",
                                     "function": call.groupdict().get("func") or "<anonymous>", "filename": path,
                                     "lineno": int(where.group("line")), "colno": int(where.group("col"))}  # fmt: skip
            if "node_modules" in path or path.startswith("node:"):
                entry["in_app"] = False
            node["frames"].append(entry)
        elif not node["frames"] and not line.lstrip().startswith("at "):
            node["value"] += "\n" + line
    node["frames"].reverse()  # printed innermost first
    return [node]


_FORMATS = (("python", _is_python, _python), ("javascript", _is_v8, _v8), ("java", _is_jvm, _jvm))


# --- entries ------------------------------------------------------------------------------------


def entries(chain: List[Node], handled: bool) -> List[Dict[str, Any]]:
    """PostHog's ``$exception_list`` of a parsed chain, numbered in PostHog's (depth-first) order."""
    out: List[Dict[str, Any]] = []
    _emit_chain(out, chain, 0, None, "", handled)
    return out


def _emit_chain(out: List[Dict[str, Any]], chain: List[Node], index: int, parent: Optional[int], source: str,
                handled: bool) -> None:  # fmt: skip
    if index >= len(chain) or len(out) >= MAX_ENTRIES:
        return
    node = chain[index]
    own = len(out)
    mechanism: Dict[str, Any] = {"exception_id": own}
    if parent is None:
        mechanism.update(type="generic", handled=handled)
    else:
        mechanism.update(type="chained", parent_id=parent, source=source)
    mechanism["synthetic"] = False
    if node.get("group"):
        mechanism["is_exception_group"] = True
    entry: Dict[str, Any] = {
        "mechanism": mechanism,
        "module": node["module"],
        "type": node["type"],
        "value": node["value"],
    }
    if node["frames"]:
        entry["stacktrace"] = {"frames": node["frames"], "type": "raw"}
    out.append(entry)
    if index + 1 < len(chain):
        _emit_chain(out, chain, index + 1, own, chain[index + 1].get("relation") or "context", handled)
    for member in node["members"]:
        _emit_chain(out, member, 0, own, "member", handled)


# --- OTel's exception attributes -------------------------------------------------------


def exception_properties(attributes: Mapping[str, Any], handled: bool) -> Optional[Dict[str, Any]]:
    """``$exception_list`` from ``exception.type``, ``exception.message``, ``exception.stacktrace``
    (and that text whole, as ``exception.stacktrace``, when it is in no known format); None
    without a type or a message."""
    exc_type, message = _text(attributes.get(schema.EXCEPTION_TYPE)), _text(attributes.get(schema.EXCEPTION_MESSAGE))
    if not exc_type and message is None:
        return None
    text = _text(attributes.get(schema.EXCEPTION_STACKTRACE))
    parsed = parse(text) if text else None
    if parsed is None:
        entry = {"mechanism": {"exception_id": 0, "type": "generic", "handled": handled, "synthetic": False},
                 "module": None, "type": exc_type or "Error", "value": message or ""}  # fmt: skip
        properties: Dict[str, Any] = {"$exception_list": [entry]}
        if text:
            properties[schema.EXCEPTION_STACKTRACE] = text
        return properties
    language, chain = parsed
    outer = chain[0]
    full = "%s.%s" % (outer["module"], outer["type"]) if outer["module"] else outer["type"]
    if exc_type and not (full == exc_type or full.endswith("." + exc_type) or exc_type.endswith("." + full)):
        module, _, name = exc_type.rpartition(".") if language == "python" else ("", "", exc_type)
        outer["module"], outer["type"] = module or None, name
    if message is not None:
        outer["value"] = message
    return {"$exception_list": entries(chain, handled)}


def _text(value: Any) -> Optional[str]:
    if value is None:
        return None
    return sendable_text(value if isinstance(value, str) else str(value))

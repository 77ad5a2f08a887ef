"""Processes: multiprocessing children, fork with locks held, exits that PostHog never answers,
SIGKILLs among processes sharing a spool, pid 1, and a set-up without a key."""

from __future__ import annotations

import glob
import json
import os
import pathlib
import platform
import random
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections import defaultdict

import pytest

from .conftest import API_KEY
from .support import Fault, child_env

ROOT = pathlib.Path(__file__).resolve().parent.parent
#: Windows and exits are judged in seconds: one after another, on one pytest-xdist worker.
pytestmark = pytest.mark.xdist_group("timing")
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def run(script, server, spool, *args, timeout=None, exit_timeout=None, **popen):
    env = child_env(POSTHOG_API_KEY=API_KEY, POSTHOG_HOST=server.url, POSTHOG_OTEL_SPOOL_DIR=str(spool))
    if timeout is not None:
        env["POSTHOG_OTEL_TIMEOUT"] = str(timeout)
    if exit_timeout is not None:
        env["POSTHOG_OTEL_EXIT_TIMEOUT"] = str(exit_timeout)
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *map(str, args)], env=env,
                            cwd=str(ROOT), text=True, **popen)  # fmt: skip


MULTIPROCESSING = """
    import json, multiprocessing, sys
    import posthog_otel as posthog

    posthog.configure()

    def work(i):
        return posthog.set("child-%d" % i, {"i": i})  # no flush: children end with os._exit

    def in_process(queue):
        queue.put(work(100))

    if __name__ == "__main__":
        fork = multiprocessing.get_context("fork")
        queue = fork.Queue()
        child = fork.Process(target=in_process, args=(queue,))
        child.start()
        uuids = [queue.get()]
        child.join()
        pool = fork.Pool(2)
        uuids += pool.map(work, range(10))
        pool.close()
        pool.join()
        with fork.Pool(2) as pool:  # __exit__ terminates the workers: SIGTERM
            uuids += pool.map(work, range(10, 20))
        print(json.dumps(uuids), flush=True)
"""


@needs_fork
def test_multiprocessing_children_deliver_what_they_emit(server, tmp_path):
    app = run(MULTIPROCESSING, server, tmp_path, stdout=subprocess.PIPE)
    uuids = json.loads(app.stdout.readline())
    assert app.wait(timeout=60) == 0
    assert len(uuids) == 21 and None not in uuids
    events = server.wait_for_events(21, timeout=60)
    assert sorted(e["uuid"] for e in events) == sorted(uuids)


FORK_WHILE_LOCKED = """
    import os, sys, threading
    import posthog_otel as posthog
    from posthog_otel import _emit, _log

    pipeline = posthog.configure()
    posthog.set("parent", {"a": 1})
    assert pipeline.flush()
    dispatcher = pipeline.exporter._dispatcher
    held, release = threading.Event(), threading.Event()

    def hold():  # a thread of ours in the middle of its work when the fork happens
        with dispatcher._board.cond, _log._lock, dispatcher._spool.spool._lock, _emit.emitter._lock:
            held.set()
            release.wait()

    threading.Thread(target=hold, daemon=True).start()
    held.wait()
    pid = os.fork()
    if pid == 0:
        posthog.set("child", {"a": 2})
        posthog.set("child", {})  # dropped: counted, and said, under the log's lock
        ok = pipeline.flush(timeout_millis=20000) and posthog.drop_counts() == {"no_properties": 1}
        os._exit(0 if ok else 3)
    release.set()
    _, status = os.waitpid(pid, 0)
    print(os.waitstatus_to_exitcode(status), flush=True)
"""


@needs_fork
def test_a_child_forked_while_our_locks_are_held_delivers_and_exits(server, tmp_path):
    app = run(FORK_WHILE_LOCKED, server, tmp_path, stdout=subprocess.PIPE)
    assert app.stdout.readline().strip() == "0"  # the child finished (a hang never prints)
    assert app.wait(timeout=60) == 0
    assert sorted(e["distinct_id"] for e in server.wait_for_events(2)) == ["child", "parent"]


EMIT_AND_EXIT = """
    import json, sys
    import posthog_otel as posthog

    posthog.configure()
    print(json.dumps([posthog.set("user", {"n": n}) for n in range(int(sys.argv[1]))]), flush=True)
"""


def test_a_script_exits_while_posthog_never_answers_and_the_next_run_delivers(server, tmp_path):
    server.otherwise = lambda: Fault(hold=True)  # accepts the connection, never answers
    app = run(EMIT_AND_EXIT, server, tmp_path, 50, stdout=subprocess.PIPE, timeout=60, exit_timeout=120)
    uuids = json.loads(app.stdout.readline())
    # It exits although its request is still held, about a second after its last line (the
    # stall rule), well before the request's 60 s timeout, the SDK's 30 s shutdown deadline or
    # exit's budget (120 s here, so that only the stall rule can end it in time).
    assert app.wait(timeout=15) == 0
    assert server.events == []
    server.otherwise = lambda: Fault()
    assert run(EMIT_AND_EXIT, server, tmp_path, 0, stdout=subprocess.PIPE).wait(timeout=60) == 0
    assert sorted(e["uuid"] for e in server.wait_for_events(50)) == sorted(uuids)


NO_KEY = """
    import json
    import posthog_otel as posthog
    print(json.dumps([posthog.set("u", {"a": 1}), posthog.capture("u", "e"), posthog.drop_counts()]), flush=True)
"""


def test_without_a_key_under_opentelemetry_instrument_operations_are_refused_and_counted(tmp_path):
    instrument = shutil.which("opentelemetry-instrument", path=os.path.dirname(sys.executable))
    if instrument is None:
        pytest.skip("opentelemetry-instrument is not installed")
    env = child_env(OTEL_LOGS_EXPORTER="posthog", OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none")
    done = subprocess.run([instrument, sys.executable, "-c", textwrap.dedent(NO_KEY)], env=env, cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    first, second, dropped = json.loads(done.stdout.splitlines()[-1])
    assert first is None and second is None
    assert dropped == {"no_api_key": 2}
    assert "POSTHOG_API_KEY" in done.stderr


def _unshare():
    """``unshare``, able to make a PID namespace here (the test is skipped otherwise)."""
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-p", "-f", "true"], capture_output=True).returncode:
        pytest.skip("cannot make a PID namespace here")
    return unshare


PID_ONE = """
    import logging, os, sys, time
    import posthog_otel as posthog
    from posthog_otel import _sigterm

    _sigterm.SIGTERM_GRACE = 0.3  # how long its watcher would wait before ending a process (not pid 1)
    posthog.configure()
    logging.getLogger("posthog_otel").addHandler(logging.StreamHandler())  # its debug lines: what it resends
    logging.getLogger("posthog_otel").setLevel(logging.DEBUG)
    for n in range(5):
        posthog.set("user", {"n": n})
    outer = [line.split()[1] for line in open("/proc/self/status") if line.startswith("NSpid:")][0]
    print(os.getpid(), outer, flush=True)
    if sys.argv[1] == "busy":
        sum(range(50_000_000))  # in C, the signal arrives meanwhile: taken late, after a resend
    while True:
        time.sleep(0.1)
"""

#: A main thread waiting in C for ever, through signals (glibc's mutex lock retries its wait),
#: without the GIL: no handler of ours can run, only the watcher.
STUCK_IN_C = """
import ctypes, logging, os, sys
import posthog_otel as posthog
from posthog_otel import _sigterm

_sigterm.SIGTERM_GRACE = 0.3
posthog.configure()
logging.getLogger("posthog_otel").addHandler(logging.StreamHandler())  # its debug lines: what it resends
logging.getLogger("posthog_otel").setLevel(logging.DEBUG)
uuids = [posthog.set("u%d" % i, {"i": i}) for i in range(5)]
libc = ctypes.CDLL(None)
mutex = ctypes.create_string_buffer(64)  # zeroed: a default mutex
libc.pthread_mutex_lock(mutex)
print(os.getpid(), ctypes.addressof(mutex), " ".join(uuids), flush=True)
libc.pthread_mutex_lock(mutex)
"""


def _wait_until_stuck(pid, address):
    """Until the process's main thread waits in the kernel on the mutex at ``address`` (futex)."""
    deadline = time.monotonic() + 30  # a safety net
    while time.monotonic() < deadline:
        fields = pathlib.Path("/proc/%d/syscall" % pid).read_text().split()
        if fields[0] == "202" and int(fields[1], 16) == address:  # futex(&mutex, ...) on x86-64
            return
        time.sleep(0.01)
    raise AssertionError("the main thread never waited on the mutex")


stuck_in_c = pytest.mark.skipif(
    not (sys.platform.startswith("linux") and platform.machine() == "x86_64"),
    reason="glibc's pthread_mutex_lock through ctypes, seen waiting in /proc/PID/syscall (x86-64 numbers)",
)


@stuck_in_c
def test_a_main_thread_that_never_takes_sigterm_is_ended_after_the_grace_with_its_queue_delivered(server):
    app = subprocess.Popen([sys.executable, "-c", STUCK_IN_C], env=child_env(POSTHOG_API_KEY=API_KEY,
                           POSTHOG_HOST=server.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        pid, address, *uuids = app.stdout.readline().split()
        _wait_until_stuck(int(pid), int(address))
        os.kill(int(pid), signal.SIGTERM)
        _, err = app.communicate(timeout=30)  # a safety net: without the watcher, for ever
    finally:
        app.kill()
    assert app.returncode == 128 + signal.SIGTERM, err
    assert "SIGTERM was not taken by the main thread" in err
    assert sorted(e["uuid"] for e in server.events) == sorted(uuids)


@stuck_in_c
def test_pid_1_whose_main_thread_never_takes_sigterm_is_not_ended(server, tmp_path):
    unshare = _unshare()
    app = subprocess.Popen([unshare, "-p", "-f", "--kill-child", sys.executable, "-c", STUCK_IN_C], env=child_env(
        POSTHOG_API_KEY=API_KEY, POSTHOG_HOST=server.url, POSTHOG_OTEL_SPOOL_DIR=str(tmp_path)),
        cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    pid, address, *uuids = app.stdout.readline().split()
    try:
        assert pid == "1"
        outer = int(subprocess.run(["pgrep", "-P", str(app.pid)], capture_output=True, text=True).stdout.split()[0])
        _wait_until_stuck(outer, int(address))
        os.kill(outer, signal.SIGTERM)
        _line_containing(app.stderr, "sent to it again", timeout=30)
        time.sleep(1.5)  # five times the grace after which any other process is ended
        assert app.poll() is None  # as SIGTERM's default would have left it
    finally:
        app.kill()
        app.communicate(timeout=30)


@pytest.mark.parametrize("main_thread", ["sleeping", "busy"])
def test_pid_1_survives_its_own_sigterm_with_the_queue_delivered(main_thread, server, tmp_path):
    unshare = _unshare()
    env = child_env(POSTHOG_API_KEY=API_KEY, POSTHOG_HOST=server.url, POSTHOG_OTEL_SPOOL_DIR=str(tmp_path))
    app = subprocess.Popen([unshare, "-p", "-f", "--kill-child", sys.executable, "-c", textwrap.dedent(PID_ONE),
                            main_thread], env=env, cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)  # fmt: skip
    inner, outer = app.stdout.readline().split()
    try:
        assert inner == "1"
        os.kill(int(outer), signal.SIGTERM)
        assert [e["$set"]["n"] for e in server.wait_for_events(5, timeout=30)] == [0, 1, 2, 3, 4]
        said = _line_containing(app.stderr, "SIGTERM did not end this process", timeout=30)
        assert "pid 1" in said
        assert app.poll() is None  # pid 1 ignores a SIGTERM it does not handle
        if main_thread == "busy":  # taken late, after the watcher's resending: which then stops
            time.sleep(2.5)
            assert app.poll() is None
    finally:
        os.kill(int(outer), signal.SIGKILL)
        rest = app.communicate(timeout=30)[1]
    assert (said + rest).count("SIGTERM taken by the handler") == 1, said + rest  # not again for a resend


def _line_containing(stream, text, timeout):
    """All that ``stream`` said until a line containing ``text`` (read from its descriptor, so that
    nothing waits in the stream's buffer where select() cannot see it)."""
    deadline, said = time.monotonic() + timeout, b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([stream.fileno()], [], [], max(deadline - time.monotonic(), 0))
        chunk = os.read(stream.fileno(), 65536) if ready else b""
        said += chunk
        if any(text in line for line in said.decode(errors="replace").splitlines()[: said.count(b"\n")]):
            return said.decode(errors="replace")
        if ready and not chunk:
            break  # the stream closed
    raise AssertionError("no line containing %r in %r" % (text, said))


# --- four processes sharing a spool, killed at random --------------------------------------

PRODUCER = """
    import os, sys, time
    import posthog_otel as posthog

    name, log_path, rate = sys.argv[1], sys.argv[2], float(sys.argv[3])
    posthog.configure(schedule_delay_millis=200)
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    print("started", flush=True)
    n = 0
    started = time.monotonic()
    while not os.path.exists(sys.argv[4]):
        uuid = posthog.set("%s-%d" % (name, n % 5), {"n": n})
        os.write(log, ("%s %.4f\\n" % (uuid, time.monotonic())).encode())  # unbuffered: survives SIGKILL
        n += 1
        time.sleep(max(0.0, started + n / rate - time.monotonic()))
"""
SPOOL_AFTER = 1.0
SCHEDULE_DELAY = 0.2
#: What a SIGKILL may lose: the SDK's delay plus the hand-off's spool_after, and scheduling slack.
WINDOW = SCHEDULE_DELAY + SPOOL_AFTER + 1.0


@pytest.mark.slow
def test_four_processes_sharing_a_spool_lose_only_what_sigkill_can_reach(server, tmp_path):
    chance = random.Random(7)
    spool, logs, stop = tmp_path / "spool", tmp_path / "logs", tmp_path / "stop"
    logs.mkdir()
    server.fail_randomly(0.3, Fault(drop_connection=True), seed=3)
    started = {}
    killed = defaultdict(list)  # log file -> monotonic kill times

    def start(slot, generation):
        log = logs / ("p%d-%d.log" % (slot, generation))
        process = run(PRODUCER, server, spool, "p%d-%d" % (slot, generation), log, 150, stop, stdout=subprocess.PIPE)
        assert process.stdout.readline().strip() == "started"
        started[slot] = (process, log, generation)

    for slot in range(4):
        start(slot, 0)
    begin = time.monotonic()
    while time.monotonic() - begin < 12:
        time.sleep(chance.uniform(0.5, 1.5))
        if chance.random() < 0.5:  # PostHog goes down for a while, or comes back
            server.otherwise = lambda: Fault(drop_connection=True)
        else:
            server.fail_randomly(0.3, Fault(drop_connection=True), seed=chance.randrange(1000))
        slot = chance.randrange(4)
        process, log, generation = started[slot]
        process.kill()
        killed[log].append(time.monotonic())
        process.wait()
        start(slot, generation + 1)
    server.otherwise = lambda: Fault()
    stop.write_text("")
    for process, _, _ in started.values():
        assert process.wait(timeout=60) == 0
    drain = run(EMIT_AND_EXIT, server, spool, 0, stdout=subprocess.PIPE)
    assert drain.wait(timeout=60) == 0

    emitted = {}
    for log in logs.iterdir():
        for line in log.read_text().splitlines():
            uuid, at = line.split()
            emitted[uuid] = (log, float(at))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not set(emitted) <= {e["uuid"] for e in server.events}:
        lost = set(emitted) - {e["uuid"] for e in server.events}
        if all(any(0 <= kill - emitted[u][1] <= WINDOW for kill in killed[emitted[u][0]]) for u in lost):
            break  # what is left was within reach of a SIGKILL: nothing more will come
        time.sleep(0.5)
    arrived = [e["uuid"] for e in server.events]
    assert set(arrived) <= set(emitted), "an event nobody emitted"
    lost = set(emitted) - set(arrived)
    outside = [u for u in lost if not any(0 <= kill - emitted[u][1] <= WINDOW for kill in killed[emitted[u][0]])]
    assert not outside, "%d of %d lost outside a SIGKILL window" % (len(outside), len(emitted))
    assert len(emitted) > 4000 and len(killed) >= 5
    leftovers = [n for d in spool.iterdir() for n in os.listdir(d) if n.endswith((".json", ".claimed"))]
    assert leftovers == [], "the spool still holds %s" % leftovers


SIGNAL_MASKS = r"""
import json, os, sys, threading
import posthog_otel as posthog

pipeline = posthog.configure(api_key=sys.argv[1], host=sys.argv[2])
posthog.set("u", {"n": 1})
pipeline.flush()

def masks():
    blocked = {}
    for thread in threading.enumerate():
        tid = threading.get_native_id() if thread is threading.current_thread() else thread.native_id
        with open("/proc/self/task/%d/status" % tid) as status:
            line = next(l for l in status if l.startswith("SigBlk:"))
        blocked[thread.name.split("-")[0] if thread.name.startswith("posthog") else thread.name] = bool(
            int(line.split()[1], 16) & (1 << (15 - 1)))  # SIGTERM is 15
    return blocked

mine = masks()
child = os.fork()
if child == 0:  # the SDK starts its worker again here; ours start on demand
    posthog.set("u", {"n": 2})
    pipeline.flush()
    print(json.dumps({"child": masks()}), flush=True)
    os._exit(0)
os.waitpid(child, 0)
print(json.dumps({"parent": mine}), flush=True)
"""


@pytest.mark.skipif(not pathlib.Path("/proc/self/task").is_dir(), reason="reads thread signal masks from /proc (Linux)")
def test_sigterm_goes_to_the_main_thread_not_to_our_threads_or_the_sdks(server):
    # A SIGTERM handed to a background thread only sets a flag for the main thread's handler; a
    # main thread blocked in C (a pool worker waiting on a dead sibling's lock) would never run it.
    out = subprocess.run([sys.executable, "-c", SIGNAL_MASKS, API_KEY, server.url], env=child_env(),
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    seen = {key: value for line in out.stdout.splitlines() for key, value in json.loads(line).items()}
    for process in ("parent", "child"):
        masks = seen[process]
        assert masks["MainThread"] is False, (process, masks)
        assert masks["OtelBatchLogRecordProcessor"] is True, (process, masks)
        assert masks["posthog"] is True, (process, masks)


SIGTERM_NOTED_NOT_RUN = """
import os, signal, sys, threading, time
import posthog_otel as posthog

posthog.configure()
print(" ".join(posthog.set("u%d" % i, {"i": i}) for i in range(5)), flush=True)
main = threading.main_thread().native_id

def blocked():
    with open("/proc/self/task/%d/stat" % main) as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "S"

def take_it():  # a thread that does not block SIGTERM takes it once the main thread waits in C
    seen = 0
    while seen < 5:
        time.sleep(0.05)
        seen = seen + 1 if blocked() else 0
    signal.pthread_kill(threading.get_ident(), signal.SIGTERM)

stuck = threading.Lock()
stuck.acquire()
threading.Thread(target=take_it, daemon=True).start()
stuck.acquire()  # for ever, as a pool worker on its task queue when Pool.terminate() signals it
"""


@pytest.mark.skipif(not pathlib.Path("/proc/self/task").is_dir(), reason="reads thread states from /proc (Linux)")
def test_a_sigterm_python_noted_while_the_main_thread_waits_in_c_still_ends_the_process(server):
    # Python's C-level handler notes the signal and runs ours only when the main thread runs Python
    # again: a main thread waiting in C never would, and the process would never end (a pool
    # worker, with Pool.terminate() waiting for it). The watcher sends it on to the main thread.
    child = subprocess.Popen([sys.executable, "-c", SIGTERM_NOTED_NOT_RUN], env=child_env(
        POSTHOG_API_KEY=API_KEY, POSTHOG_HOST=server.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        out, err = child.communicate(timeout=30)  # a safety net: without the watcher, for ever
    finally:
        child.kill()
    assert child.returncode == -signal.SIGTERM, err
    assert sorted(e["uuid"] for e in server.events) == sorted(out.split())


SIGTERM_WHILE_DELIVERING = """
import os, signal
import posthog_otel as posthog
from posthog_otel import _lifecycle, _sigterm

_sigterm.SIGTERM_BUDGET = 0.5  # how long the handler waits for persisting, and a second
posthog.configure()
print(" ".join(posthog.set("u%d" % i, {"i": i}) for i in range(5)), flush=True)
with _lifecycle._lock:  # held as a multiprocessing child's exit holds it, delivering, when Pool.terminate() signals
    os.kill(os.getpid(), signal.SIGTERM)
    sum(range(1000))  # the handler runs here, between two steps of this thread
"""


def test_a_sigterm_while_the_main_thread_holds_what_delivering_needs_does_not_deadlock(server):
    # The handler runs inside whatever the main thread was doing; persisting right there would wait
    # for a lock that thread holds, for ever. It waits a bounded time instead; the main thread goes
    # on, and the process ends by its exit or by SIGTERM once persisting could end, delivered.
    out = subprocess.run([sys.executable, "-c", SIGTERM_WHILE_DELIVERING], env=child_env(
        POSTHOG_API_KEY=API_KEY, POSTHOG_HOST=server.url), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode in (0, -signal.SIGTERM), out.stderr
    assert sorted(e["uuid"] for e in server.events) == sorted(out.stdout.split())


FORKED_CHILD_SIGTERM = """
import multiprocessing, signal, sys, threading, time
import posthog_otel as posthog
from posthog_otel import _sigterm

pipeline = posthog.configure()
parents = _sigterm._pipe

def wait(answers):
    current = signal.set_wakeup_fd(-1)  # where this child's signals are noted
    signal.set_wakeup_fd(current, warn_on_full_buffer=False)
    answers.put([current, list(parents[1:])])
    threading.Event().wait()

if __name__ == "__main__":
    fork = multiprocessing.get_context("fork")
    answers = fork.Queue()
    child = fork.Process(target=wait, args=(answers,))
    child.start()
    current, inherited = answers.get()
    child.terminate()
    child.join()
    time.sleep(0.5)  # were the child's signal noted in our pipe, our watcher would end us by now
    uuid = posthog.set("parent", {"alive": True})
    pipeline.flush()
    print(child.exitcode, uuid, current, *inherited, flush=True)
"""


def test_a_forked_childs_sigterm_is_its_own_not_its_parents(server):
    # A forked child inherits its parent's wake-up pipe: unless it takes one of its own, its
    # SIGTERM would reach the parent's watcher, which would end the parent.
    out = subprocess.run([sys.executable, "-c", FORKED_CHILD_SIGTERM], env=child_env(
        POSTHOG_API_KEY=API_KEY, POSTHOG_HOST=server.url), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0, out.stderr
    exitcode, uuid, current, *inherited = out.stdout.split()
    assert exitcode == str(-signal.SIGTERM)
    assert int(current) >= 0 and current not in inherited  # a pipe of its own, watched
    assert [e["uuid"] for e in server.events if e["distinct_id"] == "parent"] == [uuid]


def test_a_nested_run_of_the_handler_leaves_the_running_one_marked_as_running():
    # A resent SIGTERM lands while the handler runs: the nested run returns at once, and must
    # not mark the outer one finished (the next resend would then run the whole handler again).
    from posthog_otel import _sigterm

    _sigterm._running = True  # as inside the outer run
    try:
        _sigterm._on_sigterm(signal.SIGTERM, None)
        assert _sigterm._running is True
    finally:
        _sigterm._running = False


CTRL_C_DURING_SIGTERM = """
import os, signal, threading, time
import posthog_otel as posthog

posthog.configure()
print(posthog.set("u", {"i": 1}), flush=True)
main = threading.main_thread().ident
threading.Timer(0.5, signal.pthread_kill, (main, signal.SIGINT)).start()  # Ctrl-C while the handler persists
signalled = False
while True:  # an application that swallows everything
    try:
        if not signalled:
            signalled = True
            os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)
    except BaseException:
        pass
"""


def test_a_ctrl_c_while_sigterm_is_handled_neither_cancels_it_nor_loses_the_queue(server, tmp_path):
    server.fail_next(Fault(hold=True))  # persisting waits on PostHog's answer: the Ctrl-C lands meanwhile
    child = run(CTRL_C_DURING_SIGTERM, server, tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = child.communicate(timeout=30)  # a safety net: the process would live on for ever
    finally:
        child.kill()
    assert child.returncode == -signal.SIGTERM, err  # once what was queued is spooled
    assert run(EMIT_AND_EXIT, server, tmp_path, 0, stdout=subprocess.PIPE).wait(timeout=60) == 0  # the next run
    assert out.split()[0] in {e["uuid"] for e in server.wait_for_events(1)}


AFTER_FORK_WITHOUT_OUR_HANDLER = """
import os, signal
import posthog_otel as posthog

posthog.configure()
signal.signal(signal.SIGTERM, lambda *_: None)  # the application's own, set after ours
child = os.fork()
if child == 0:
    os._exit(3 + signal.set_wakeup_fd(-1))  # no wake-up left on a descriptor this child will reuse
_, status = os.waitpid(child, 0)
print(os.waitstatus_to_exitcode(status), flush=True)
"""


@needs_fork
def test_a_forked_child_whose_sigterm_is_not_ours_keeps_no_wake_up_on_a_closed_descriptor(server):
    out = subprocess.run([sys.executable, "-c", AFTER_FORK_WITHOUT_OUR_HANDLER], env=child_env(
        POSTHOG_API_KEY=API_KEY, POSTHOG_HOST=server.url), capture_output=True, text=True, timeout=60)  # fmt: skip
    assert out.stdout.split() == ["2"], out.stderr  # set_wakeup_fd(-1) answered -1: there was none


DAEMONS_AT_EXIT = """
    import atexit, json, sys, threading, time
    import posthog_otel as posthog

    calls, drops = sys.argv[1], sys.argv[2]
    lock, stopped = threading.Lock(), []
    log = open(calls, "w")

    def report():  # registered before configure(): runs after the pipeline shut down at exit
        with lock:  # no call is half done now, and none starts after
            stopped.append(True)
            log.close()
            with open(drops, "w") as out:
                json.dump(posthog.drop_counts(), out)

    atexit.register(report)
    posthog.configure(schedule_delay_millis=50)

    def work(k):
        n = 0
        while True:
            with lock:
                if stopped:
                    return
                log.write("%s\\n" % posthog.set("user-%d" % k, {"n": n}))
            n += 1

    for k in range(4):
        threading.Thread(target=work, args=(k,), daemon=True).start()
    time.sleep(float(sys.argv[3]))  # then the main thread ends while they go on
"""


@pytest.mark.parametrize("seconds", [0.05, 0.3])
def test_daemon_threads_at_exit_every_returned_uuid_is_delivered_or_counted(seconds, server, tmp_path):
    calls, drops = tmp_path / "calls", tmp_path / "drops.json"
    assert run(DAEMONS_AT_EXIT, server, tmp_path / "spool", calls, drops, seconds).wait(timeout=60) == 0
    assert (
        run(EMIT_AND_EXIT, server, tmp_path / "spool", 0, stdout=subprocess.PIPE).wait(timeout=60) == 0
    )  # the spool's
    made = calls.read_text().split()
    returned = {u for u in made if u != "None"}
    counted = sum(json.loads(drops.read_text()).values())
    delivered = {e["uuid"] for e in server.wait_for_events(len(returned) - counted, timeout=30)}
    assert delivered <= returned
    assert len(made) > 100
    # every call either returned a uuid PostHog got, or was counted (those that returned None among them)
    assert len(made) == len(delivered) + counted, (len(made), len(delivered), counted, made.count("None"))


SPOOLED_THEN_EXIT = """
    import json, sys, time
    import posthog_otel as posthog
    from posthog_otel._delivery import line as _line

    _line.REQUEST_BYTES = 16 * 1024  # many small requests: the backlog takes a while to send
    pipeline = posthog.configure(spool_after=0.2, schedule_delay_millis=50, exit_timeout=120)
    uuids = [posthog.set("user-%d" % (n % 10), {"n": n}) for n in range(int(sys.argv[1]))]
    while pipeline.exporter.stats()["spooled"] < len(uuids):  # PostHog is down: all of it spooled
        time.sleep(0.05)
    print(json.dumps(uuids), flush=True)
    sys.stdin.readline()  # PostHog is back; the script ends, without flush()
"""


@pytest.mark.slow
def test_exit_keeps_sending_while_posthog_takes_each_batch_promptly(server, tmp_path):
    """A backlog that takes seconds to send, to a PostHog that takes each request within 0.05 s:
    exit sends all of it (the budget grows with each batch taken), instead of stopping after a
    fixed two seconds and leaving the rest for a next run that may never come."""
    server.otherwise = lambda: Fault(503)
    app = run(SPOOLED_THEN_EXIT, server, tmp_path, 5000, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    uuids = json.loads(app.stdout.readline())
    server.otherwise = lambda: Fault(delay=0.05)
    app.stdin.write("exit\n")
    app.stdin.close()
    assert app.wait(timeout=120) == 0
    arrived = [e["uuid"] for e in server.events]
    assert len(server.accepted) > 60  # it took many requests: over 2 s of them
    assert arrived == uuids  # all of them, once each, in order
    assert [n for d in tmp_path.iterdir() for n in os.listdir(d) if n.endswith((".json", ".claimed"))] == []


ANSWERED_THEN_SLOW = """
    import json, sys
    import posthog_otel as posthog

    pipeline = posthog.configure(schedule_delay_millis=50)
    uuids = [posthog.set("user", {"n": n}) for n in range(10)]
    assert pipeline.flush()  # PostHog answers
    print("answered", flush=True)
    sys.stdin.readline()  # now it answers slowly
    uuids += [posthog.set("user", {"n": n}) for n in range(10, 200)]
    print(json.dumps(uuids), flush=True)
"""


def test_exit_waits_for_a_slow_answer_rather_than_send_the_batch_again(server, tmp_path):
    """PostHog takes 2 s to answer at exit. Abandoning the request after a second would leave its
    batch in the spool, and the next run would send it again: PostHog drops the duplicate event,
    but applies its $set to the person again, after newer ones. Exit waits for the answer."""
    app = run(ANSWERED_THEN_SLOW, server, tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert app.stdout.readline().strip() == "answered"
    server.otherwise = lambda: Fault(delay=2.0)
    app.stdin.write("go\n")
    app.stdin.close()
    uuids = json.loads(app.stdout.readline())
    assert app.wait(timeout=60) == 0
    server.otherwise = lambda: Fault()
    assert run(EMIT_AND_EXIT, server, tmp_path, 0, stdout=subprocess.PIPE).wait(timeout=60) == 0  # the spool's
    server.wait_for_events(len(uuids), timeout=30)
    assert server.wait_idle(timeout=30)  # a request the exit gave up on is answered (and recorded) too
    assert sorted(e["uuid"] for e in server.events) == sorted(uuids)  # each once: none sent again


SPAWNED_POOL = """
import json, multiprocessing, sys
import posthog_otel as posthog

posthog.configure()  # at import: a spawned child runs it again


def work(i):
    return posthog.set("child-%d" % i, {"i": i})  # no flush


if __name__ == "__main__":
    with multiprocessing.get_context(sys.argv[1]).Pool(4) as pool:  # __exit__ terminates the workers
        print(json.dumps(pool.map(work, range(40))), flush=True)
"""


def _interpreters():
    """This one, and a Python 3.12+ found beside it that can import this checkout with this
    environment's pure-Python dependencies: where a spawned pool worker lost everything (it
    delivered only from its interpreter's exit, where 3.12 starts no threads)."""
    found = [pytest.param((sys.executable,), id="this-python")]
    for name in ("python3.13", "python3.12"):
        candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.%s*/bin/%s" % (name[-2:], name))))
        other = candidates[-1] if candidates else shutil.which(name)  # (a pyenv shim may not run it)
        if other is None or sys.version_info >= (3, 12):
            continue
        path = os.pathsep.join([str(ROOT), *[p for p in sys.path if p.endswith("site-packages")]])
        probe = subprocess.run([other, "-c", "import posthog_otel, opentelemetry.sdk._logs"], env=child_env(PYTHONPATH=path),
                               capture_output=True, timeout=60)  # fmt: skip
        if probe.returncode == 0:
            found.append(pytest.param((other, path), id=name, marks=pytest.mark.slow))  # another interpreter: slow
    return found


@pytest.mark.parametrize("python", _interpreters())
@pytest.mark.parametrize("start", ["spawn", "forkserver"])
def test_a_pool_of_spawned_children_used_as_a_context_manager_delivers(python, start, server, tmp_path):
    if start not in __import__("multiprocessing").get_all_start_methods():
        pytest.skip("no %s start method here" % start)
    server.otherwise = lambda: Fault(delay=0.5)  # a delivery takes a while: the pool's SIGTERM lands in it
    script = tmp_path / "app.py"  # spawned children import the parent's main module: a file
    script.write_text(textwrap.dedent(SPAWNED_POOL))
    env = child_env(POSTHOG_API_KEY=API_KEY, POSTHOG_HOST=server.url, POSTHOG_OTEL_SPOOL_DIR=str(tmp_path / "spool"))
    if len(python) > 1:
        env["PYTHONPATH"] = python[1]
    done = subprocess.run([python[0], str(script), start], env=env, cwd=str(tmp_path), capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    uuids = json.loads(done.stdout.splitlines()[-1])
    assert len(uuids) == 40 and None not in uuids
    # Each worker delivers at the pool's SIGTERM within its budget (3 s), or spools what it could
    # not: a loaded machine may leave some there. The next process of the app delivers them.
    subprocess.run([python[0], "-c", "import posthog_otel as p; p.configure(); p.flush()"], env=env,
                   cwd=str(tmp_path), capture_output=True, timeout=120, check=True)  # fmt: skip
    events = server.wait_for_events(40, timeout=60)
    assert sorted(e["uuid"] for e in events) == sorted(uuids)


OS_EXIT = """
    import json, os, sys, time
    import posthog_otel as posthog

    pipeline = posthog.configure(schedule_delay_millis=50, spool_after=0.2)
    early = [posthog.set("user", {"n": n}) for n in range(50)]
    while sum(pipeline.exporter.stats()[k] for k in ("exported", "spooled")) < 50:
        time.sleep(0.02)  # older than the window: delivered, or safe in the spool
    late = [posthog.set("user", {"n": n}) for n in range(50, 100)]
    if sys.argv[1] == "flush":
        assert pipeline.flush()
    print(json.dumps([early, late]), flush=True)
    os._exit(0)  # no atexit, no thread runs after this
"""


@pytest.mark.parametrize("first", ["flush", "nothing"])
def test_os_exit_loses_only_what_was_not_delivered_or_spooled_yet(first, server, tmp_path):
    """As the README says: os._exit() loses what a SIGKILL loses (the SDK's queue and what waits
    in memory), and nothing after flush(); what was older is delivered or sent by the next run."""
    app = run(OS_EXIT, server, tmp_path, first, stdout=subprocess.PIPE)
    early, late = json.loads(app.stdout.readline())
    assert app.wait(timeout=60) == 0
    assert run(EMIT_AND_EXIT, server, tmp_path, 0, stdout=subprocess.PIPE).wait(timeout=60) == 0  # the spool's
    server.wait_for_events(len(early) + (len(late) if first == "flush" else 0), timeout=30)
    arrived = {e["uuid"] for e in server.events}
    assert set(early) <= arrived
    if first == "flush":
        assert set(late) <= arrived

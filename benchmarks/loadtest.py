"""Load test: many headless sessions against one local server, started as `make run` starts it (issue 9, item 4).

Loading `/` over HTTP creates no Streamlit session, so each simulated student here speaks the
app's own websocket protocol (`ws://host:port/_stcore/stream`, the protobuf classes that ship
inside streamlit), as a browser tab does:

- open: a `rerun_script` BackMsg naming the page (`page_name="forward"`), answered by
  `new_session`, deltas, and `script_finished` (should a run finish early and rerun, the client
  waits for the final run);
- move the t slider: a `rerun_script` carrying the slider's new value in `widget_states`, the
  page hash and query string the server last sent, and the `fragment_id` of the `st.fragment`
  the slider lives in (as the frontend does): only that fragment reruns;
- per rerun it measures the seconds from sending to `script_finished`, counts every exception
  delta, error status, missing page, timeout or dropped connection as an error, and checks that
  some figure's spec changed (so the protocol is exercised, not just connected).

A client sends the states of the widgets it has touched; the server keeps the others' values
(the browser sends all of them: the same values). Server memory is the VmRSS of the server
process and its children, from /proc, sampled every 0.1 s.

Scenarios: (1) one session moving the slider (the idle baseline); (2) N sessions at once, each
moving the slider `--moves` times with a random pause of 0.5-1.5 x `--think` seconds between
moves (a student looks at the figure); (3) `--open-close` sessions each open the page once and
close, `--open-concurrency` at a time; after `server.disconnectedSessionTTL` (set here to
`--session-ttl`, default 5 s; Streamlit's default is 120 s) a disconnected session may be
dropped, and it is dropped when the server next stores a disconnected session, so one bare
connection is opened and closed before memory is read; (4) with `--with-training`, one more
session opens /training_lab, clicks "Train" and keeps its auto-rerunning fragments running (as
the frontend does on `auto_rerun` messages) while one session moves its slider.

Run: python -m benchmarks.loadtest --sessions 25 --moves 10 --open-close 100 [--with-training]
(`make loadtest`). Targets (issue 9, 2 CPU cores): 25 sessions: rerun p50 <= 1 s, p95 <= 2 s,
0 errors; after 100 sessions opened and closed the server's memory is back within 100 MB of its
start; a training job does not raise another session's rerun p50 above 2x its idle value.
"""

from __future__ import annotations

import argparse
import math
import os
import queue
import random
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/loadtest.py` as well as `-m benchmarks.loadtest`
    sys.path.insert(0, str(ROOT))

import websocket  # noqa: E402  (websocket-client, pinned in requirements-dev.txt)
from streamlit.proto.BackMsg_pb2 import BackMsg  # noqa: E402
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg  # noqa: E402
from streamlit.proto.WidgetStates_pb2 import WidgetState  # noqa: E402

FORWARD_PAGE = "forward"  # url path of the lesson the students move
T_SLIDER = "t (time step)"  # its slider's label (aria-label in the browser)
TRAINING_PAGE = "training_lab"  # url path of the training lab
TRAIN_BUTTON, STOP_BUTTON = "Train", "Stop"  # button labels on that page
RUN_TIMEOUT_S = 180.0  # longest wait for one script run (2 shared cores, 100 sessions)

EARLY_FOR_RERUN = ForwardMsg.FINISHED_EARLY_FOR_RERUN  # another run follows at once
COMPILE_ERROR = ForwardMsg.FINISHED_WITH_COMPILE_ERROR

# Targets of issue 9 (2 CPU cores).
TARGET_P50_S, TARGET_P95_S = 1.0, 2.0
TARGET_MEMORY_MB = 100.0
TARGET_TRAINING_FACTOR = 2.0


# --- statistics -------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation; nan for no values."""
    if not values:
        return math.nan
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


# --- server memory ----------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    """Direct children of pid, from /proc/<pid>/task/*/children (Linux)."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def rss_mb(pid: int) -> float:
    """Resident memory (VmRSS) of pid and all its descendants, in MB (10^6 bytes); nan if gone."""
    total_kb, seen, todo = 0, set(), [pid]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kb += int(line.split()[1])
                    break
        except OSError:
            if p == pid:
                return math.nan
            continue
        todo += _children(p)
    return total_kb * 1024 / 1e6


class MemoryMonitor:
    """Samples the server's RSS every `every` seconds in a thread; `window()` gives start/peak/end."""

    def __init__(self, pid: int, every: float = 0.1):
        self.pid, self.every = pid, every
        self._peak = rss_mb(pid)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.wait(self.every):
            now = rss_mb(self.pid)
            with self._lock:
                self._peak = max(self._peak, now) if not math.isnan(now) else self._peak

    def now(self) -> float:
        return rss_mb(self.pid)

    def reset_peak(self) -> float:
        """Start a window: the peak restarts from now; returns the RSS now."""
        now = rss_mb(self.pid)
        with self._lock:
            self._peak = now
        return now

    def peak(self) -> float:
        with self._lock:
            return max(self._peak, rss_mb(self.pid))

    def stop(self):
        self._stop.set()
        self._thread.join(2)


def server_metric(url: str, family: str) -> dict[str, float]:
    """Values of one family of the server's /_stcore/metrics (e.g. active_sessions), by label set."""
    with urllib.request.urlopen(f"{url}/_stcore/metrics?families={family}", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith(family):
            name, _, value = line.rpartition(" ")
            out[name[len(family) :] or "value"] = float(value)
    return out


# --- one headless session -----------------------------------------------------------------------
@dataclass
class Run:
    """One script run as a client saw it."""

    seconds: float = math.nan  # send -> script_finished (the final one, after early-for-rerun runs)
    status: int | None = None  # ForwardMsg.ScriptFinishedStatus; None: it never finished
    errors: list[str] = field(default_factory=list)  # exceptions, error statuses, timeouts, drops
    figures: int = 0  # plotly figures received in this run
    changed: int = 0  # of those, figures whose spec differs from the last one at the same place

    @property
    def finished(self) -> bool:
        return self.status is not None


@dataclass
class Widget:
    id: str  # the widget id the server expects in widget_states
    fragment_id: str  # the st.fragment it lives in ("" if none): a change reruns only that
    element: object  # its proto (e.g. Slider: min, max, value)


class Closed(Exception):
    """The websocket closed (or failed) under a session."""


class Session:
    """One headless browser tab: a websocket, the page it is on, and what the server last sent.

    A reader thread receives (and so answers the server's pings) all the time; the driver takes
    the timestamped messages from a queue, so the latency is the arrival time of script_finished.
    """

    def __init__(self, base_url: str, timeout: float = RUN_TIMEOUT_S):
        self.ws_url = base_url.replace("http://", "ws://", 1) + "/_stcore/stream"
        self.timeout = timeout
        self.ws = websocket.create_connection(self.ws_url, subprotocols=["streamlit"], timeout=timeout)
        self.ws.settimeout(None)
        self.inbox: queue.Queue = queue.Queue()
        self.page_hash = ""  # the page script hash the server last named (new_session / navigation)
        self.query = ""  # the query string the server last set (page_info_changed)
        self.widgets: dict[tuple[str, str], Widget] = {}  # (element type, label) -> widget
        self.touched: dict[str, WidgetState] = {}  # states this client has set, re-sent on every rerun
        self.specs: dict[tuple, int] = {}  # delta path -> hash of the plotly spec last seen there
        self.auto_reruns: dict[str, float] = {}  # fragment id -> seconds (st.fragment(run_every=...))
        self._auto_due: dict[str, float] = {}  # fragment id -> when pump() next sends its auto-rerun
        self.closed = False
        self.asked_page = ""  # the url path last opened
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    # the wire
    def _read(self):
        try:
            while True:
                data = self.ws.recv()
                if not data:  # a close frame
                    raise Closed("the server closed the websocket")
                msg = ForwardMsg()
                msg.ParseFromString(data)
                self.inbox.put((time.perf_counter(), msg))
        except Exception as e:  # noqa: BLE001  (anything that ends the connection ends the session)
            self.inbox.put((time.perf_counter(), e if isinstance(e, Closed) else Closed(f"{type(e).__name__}: {e}")))

    def _send_rerun(
        self, *, page_name: str = "", fragment_id: str = "", auto: bool = False, extra: tuple[WidgetState, ...] = ()
    ) -> float:
        msg = BackMsg()
        r = msg.rerun_script
        r.query_string = self.query
        r.page_script_hash = self.page_hash
        r.page_name = page_name
        r.fragment_id = fragment_id
        r.is_auto_rerun = auto
        r.widget_states.widgets.extend([*self.touched.values(), *extra])
        r.context_info.timezone = "UTC"
        r.context_info.timezone_offset = 0
        r.context_info.locale = "en-US"
        t0 = time.perf_counter()
        self.ws.send_binary(msg.SerializeToString())
        return t0

    # what a message means to the client
    def absorb(self, msg: ForwardMsg, run: Run | None = None) -> int | None:
        """Update the client's view from one ForwardMsg; returns the finished status, if it is one."""
        kind = msg.WhichOneof("type")
        errors = run.errors if run is not None else []
        if kind == "new_session":
            self.page_hash = msg.new_session.page_script_hash or self.page_hash
        elif kind == "navigation":
            self.page_hash = msg.navigation.page_script_hash or self.page_hash
        elif kind == "page_info_changed":
            self.query = msg.page_info_changed.query_string
        elif kind == "page_not_found":
            errors.append(f"page not found: /{msg.page_not_found.page_name or self.asked_page}")
        elif kind == "session_event" and msg.session_event.HasField("script_compilation_exception"):
            errors.append(f"compile error: {msg.session_event.script_compilation_exception.message}")
        elif kind == "auto_rerun":
            self.auto_reruns[msg.auto_rerun.fragment_id] = msg.auto_rerun.interval
        elif kind == "stop_auto_rerun":
            for fid in msg.stop_auto_rerun.fragment_ids:
                self.auto_reruns.pop(fid, None)
        elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            el = msg.delta.new_element
            etype = el.WhichOneof("type")
            inner = getattr(el, etype) if etype else None
            if etype == "exception":
                errors.append(f"exception: {inner.type}: {inner.message}")
            elif etype == "plotly_chart":
                where = tuple(msg.metadata.delta_path)
                h = hash(inner.spec)
                if run is not None:
                    run.figures += 1
                    run.changed += where in self.specs and self.specs[where] != h
                self.specs[where] = h
            if inner is not None and getattr(inner, "id", "") and hasattr(inner, "label"):
                self.widgets[(etype, inner.label)] = Widget(inner.id, msg.delta.fragment_id, inner)
        elif kind == "script_finished":
            if msg.script_finished == COMPILE_ERROR:
                errors.append("the script failed to compile")
            return msg.script_finished
        return None

    def _finish(self, t0: float) -> Run:
        """Read until the run's final script_finished (or a timeout, or a dropped connection)."""
        run = Run()
        deadline = t0 + self.timeout
        while True:
            try:
                ts, msg = self.inbox.get(timeout=max(0.0, deadline - time.perf_counter()))
            except queue.Empty:
                run.errors.append(f"no script_finished within {self.timeout:.0f} s")
                return run
            if isinstance(msg, Closed):
                self.closed = True
                run.errors.append(f"disconnected: {msg}")
                return run
            status = self.absorb(msg, run)
            if status is not None and status != EARLY_FOR_RERUN:
                run.status, run.seconds = status, ts - t0
                return run

    # what a student does
    def open(self, page: str) -> Run:
        """Open /<page>, as typing the deep link does; returns the page's first run."""
        self.page_hash = self.query = ""
        self.asked_page = page
        return self._finish(self._send_rerun(page_name=page))

    def widget(self, label: str, etype: str = "slider") -> Widget:
        try:
            return self.widgets[(etype, label)]
        except KeyError:
            have = sorted(f"{t} {lab!r}" for t, lab in self.widgets)
            raise LookupError(f"no {etype} labelled {label!r} on the page; it has: {', '.join(have)}") from None

    def set_slider(self, label: str, value: float) -> Run:
        """Move a (single-value) slider to value: reruns its fragment (or the page)."""
        w = self.widget(label)
        state = WidgetState(id=w.id)
        state.double_array_value.data.append(value)
        self.touched[w.id] = state
        return self._finish(self._send_rerun(fragment_id=w.fragment_id))

    def click(self, label: str) -> Run:
        """Click a button: a trigger value, sent once (not kept)."""
        w = self.widget(label, "button")
        return self._finish(
            self._send_rerun(fragment_id=w.fragment_id, extra=(WidgetState(id=w.id, trigger_value=True),))
        )

    def pump(self, seconds: float, errors: list[str]) -> int:
        """Keep the tab alive for `seconds`: absorb messages and send the fragment auto-reruns the
        server asked for (every `interval` s, as the frontend's timers do). Returns reruns sent."""
        end = time.perf_counter() + seconds
        due = self._auto_due  # kept across calls: the timers run as long as the tab is open
        sent = 0
        while (now := time.perf_counter()) < end and not self.closed:
            for fid in [f for f in due if f not in self.auto_reruns]:  # stop_auto_rerun
                del due[fid]
            for fid, dt in list(self.auto_reruns.items()):
                due.setdefault(fid, now + dt)
                if now >= due[fid]:
                    self._send_rerun(fragment_id=fid, auto=True)
                    due[fid] = now + dt
                    sent += 1
            wait = min([end, *due.values()]) - time.perf_counter()
            try:
                _, msg = self.inbox.get(timeout=max(0.01, wait))
            except queue.Empty:
                continue
            if isinstance(msg, Closed):
                self.closed = True
                errors.append(f"disconnected: {msg}")
                break
            run = Run()
            self.absorb(msg, run)
            errors += run.errors
        return sent

    def close(self):
        """Close the tab: a close frame, then wait for the reader to see the connection end."""
        if not self.closed:
            try:
                self.ws.send_close()
            except Exception:  # noqa: BLE001  (already gone)
                pass
            self.reader.join(10)
        self.closed = True
        self.ws.shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --- scenarios ---------------------------------------------------------------------------------
@dataclass
class Scenario:
    name: str
    sessions: int
    opens: list[float] = field(default_factory=list)  # seconds of each first page run
    reruns: list[float] = field(default_factory=list)  # seconds of each finished slider rerun
    moves: int = 0  # slider moves sent
    unfinished: int = 0  # runs without script_finished
    unchanged: int = 0  # finished slider moves after which no figure changed
    errors: list[str] = field(default_factory=list)
    rss: dict[str, float] = field(default_factory=dict)  # "start", "peak", "end", ... in MB
    notes: list[str] = field(default_factory=list)

    def p(self, q: float) -> float:
        return percentile(self.reruns, q)


class Progress:
    """A thread-safe tqdm bar (stderr); silent when disabled."""

    def __init__(self, total: int, desc: str, enabled: bool):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=desc, unit="run", disable=not enabled, leave=False, file=sys.stderr)
        self.lock = threading.Lock()

    def step(self, n: int = 1):
        with self.lock:
            self.bar.update(n)

    def close(self):
        self.bar.close()


def _record(sc: Scenario, run: Run, lock: threading.Lock, *, move: bool):
    with lock:
        sc.errors += run.errors
        if not run.finished:
            sc.unfinished += 1
            return
        if move:
            sc.reruns.append(run.seconds)
            sc.unchanged += run.changed == 0
        else:
            sc.opens.append(run.seconds)


def _student(
    url: str,
    sc: Scenario,
    lock: threading.Lock,
    start: threading.Barrier,
    moves: int,
    think: float,
    rng: random.Random,
    progress: Progress,
    page: str = FORWARD_PAGE,
    slider: str = T_SLIDER,
):
    """Open the page, wait for everyone, then move the slider `moves` times to random new values."""
    session = None
    try:
        session = Session(url)
        run = session.open(page)
        _record(sc, run, lock, move=False)
        progress.step()
        ok = run.finished and not run.errors
    except Exception as e:  # noqa: BLE001  (a session that cannot connect is an error, not a crash)
        with lock:
            sc.errors.append(f"open: {type(e).__name__}: {e}")
        ok = False
    try:
        start.wait()
    except threading.BrokenBarrierError:
        pass
    try:
        for _ in range(moves if ok else 0):
            time.sleep(think * rng.uniform(0.5, 1.5))
            w = session.widget(slider)
            lo, hi = int(w.element.min), int(w.element.max)
            current = int(w.element.value[0]) if w.element.value else int(w.element.default[0])
            value = rng.randint(lo, hi)
            while value == current and lo < hi:  # a move to the same value would change nothing
                value = rng.randint(lo, hi)
            with lock:
                sc.moves += 1
            run = session.set_slider(slider, value)
            _record(sc, run, lock, move=True)
            progress.step()
            if session.closed or not run.finished:
                break
    except Exception as e:  # noqa: BLE001
        with lock:
            sc.errors.append(f"move: {type(e).__name__}: {e}")
    finally:
        if session is not None:
            session.close()


def sliders(
    url: str, mem: MemoryMonitor, n: int, moves: int, think: float, seed: int, name: str, progress: bool = True
) -> Scenario:
    """n sessions open the forward lesson together, then each moves the t slider `moves` times."""
    sc = Scenario(name, n)
    lock, start = threading.Lock(), threading.Barrier(n)
    sc.rss["start"] = mem.reset_peak()
    bar = Progress(n * (1 + moves), name, progress)
    with ThreadPoolExecutor(max_workers=n) as pool:
        for i in range(n):
            pool.submit(_student, url, sc, lock, start, moves, think, random.Random(seed + i), bar)
    bar.close()
    sc.rss["peak"], sc.rss["end"] = mem.peak(), mem.now()
    return sc


def release_closed_sessions(url: str, ttl: float) -> None:
    """Wait out the disconnected-session TTL, then make the server drop the expired sessions.

    Streamlit keeps a closed tab's session for `server.disconnectedSessionTTL` seconds (for a
    reconnect) and removes expired ones when it next stores a disconnected session: one bare
    connection (no script run), opened and closed, does that.
    """
    time.sleep(ttl + 1.0)
    probe = websocket.create_connection(
        url.replace("http://", "ws://", 1) + "/_stcore/stream", subprotocols=["streamlit"], timeout=30
    )
    time.sleep(0.5)
    probe.close()
    time.sleep(2.0)  # the server's disconnect handling, and a moment for the allocator


def open_close(url: str, mem: MemoryMonitor, n: int, concurrency: int, ttl: float, progress: bool = True) -> Scenario:
    """n sessions each open the forward lesson once and close; memory before, at peak, after release."""
    sc = Scenario(f"{n} sessions opened + closed", n)
    lock = threading.Lock()
    sc.rss["start"] = mem.reset_peak()
    bar = Progress(n, "open+close", progress)

    def one(_):
        try:
            with Session(url) as session:
                _record(sc, session.open(FORWARD_PAGE), lock, move=False)
        except Exception as e:  # noqa: BLE001
            with lock:
                sc.errors.append(f"open: {type(e).__name__}: {e}")
        bar.step()

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(one, range(n)))
    bar.close()
    sc.rss["peak"] = mem.peak()
    sc.rss["closed"] = mem.now()
    release_closed_sessions(url, ttl)
    sc.rss["end"] = mem.now()
    try:
        sc.notes.append(
            f"active sessions after release: {server_metric(url, 'active_sessions').get('value', math.nan):.0f}"
        )
    except OSError as e:
        sc.notes.append(f"/_stcore/metrics unavailable: {e}")
    return sc


def with_training(
    url: str, mem: MemoryMonitor, moves: int, think: float, seed: int, progress: bool = True, warmup_s: float = 5.0
) -> Scenario:
    """One session trains on /training_lab (clicks Train, keeps its auto-reruns going) while another
    moves the forward lesson's t slider `moves` times."""
    sc = Scenario("1 session, 1 training job", 1)
    sc.rss["start"] = mem.reset_peak()
    stop, ready = threading.Event(), threading.Event()
    trainer_errors: list[str] = []
    auto_sent = [0]

    def trainer():
        try:
            with Session(url) as s:
                run = s.open(TRAINING_PAGE)
                trainer_errors.extend(run.errors)
                if run.errors or not run.finished:
                    return
                run = s.click(TRAIN_BUTTON)
                trainer_errors.extend(run.errors)
                if not run.finished:
                    return
                ready.set()
                while not stop.is_set() and not s.closed:
                    auto_sent[0] += s.pump(0.5, trainer_errors)
                if ("button", STOP_BUTTON) in s.widgets and not s.closed:
                    trainer_errors.extend(s.click(STOP_BUTTON).errors)
        except Exception as e:  # noqa: BLE001
            trainer_errors.append(f"{type(e).__name__}: {e}")
        finally:
            ready.set()

    t = threading.Thread(target=trainer, daemon=True)
    t.start()
    ready.wait(RUN_TIMEOUT_S * 2)
    if trainer_errors or not t.is_alive():
        stop.set()
        t.join(30)
        sc.errors += [f"training session: {e}" for e in trainer_errors] or ["training session ended early"]
        sc.notes.append(f"the training job did not start (is /{TRAINING_PAGE} there, with a {TRAIN_BUTTON!r} button?)")
        sc.rss["peak"], sc.rss["end"] = mem.peak(), mem.now()
        return sc
    time.sleep(warmup_s)  # let the job get going
    bar = Progress(1 + moves, "with training", progress)
    lock = threading.Lock()
    _student(url, sc, lock, threading.Barrier(1), moves, think, random.Random(seed), bar)
    bar.close()
    stop.set()
    t.join(RUN_TIMEOUT_S)
    sc.errors += [f"training session: {e}" for e in trainer_errors]
    sc.notes.append(f"the training session sent {auto_sent[0]} fragment auto-reruns meanwhile")
    sc.rss["peak"], sc.rss["end"] = mem.peak(), mem.now()
    return sc


# --- the whole test ------------------------------------------------------------------------------
@dataclass
class Config:
    sessions: int = 25  # concurrent sessions in scenario 2
    moves: int = 10  # slider moves per session (scenarios 1, 2, 4)
    think: float = 1.0  # mean pause between one session's moves, seconds (0.5-1.5x, uniform)
    open_close: int = 100  # sessions opened and closed in scenario 3 (0: skip)
    open_concurrency: int = 10  # of those, how many at once
    session_ttl: int = 5  # server.disconnectedSessionTTL for the server started here, seconds
    training: bool = False  # scenario 4
    seed: int = 0
    progress: bool = True  # progress bars on stderr


@dataclass
class Report:
    config: Config
    fresh_rss: float  # MB, the server just started (no session yet)
    scenarios: dict[str, Scenario]
    load: tuple[float, float, float]  # os.getloadavg() when it ended
    wall_s: float

    def targets(self) -> list[tuple[str, str, bool | None]]:
        """(target, measured, met) for each target of the issue this run covers; met is None when
        the run could not measure it."""
        out = []
        many = self.scenarios.get("many")
        if many:
            n = many.sessions
            out.append(
                (f"{n} sessions: rerun p50 <= {TARGET_P50_S:g} s", f"{many.p(50):.2f} s", many.p(50) <= TARGET_P50_S)
            )
            out.append(
                (f"{n} sessions: rerun p95 <= {TARGET_P95_S:g} s", f"{many.p(95):.2f} s", many.p(95) <= TARGET_P95_S)
            )
            bad = len(many.errors) + many.unfinished
            out.append((f"{n} sessions: 0 errors", f"{bad}", bad == 0))
        oc = self.scenarios.get("open_close")
        if oc:
            grew = oc.rss["end"] - oc.rss["start"]
            out.append(
                (
                    f"{oc.sessions} opened + closed: memory back within {TARGET_MEMORY_MB:g} MB",
                    f"{grew:+.0f} MB",
                    grew <= TARGET_MEMORY_MB and not oc.errors,
                )
            )
        tr, idle = self.scenarios.get("training"), self.scenarios.get("idle")
        if tr and idle:
            target = f"training: rerun p50 <= {TARGET_TRAINING_FACTOR:g}x idle ({idle.p(50):.2f} s)"
            if tr.reruns:
                ratio = tr.p(50) / idle.p(50)
                out.append(
                    (target, f"{tr.p(50):.2f} s = {ratio:.1f}x", ratio <= TARGET_TRAINING_FACTOR and not tr.errors)
                )
            else:
                out.append((target, "not measured: " + "; ".join(tr.notes or tr.errors[:1]), None))
        return out

    def lines(self) -> list[str]:
        c = self.config
        lines = [
            f"# load test: {os.cpu_count()} cores, think {c.think:g} s (0.5-1.5x) between moves, "
            f"server.disconnectedSessionTTL = {c.session_ttl} s, load average at the end "
            f"{self.load[0]:.1f} / {self.load[1]:.1f} / {self.load[2]:.1f} (1/5/15 min), {self.wall_s:.0f} s in all",
            f"server RSS when started (no session): {self.fresh_rss:.0f} MB",
            "",
            f"{'scenario':34s} {'reruns':>6s} {'p50 s':>6s} {'p95 s':>6s} {'max s':>6s} {'open p50':>8s} "
            f"{'errors':>6s} {'no fig':>6s}  RSS MB start / peak / end",
        ]
        for sc in self.scenarios.values():
            errs = len(sc.errors) + sc.unfinished
            rss = " / ".join(f"{sc.rss[k]:.0f}" for k in ("start", "peak", "end") if k in sc.rss)
            mx = max(sc.reruns) if sc.reruns else math.nan
            lines.append(
                f"{sc.name:34s} {len(sc.reruns):6d} {sc.p(50):6.2f} {sc.p(95):6.2f} {mx:6.2f} "
                f"{percentile(sc.opens, 50):8.2f} {errs:6d} {sc.unchanged:6d}  {rss}"
            )
            for note in sc.notes:
                lines.append(f"    {note}")
            if "closed" in sc.rss:
                lines.append(
                    f"    RSS right after the last close (sessions still held for the TTL): {sc.rss['closed']:.0f} MB"
                )
            for e in sorted(set(sc.errors))[:5]:
                lines.append(f"    error ({sc.errors.count(e)}x): {e[:200]}")
        lines += ["", "Targets (issue 9, 2 CPU cores):"]
        for target, measured, met in self.targets():
            lines.append(f"  {'n/a   ' if met is None else 'met   ' if met else 'MISSED'}  {target}: {measured}")
        return lines


def run_loadtest(config: Config) -> Report:
    """Start a fresh server and run the scenarios of `config`; the server is stopped at the end."""
    from tests.test_browser import Server

    t0 = time.perf_counter()
    scenarios: dict[str, Scenario] = {}
    with Server("--server.disconnectedSessionTTL", str(config.session_ttl)) as server:
        mem = MemoryMonitor(server.proc.pid)
        fresh = mem.now()
        try:
            scenarios["idle"] = sliders(
                server.url,
                mem,
                1,
                config.moves,
                config.think,
                config.seed,
                "1 session (idle baseline)",
                config.progress,
            )
            if config.sessions > 1:
                scenarios["many"] = sliders(
                    server.url,
                    mem,
                    config.sessions,
                    config.moves,
                    config.think,
                    config.seed + 1000,
                    f"{config.sessions} sessions moving t",
                    config.progress,
                )
            if config.open_close:
                release_closed_sessions(server.url, config.session_ttl)  # start from a released server
                scenarios["open_close"] = open_close(
                    server.url, mem, config.open_close, config.open_concurrency, config.session_ttl, config.progress
                )
            if config.training:
                scenarios["training"] = with_training(
                    server.url, mem, config.moves, config.think, config.seed + 2000, config.progress
                )
        finally:
            mem.stop()
    return Report(config, fresh, scenarios, os.getloadavg(), time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.loadtest", description=__doc__.split("\n\n")[0])
    d = Config()
    ap.add_argument("--sessions", type=int, default=d.sessions, help="concurrent sessions moving the t slider")
    ap.add_argument("--moves", type=int, default=d.moves, help="slider moves per session")
    ap.add_argument("--think", type=float, default=d.think, help="mean seconds between one session's moves")
    ap.add_argument("--open-close", type=int, default=d.open_close, help="sessions opened and closed (0: skip)")
    ap.add_argument("--open-concurrency", type=int, default=d.open_concurrency, help="of those, how many at once")
    ap.add_argument(
        "--session-ttl",
        type=int,
        default=d.session_ttl,
        help="server.disconnectedSessionTTL of the server started here, seconds (streamlit's default: 120)",
    )
    ap.add_argument(
        "--with-training",
        action="store_true",
        help=f"also measure one session while another trains on /{TRAINING_PAGE}",
    )
    ap.add_argument("--seed", type=int, default=d.seed)
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    ap.add_argument("--strict", action="store_true", help="exit with status 1 when a target is missed")
    a = ap.parse_args(argv)
    for name in ("sessions", "open_concurrency"):
        if getattr(a, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("moves", "open_close", "session_ttl"):
        if getattr(a, name) < 0:
            ap.error(f"--{name.replace('_', '-')} must not be negative")
    if a.think < 0:
        ap.error("--think must not be negative")
    cfg = Config(
        a.sessions,
        a.moves,
        a.think,
        a.open_close,
        a.open_concurrency,
        a.session_ttl,
        a.with_training,
        a.seed,
        not a.no_progress,
    )
    report = run_loadtest(cfg)
    print("\n".join(report.lines()))
    return 1 if a.strict and not all(met is True for *_, met in report.targets()) else 0


if __name__ == "__main__":
    raise SystemExit(main())

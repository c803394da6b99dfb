"""Background training jobs, a queue that runs at most K of them at once, and a session's own models.
No streamlit here: the page reads these objects from an `st.fragment(run_every=...)`.

    queue = default_queue()                  # one per process; K = $COURSE_MAX_JOBS, default os.cpu_count()
    job = TrainingJob(recipe, snapshot_every=100)
    queue.submit(job)                        # starts now, or waits its turn: job.view().queue_position
    v = job.view()                           # a consistent JobView (status, step, losses, snapshots, ...)
    job.stop()                               # any state: a queued job stops at once, a running one after its step

    lab = SessionLab()                       # one per browser session (app.session_lab)
    lab.submit(job)                          # when it ends "done" (or "stopped" after > 0 steps) its EMA model
    lab.models.get("mine:1a2b3c")            # is registered: a checkpoints.Loaded, like a shipped checkpoint
    lab.release()                            # the session ended: stop its jobs, free its models

Why a thread that only writes plain attributes: Streamlit calls from a background thread are dropped
(ARCHITECTURE.md), and a widget change aborts a page run, so training inline in a page would not survive.
The thread runs `toy_models.training.Trainer.step()` in a loop and copies what the page shows (loss,
loss per t-bucket, snapshots) into attributes under `lock`.

Sharing the CPU with page reruns. `torch.set_num_threads(1)` is called inside the job's thread: with
this torch build (OpenMP) it sets that thread's own OpenMP team size, and the page threads keep theirs
(measured: the main thread still reports 2 after a worker set 1). `os.nice` would lower the whole server
process, so instead every job sleeps after each step for `YIELD_FRACTION` of the step's own time
(at least `MIN_YIELD_S`): the Python part of a step holds the GIL, and the sleep hands it to the page
threads, capping one job's share of a core at about 1 / (1 + YIELD_FRACTION).

Failures never stop the app: a NaN/inf loss (`TrainingError`) or any exception ends the job as
"failed" with a readable message; a GPU out-of-memory restarts the job from step 0 on the CPU, with a note.
"""

from __future__ import annotations

import copy
import io
import itertools
import os
import tempfile
import threading
import time
import uuid
import zipfile
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from toy_models.checkpoints import Loaded, save_checkpoint
from toy_models.recipes import Recipe
from toy_models.schedules import schedule_to_dict
from toy_models.training import N_BUCKETS, Trainer, TrainingError

STATUSES = ("queued", "running", "done", "stopped", "failed")
FINISHED = ("done", "stopped", "failed")
KEY_PREFIX = "mine:"  # session models are registered as "mine:<job id>"
MAX_JOBS_ENV = "COURSE_MAX_JOBS"  # how many jobs may run at once (default: os.cpu_count())
YIELD_FRACTION = 0.25  # after each step, sleep this fraction of the step's time (hands the GIL to page reruns)
MIN_YIELD_S = 0.001  # ... and at least this long
MAX_SNAPSHOTS = 40  # snapshots kept per job (older ones thinned to every other)


def is_oom(e: BaseException) -> bool:
    """True for a GPU (CUDA or MPS) out-of-memory error."""
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(e, oom_type):
        return True
    text = str(e)
    return isinstance(e, RuntimeError) and ("CUDA out of memory" in text or "MPS backend out of memory" in text)


def describe_error(e: BaseException) -> str:
    """A readable message for a failed job."""
    if isinstance(e, TrainingError):
        return str(e)
    return f"training failed with {type(e).__name__}: {e}"


@dataclass(frozen=True)
class JobView:
    """A consistent copy of a job's state, taken under its lock (what the page draws)."""

    id: str  # short id; the registered model's key is "mine:<id>"
    name: str  # a one-line description of the recipe
    status: str  # one of STATUSES
    step: int  # steps taken
    steps: int  # steps asked for
    losses: np.ndarray  # (step,) loss per dimension of every step
    bucket_losses: tuple  # (N_BUCKETS,) running mean loss per bin of t (None where no data yet)
    snapshots: tuple  # ((step, samples ndarray), ...) DDIM samples of the EMA model
    device: str  # where it trains ("" until it starts)
    wall_time_s: float  # seconds since it started (training, snapshots and yields)
    error: str | None  # why it failed
    notes: tuple  # things the user should know (e.g. "GPU out of memory: restarted on the CPU")
    queue_position: int | None  # 1 = next to start; None when not waiting
    T: int  # the recipe's number of diffusion steps (for the per-t buckets)
    is_2d: bool
    objective: str

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def seconds_per_step(self) -> float | None:
        return self.wall_time_s / self.step if self.step else None


class TrainingJob:
    """One training run in a daemon thread; see the module docstring. Start it through a JobQueue."""

    _ids = itertools.count()

    def __init__(
        self,
        recipe: Recipe,
        *,
        data=None,
        device: str = "auto",
        snapshot_every: int = 100,
        label: str | None = None,
        yield_fraction: float = YIELD_FRACTION,
        trainer_factory=Trainer,
    ):
        self.id = uuid.uuid4().hex[:6]
        self.recipe = recipe
        self.data = data  # optional (N, 2) points to train on instead of the recipe's data
        self.requested_device = device
        self.snapshot_every = max(int(snapshot_every), 1)
        self.label = label or recipe.description or recipe.name
        self.yield_fraction = float(yield_fraction)
        self._factory = trainer_factory
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._hooks: list = []  # called with the job as it finishes, before its status says so (registry)
        self._callbacks: list = []  # called with the job once it is finished (the queue's slot)
        self.order = next(TrainingJob._ids)  # submission order (tests, display)
        # -- the state the page reads (under lock) --
        self.status = "queued"
        self.step = 0
        self.steps = int(recipe.steps)
        self.losses: list[float] = []
        self.bucket_losses: list = [None] * N_BUCKETS
        self.snapshots: list[tuple[int, np.ndarray]] = []
        self.device = ""
        self.error: str | None = None
        self.notes: list[str] = []
        self.queue_position: int | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.trainer = None  # the Trainer while running; kept until the finish callbacks ran
        self.started_on: str | None = None  # the thread's name
        self.final_status: str | None = None  # how it ended, set just before the finishing hooks run

    @property
    def key(self) -> str:
        return f"{KEY_PREFIX}{self.id}"

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    def add_done_callback(self, fn) -> None:
        """fn(job) once the job is finished (at once if it already is)."""
        with self.lock:
            if not self.finished:
                self._callbacks.append(fn)
                return
        fn(self)

    def add_finishing_hook(self, fn) -> None:
        """fn(job) when the job ends, BEFORE its status turns final: a reader who sees "done" also sees what
        the hook did (the model registered). job.final_status tells the hook how it ended."""
        with self.lock:
            if self.finished:
                raise RuntimeError(f"job {self.id} has already finished")
            self._hooks.append(fn)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job is finished; True if it is."""
        return self._done.wait(timeout)

    def view(self) -> JobView:
        with self.lock:
            now = self.finished_at or time.perf_counter()
            return JobView(
                id=self.id,
                name=self.label,
                status=self.status,
                step=self.step,
                steps=self.steps,
                losses=np.asarray(self.losses, dtype=np.float64),
                bucket_losses=tuple(self.bucket_losses),
                snapshots=tuple(self.snapshots),
                device=self.device,
                wall_time_s=(now - self.started_at) if self.started_at else 0.0,
                error=self.error,
                notes=tuple(self.notes),
                queue_position=self.queue_position,
                T=int(self.recipe.schedule["T"]),
                is_2d=self.recipe.is_2d,
                objective=self.recipe.objective,
            )

    # -- control --------------------------------------------------------------------------------------
    def start(self) -> bool:
        """Start the thread (the queue calls this); False if the job was stopped while it waited."""
        with self.lock:
            if self.status != "queued" or self._stop.is_set():
                return False
            self.status, self.queue_position = "running", None
            self.started_at = time.perf_counter()
        threading.Thread(target=self._run, name=f"training-job-{self.id}", daemon=True).start()
        return True

    def stop(self) -> None:
        """Stop in any state: a queued job ends "stopped" at once; a running one after its current step."""
        with self.lock:
            queued = self.status == "queued" and not self._stop.is_set()
            self._stop.set()  # under the lock: start() cannot slip in between
            trainer = self.trainer
        if trainer is not None:
            trainer.stop()
        if queued:
            self._finish("stopped")

    # -- the thread -----------------------------------------------------------------------------------
    def _run(self) -> None:
        torch.set_num_threads(1)  # this thread's OpenMP team only (see the module docstring)
        with self.lock:
            self.started_on = threading.current_thread().name
        status, error = "done", None
        try:
            try:
                self._train(self.requested_device)
            except Exception as e:  # noqa: BLE001 - a GPU OOM falls back to the CPU, anything else fails the job
                if not is_oom(e) or self._stop.is_set():
                    raise
                with self.lock:
                    self.notes.append(
                        f"The GPU ran out of memory at step {self.step + 1} ({e.__class__.__name__}); "
                        "the job restarted from step 0 on the CPU."
                    )
                with self.lock:
                    self.trainer = None
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                self._train("cpu")
            if self._stop.is_set() and self.step < self.steps:
                status = "stopped"
        except Exception as e:  # noqa: BLE001 - never let a job take the app down
            status, error = "failed", describe_error(e)
        self._finish(status, error)

    def _train(self, device: str) -> None:
        trainer = self._factory(self.recipe, device=device, data=self.data)
        with self.lock:
            self.trainer = trainer
            self.device = str(trainer.device)
            self.step, self.losses, self.bucket_losses, self.snapshots = 0, [], [None] * N_BUCKETS, []
            self.notes.extend(trainer.messages)
        if self._stop.is_set():  # stopped while the trainer was being built
            trainer.stop()
        for _ in range(self.steps):
            if self._stop.is_set():
                break
            t0 = time.perf_counter()
            rec = trainer.step()
            samples = (
                trainer.snapshot() if rec["step"] % self.snapshot_every == 0 or rec["step"] == self.steps else None
            )
            with self.lock:
                self.step = rec["step"]
                self.losses.append(float(rec["loss"]))
                self.bucket_losses = list(rec["bucket_losses"])
                if samples is not None:
                    self._add_snapshot(rec["step"], samples)
            time.sleep(max(MIN_YIELD_S, self.yield_fraction * (time.perf_counter() - t0)))
        if self.step and (not self.snapshots or self.snapshots[-1][0] != self.step):
            samples = trainer.snapshot()  # stopped early: show the model as it is now
            if samples is not None:
                with self.lock:
                    self._add_snapshot(self.step, samples)

    def _add_snapshot(self, step: int, samples) -> None:
        self.snapshots.append((int(step), np.asarray(samples, dtype=np.float32)))
        if len(self.snapshots) > MAX_SNAPSHOTS:  # thin the older ones, keep the newest
            self.snapshots = self.snapshots[:-1][::2] + self.snapshots[-1:]

    def _finish(self, status: str, error: str | None = None) -> None:
        """Finishing hooks (registry), then the final status, then the callbacks (the queue's slot)."""
        with self.lock:
            self.final_status = status
            self.finished_at = time.perf_counter()
            hooks, self._hooks = self._hooks, []
        self._call(hooks)
        with self.lock:
            self.status, self.error, self.queue_position = status, error, None
            self.trainer = None  # the data and the optimiser state are freed; the model lives in the registry
            callbacks, self._callbacks = self._callbacks, []
        self._call(callbacks)
        self._done.set()

    def _call(self, fns) -> None:
        for fn in fns:
            try:
                fn(self)
            except Exception as e:  # noqa: BLE001 - a callback must not keep the slot or the flag
                with self.lock:
                    self.notes.append(f"after the job: {describe_error(e)}")

    # -- the trained model ------------------------------------------------------------------------------
    def to_loaded(self) -> Loaded:
        """The EMA model (on the CPU), its recipe and a sidecar like a shipped checkpoint's, named by `key`."""
        with self.lock:
            trainer, steps = self.trainer, self.step
            wall = (self.finished_at or time.perf_counter()) - (self.started_at or time.perf_counter())
        if trainer is None:
            raise RuntimeError(f"job {self.id} has no trained model any more (status {self.status})")
        model = copy.deepcopy(trainer.ema_model).to("cpu").eval()
        for p in model.parameters():
            p.requires_grad_(False)
        recipe = self.recipe.replace(name=self.key, steps=steps)
        n_train = int(trainer.x_data.shape[0])
        sidecar = {
            "name": self.key,
            "recipe": recipe.to_dict(),
            "schedule": schedule_to_dict(trainer.schedule),
            "data": {"name": recipe.data, "params": recipe.data_params, "n_train": n_train},
            "seed": trainer.seed,
            "steps": steps,
            "wall_time_s": round(wall, 2),
            "device": self.device,
            "metrics": {},
            "param_count": sum(p.numel() for p in model.parameters()),
            "trained_in": "training lab",
        }
        return Loaded(model=model, schedule=trainer.schedule, recipe=recipe.to_dict(), sidecar=sidecar)


# --- the queue ------------------------------------------------------------------------------------------
def max_jobs_from_env(environ=None) -> tuple[int, str | None]:
    """(K, a note or None): $COURSE_MAX_JOBS if it is a positive integer, else os.cpu_count()."""
    environ = os.environ if environ is None else environ
    default = max(os.cpu_count() or 1, 1)
    raw = environ.get(MAX_JOBS_ENV)
    if raw is None or raw.strip() == "":
        return default, None
    try:
        k = int(raw)
    except ValueError:
        k = 0
    if k < 1:
        return default, f"{MAX_JOBS_ENV}={raw!r} is not a positive integer; using {default} (the core count)."
    return k, None


class JobQueue:
    """Runs at most `max_running` jobs at once; the others wait first-in first-out, their place kept in
    `job.queue_position` (1 = next). A finished, stopped or failed job frees its slot for the next."""

    def __init__(self, max_running: int | None = None):
        k, self.note = (int(max_running), None) if max_running is not None else max_jobs_from_env()
        if k < 1:
            raise ValueError(f"max_running must be at least 1; got {max_running}")
        self.max_running = k
        self._lock = threading.Lock()
        self._waiting: deque[TrainingJob] = deque()
        self._running: set[TrainingJob] = set()

    def submit(self, job: TrainingJob) -> TrainingJob:
        job.add_done_callback(self._finished)
        with self._lock:
            self._waiting.append(job)
            self._number()
        self._pump()
        return job

    def counts(self) -> tuple[int, int]:
        """(running, waiting)."""
        with self._lock:
            return len(self._running), len(self._waiting)

    def jobs(self) -> list:
        """The running jobs, then the waiting ones in their order."""
        with self._lock:
            return sorted(self._running, key=lambda j: j.order) + list(self._waiting)

    def _number(self) -> None:  # under self._lock
        for i, j in enumerate(self._waiting, start=1):
            with j.lock:
                if j.status == "queued":
                    j.queue_position = i

    def _pump(self) -> None:
        while True:
            with self._lock:
                if not self._waiting or len(self._running) >= self.max_running:
                    return
                job = self._waiting.popleft()
                self._running.add(job)
                self._number()
            if not job.start():  # it was stopped while waiting: free the slot again
                with self._lock:
                    self._running.discard(job)

    def _finished(self, job: TrainingJob) -> None:
        with self._lock:
            self._running.discard(job)
            if job in self._waiting:
                self._waiting.remove(job)
            self._number()
        self._pump()


_DEFAULT_QUEUE: JobQueue | None = None
_DEFAULT_LOCK = threading.Lock()


def default_queue() -> JobQueue:
    """The one process-wide queue (every session of the server shares its K slots)."""
    global _DEFAULT_QUEUE
    with _DEFAULT_LOCK:
        if _DEFAULT_QUEUE is None:
            _DEFAULT_QUEUE = JobQueue()
        return _DEFAULT_QUEUE


# --- a session's models -----------------------------------------------------------------------------------
class ModelRegistry:
    """Models trained in this session, by key "mine:<id>": each a checkpoints.Loaded (model, schedule,
    recipe, sidecar), so a lesson uses it exactly like a shipped checkpoint."""

    def __init__(self):
        self._lock = threading.Lock()
        self._models: dict[str, Loaded] = {}

    def add(self, key: str, loaded: Loaded) -> str:
        if not key.startswith(KEY_PREFIX):
            raise ValueError(f"a session model's key starts with {KEY_PREFIX!r}; got {key!r}")
        with self._lock:
            self._models[key] = loaded
        return key

    def get(self, key: str) -> Loaded | None:
        with self._lock:
            return self._models.get(key)

    def remove(self, key: str) -> bool:
        with self._lock:
            return self._models.pop(key, None) is not None

    def clear(self) -> None:
        with self._lock:
            self._models.clear()

    def keys(self, data: str | None = None) -> list[str]:
        """Keys in the order added; only those trained on `data` when given."""
        with self._lock:
            return [k for k, m in self._models.items() if data is None or m.recipe.get("data") == data]

    def __len__(self) -> int:
        with self._lock:
            return len(self._models)

    def __contains__(self, key) -> bool:
        with self._lock:
            return key in self._models


def model_label(loaded: Loaded) -> str:
    """'mine:1a2b3c: moons, 2000 steps, L_simple' — how a session model is named in menus."""
    r, side = loaded.recipe, loaded.sidecar
    return f"{side.get('name', r.get('name'))}: {r.get('data')}, {side.get('steps')} steps, {r.get('objective')}"


def checkpoint_zip(loaded: Loaded) -> bytes:
    """A zip of the model as a course checkpoint (NAME.safetensors + NAME.json, checkpoints.save_checkpoint),
    loadable with `toy_models.checkpoints.load_checkpoint("path/NAME")`."""
    side = loaded.sidecar
    stem = str(side.get("name", loaded.recipe["name"])).replace(":", "-")
    with tempfile.TemporaryDirectory() as tmp:
        weights = save_checkpoint(
            loaded.model,
            recipe=Recipe.from_dict(loaded.recipe),
            path_stem=Path(tmp) / stem,
            schedule=loaded.schedule,
            seed=side.get("seed"),
            steps=side.get("steps"),
            wall_time_s=side.get("wall_time_s"),
            device=side.get("device"),
            data=side.get("data"),
            extra={"trained_in": "training lab"},
        )
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for p in (weights, weights.with_suffix(".json")):
                z.write(p, arcname=p.name)
    return buf.getvalue()


@dataclass
class SessionLab:
    """One browser session's jobs and models. `release()` (the session ended) stops its jobs and frees its
    models; app.session_lab wires it to st.cache_resource(scope="session", on_release=...) through a
    LabKeeper, which holds it through a disconnect for the session's reconnect grace period."""

    queue: JobQueue = field(default_factory=default_queue)
    owner: str = ""  # the browser session it belongs to (app.py: the streamlit session id)
    models: ModelRegistry = field(default_factory=ModelRegistry)
    jobs: list = field(default_factory=list)
    released: bool = False
    _zips: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def submit(self, job: TrainingJob) -> TrainingJob:
        if self.released:
            raise RuntimeError("this session has ended; its lab takes no new jobs")
        job.add_finishing_hook(self._register)
        with self._lock:
            self.jobs.append(job)
        return self.queue.submit(job)

    def _register(self, job: TrainingJob) -> None:
        if self.released or job.final_status not in ("done", "stopped") or job.step == 0:
            return
        self.models.add(job.key, job.to_loaded())

    def latest(self) -> TrainingJob | None:
        with self._lock:
            return self.jobs[-1] if self.jobs else None

    def active(self) -> bool:
        """True while one of this session's jobs is queued or running."""
        with self._lock:
            return any(not j.finished for j in self.jobs)

    def remove_model(self, key: str) -> bool:
        self._zips.pop(key, None)
        return self.models.remove(key)

    def checkpoint_zip(self, key: str) -> bytes:
        """The zipped checkpoint of a session model (made once)."""
        if key not in self._zips:
            loaded = self.models.get(key)
            if loaded is None:
                raise KeyError(f"no model {key!r} in this session")
            self._zips[key] = checkpoint_zip(loaded)
        return self._zips[key]

    def release(self) -> None:
        """Stop every job of the session and free its models (called when the session ends)."""
        self.released = True
        with self._lock:
            jobs = list(self.jobs)
        for j in jobs:
            j.stop()
        self.models.clear()
        self._zips.clear()


class LabKeeper:
    """Keeps a disconnected session's lab for a grace period, so a network blip does not end its training.

    Streamlit releases a session's session-scoped resources on every websocket disconnect, but keeps the
    session itself for `server.disconnectedSessionTTL` seconds so that a reconnecting browser finds it.
    So: on disconnect the lab is `hold`-ed (its jobs keep running); a reconnect within the grace period
    `adopt`s it back; `reap` releases (stops jobs, frees models) every lab held longer than the grace
    period: the session is gone for good.
    """

    def __init__(self, grace_s: float, clock=time.monotonic):
        self.grace_s = float(grace_s)
        self._clock = clock
        self._held: dict[str, tuple[float, SessionLab]] = {}  # session id -> (when held, lab)
        self._lock = threading.Lock()

    def hold(self, session_id: str, lab: SessionLab) -> None:
        if lab.released:
            return
        with self._lock:
            self._held[session_id] = (self._clock(), lab)
        timer = threading.Timer(self.grace_s + 1.0, self.reap)  # nobody may call reap again: do it ourselves
        timer.daemon = True
        timer.start()

    def adopt(self, session_id: str) -> SessionLab | None:
        """The lab this session left behind, if still held (and then no longer held)."""
        with self._lock:
            held = self._held.pop(session_id, None)
        return None if held is None else held[1]

    def reap(self) -> int:
        """Release every lab held longer than the grace period; return how many."""
        now = self._clock()
        with self._lock:
            old = [sid for sid, (t0, _) in self._held.items() if now - t0 >= self.grace_s]
            labs = [self._held.pop(sid)[1] for sid in old]
        for lab in labs:
            lab.release()
        return len(labs)

    def held(self) -> int:
        with self._lock:
            return len(self._held)

    def end(self, session_id: str) -> bool:
        """Release the lab held for this session now (no grace period left); True if there was one."""
        lab = self.adopt(session_id)
        if lab is not None:
            lab.release()
        return lab is not None


_KEEPER: LabKeeper | None = None


def default_keeper(grace_s: float | None = None) -> LabKeeper:
    """The one process-wide LabKeeper; grace_s (the server's session TTL) updates its grace period."""
    global _KEEPER
    with _DEFAULT_LOCK:
        if _KEEPER is None:
            _KEEPER = LabKeeper(grace_s=120.0 if grace_s is None else grace_s)
        elif grace_s is not None:
            _KEEPER.grace_s = float(grace_s)
        return _KEEPER

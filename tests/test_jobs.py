"""Background training jobs (course.jobs): a job trains and lowers the loss, stops on request, fails with a
message on a NaN loss or an exception, falls back to the CPU on a GPU out-of-memory; the queue never runs more
than K jobs and starts them first-in first-out; a session's models are registered, removable, zipped as
loadable checkpoints, and freed (jobs stopped) when the session is released."""

from __future__ import annotations

import io
import time
import zipfile

import numpy as np
import pytest
import torch

from course import jobs as J
from toy_models.checkpoints import load_checkpoint
from toy_models.recipes import get_recipe
from toy_models.training import Trainer

# The "tiny" recipe without the Gaussian skip: its loss starts near 1 (a zero output) and must fall fast.
TINY = get_recipe("tiny").replace(
    network_config={"width": 32, "n_blocks": 1, "gaussian_skip": False},
    batch_size=128,
    n_train=512,
    snapshot_n=32,
    steps=60,
    lr_warmup=5,
)
WAIT_S = 120  # generous: the first optimiser of a process imports torch._dynamo (seconds on a loaded machine)


def job(steps=60, **kw) -> J.TrainingJob:
    return J.TrainingJob(
        TINY.replace(steps=steps),
        device="cpu",
        snapshot_every=kw.pop("snapshot_every", 20),
        yield_fraction=kw.pop("yield_fraction", 0.0),
        **kw,
    )


def wait_until(cond, timeout=WAIT_S, every=0.01):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(every)
    return False


def test_a_job_trains_lowers_the_loss_and_snapshots():
    q = J.JobQueue(1)
    j = q.submit(job(120))
    assert j.wait(WAIT_S), "the job did not finish"
    v = j.view()
    assert v.status == "done" and v.error is None
    assert v.step == v.steps == 120 and v.losses.shape == (120,)
    assert v.losses[-20:].mean() < 0.7 * v.losses[:5].mean(), (v.losses[:5], v.losses[-20:])
    assert [s for s, _ in v.snapshots] == [20, 40, 60, 80, 100, 120]
    assert v.snapshots[-1][1].shape == (32, 2) and np.isfinite(v.snapshots[-1][1]).all()
    assert v.device == "cpu" and v.wall_time_s > 0
    assert sum(b is not None for b in v.bucket_losses) >= 8
    assert j.started_on.startswith("training-job-")  # it ran in its own thread
    assert j.trainer is None  # data and optimiser freed after the end


def test_stop_stops_a_running_job_within_a_few_steps():
    q = J.JobQueue(1)
    j = q.submit(job(100_000, snapshot_every=100_000))
    assert wait_until(lambda: j.view().step >= 3), "the job never started stepping"
    j.stop()
    at_stop = j.view().step
    assert j.wait(30)
    v = j.view()
    assert v.status == "stopped"
    assert at_stop <= v.step <= at_stop + 2
    assert v.snapshots and v.snapshots[-1][0] == v.step  # a final snapshot of the model as it is


def test_stop_works_on_a_queued_job_and_frees_nothing_it_did_not_hold():
    q = J.JobQueue(1)
    first = q.submit(job(100_000, snapshot_every=100_000))
    second = q.submit(job(10))
    assert wait_until(lambda: second.view().queue_position == 1)
    second.stop()
    assert second.view().status == "stopped" and second.view().step == 0
    assert q.counts() == (1, 0)
    first.stop()
    assert first.wait(30) and second.wait(1)
    assert q.counts() == (0, 0)
    assert not second.start()  # a stopped job never starts


def test_queue_runs_at_most_k_and_in_order():
    q = J.JobQueue(1)
    js = [job(25) for _ in range(3)]
    for x in js:
        q.submit(x)
    assert [x.view().queue_position for x in js[1:]] == [1, 2]
    max_running, starts = 0, {}
    end = time.time() + 3 * WAIT_S
    while not all(x.finished for x in js) and time.time() < end:
        statuses = [x.status for x in js]
        max_running = max(max_running, statuses.count("running"))
        for i, x in enumerate(js):
            if x.started_at is not None and i not in starts:
                starts[i] = x.started_at
        time.sleep(0.002)
    assert all(x.view().status == "done" for x in js)
    assert max_running == 1
    assert sorted(starts, key=starts.get) == [0, 1, 2]  # FIFO
    assert all(js[i].finished_at <= js[i + 1].started_at for i in range(2))


def test_queue_admits_k_jobs_at_once():
    q = J.JobQueue(2)
    js = [q.submit(job(100_000, snapshot_every=100_000)) for _ in range(3)]
    assert wait_until(lambda: [x.status for x in js] == ["running", "running", "queued"])
    assert q.counts() == (2, 1) and js[2].view().queue_position == 1
    js[0].stop()
    assert wait_until(lambda: js[2].status == "running"), "a freed slot must start the next job"
    for x in js:
        x.stop()
    assert all(x.wait(30) for x in js)


def test_max_jobs_from_the_environment():
    assert J.max_jobs_from_env({"COURSE_MAX_JOBS": "3"}) == (3, None)
    k, note = J.max_jobs_from_env({})
    assert k >= 1 and note is None
    for bad in ("0", "-2", "many"):
        k, note = J.max_jobs_from_env({"COURSE_MAX_JOBS": bad})
        assert k >= 1 and "COURSE_MAX_JOBS" in note
    assert J.default_queue() is J.default_queue()


def test_nan_data_fails_the_job_with_a_message():
    bad = torch.full((64, 2), float("nan"))
    q = J.JobQueue(1)
    j = q.submit(J.TrainingJob(TINY, data=bad, device="cpu"))
    assert j.wait(WAIT_S)
    v = j.view()
    assert v.status == "failed" and v.step == 0
    assert "the loss became nan" in v.error and "Lower the learning rate" in v.error
    assert q.counts() == (0, 0)  # its slot is free


def test_an_exception_fails_the_job_and_the_next_one_still_runs(monkeypatch):
    def boom(self):
        raise ValueError("a broken batch")

    q = J.JobQueue(1)
    monkeypatch.setattr(Trainer, "step", boom)
    j = q.submit(job(10))
    assert j.wait(WAIT_S)
    assert j.view().status == "failed" and j.view().error == "training failed with ValueError: a broken batch"
    monkeypatch.undo()
    k = q.submit(job(5))
    assert k.wait(WAIT_S) and k.view().status == "done"


def test_gpu_out_of_memory_restarts_on_the_cpu(monkeypatch):
    devices = []

    def factory(recipe, device, data):
        devices.append(device)
        return Trainer(recipe, device="cpu", data=data)

    real_step, calls = Trainer.step, [0]

    def step(self):
        calls[0] += 1
        if calls[0] == 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_step(self)

    monkeypatch.setattr(Trainer, "step", step)
    j = J.JobQueue(1).submit(
        J.TrainingJob(TINY.replace(steps=10), device="cuda", trainer_factory=factory, yield_fraction=0.0)
    )
    assert j.wait(WAIT_S)
    v = j.view()
    assert devices == ["cuda", "cpu"]
    assert v.status == "done" and v.step == 10 and v.losses.shape == (10,)  # restarted from step 0
    assert any("ran out of memory" in n and "CPU" in n for n in v.notes)
    assert J.is_oom(RuntimeError("CUDA out of memory. Tried ...")) and not J.is_oom(RuntimeError("other"))


def test_registry_add_get_remove():
    reg = J.ModelRegistry()
    with pytest.raises(ValueError, match="mine:"):
        reg.add("moons", object())
    lab = J.SessionLab(queue=J.JobQueue(1))
    j = lab.submit(job(30))
    assert j.wait(WAIT_S)
    assert lab.models.keys() == [j.key] and j.key.startswith("mine:")
    loaded = lab.models.get(j.key)
    assert loaded.recipe["name"] == j.key and loaded.sidecar["steps"] == 30
    assert loaded.recipe["data"] == "moons" and lab.models.keys("moons") == [j.key] and lab.models.keys("rings") == []
    assert next(loaded.model.parameters()).device.type == "cpu" and not loaded.model.training
    x = torch.randn(8, 2)
    t = torch.full((8,), 50.0)
    with torch.no_grad():  # the registered model is the job's EMA model, not the raw one
        assert not torch.allclose(loaded.model(x, t), torch.zeros(8, 2))
    assert J.model_label(loaded).startswith(f"{j.key}: moons, 30 steps")
    assert lab.remove_model(j.key) and lab.models.get(j.key) is None and not lab.remove_model(j.key)


def test_a_stopped_job_with_steps_is_registered_one_without_is_not():
    lab = J.SessionLab(queue=J.JobQueue(1))
    a = lab.submit(job(100_000, snapshot_every=100_000))
    b = lab.submit(job(10))
    assert wait_until(lambda: a.view().step >= 2)
    b.stop()  # queued: no steps
    a.stop()
    assert a.wait(30) and b.wait(5)
    assert lab.models.keys() == [a.key]


def test_checkpoint_zip_loads_back(tmp_path):
    lab = J.SessionLab(queue=J.JobQueue(1))
    j = lab.submit(job(20))
    assert j.wait(WAIT_S)
    raw = lab.checkpoint_zip(j.key)
    assert lab.checkpoint_zip(j.key) is raw  # made once
    stem = j.key.replace(":", "-")
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        assert sorted(z.namelist()) == [f"{stem}.json", f"{stem}.safetensors"]
        z.extractall(tmp_path)
    back = load_checkpoint(tmp_path / stem)
    mine = lab.models.get(j.key)
    x, t = torch.randn(16, 2), torch.full((16,), 30.0)
    with torch.no_grad():
        assert torch.allclose(back.model(x, t), mine.model(x, t), atol=1e-6)
    assert back.sidecar["steps"] == 20 and back.recipe["name"] == j.key


def test_release_stops_the_jobs_and_frees_the_models():
    q = J.JobQueue(2)
    lab = J.SessionLab(queue=q)
    done = lab.submit(job(10))
    assert done.wait(WAIT_S) and len(lab.models) == 1
    running = lab.submit(job(100_000, snapshot_every=100_000))
    assert wait_until(lambda: running.view().step >= 1)
    lab.release()
    assert running.wait(30) and running.view().status == "stopped"
    assert len(lab.models) == 0 and lab.models.get(done.key) is None
    assert q.counts() == (0, 0)
    assert lab.models.keys() == []  # a stopped job of a released session is not registered
    with pytest.raises(RuntimeError, match="ended"):
        lab.submit(job(5))


def test_training_threads_use_one_torch_thread_and_leave_the_caller_alone(monkeypatch):
    seen = []
    real_step = Trainer.step

    def step(self):
        seen.append(torch.get_num_threads())
        return real_step(self)

    monkeypatch.setattr(Trainer, "step", step)
    torch.set_num_threads(2)  # the page threads' setting (conftest uses 1)
    try:
        j = J.JobQueue(1).submit(job(3))
        assert j.wait(WAIT_S)
        assert torch.get_num_threads() == 2  # the job's set_num_threads(1) stayed in its own thread
    finally:
        torch.set_num_threads(1)
    assert seen == [1, 1, 1]


def test_lab_keeper_holds_a_disconnected_lab_for_its_grace_period():
    now = [0.0]
    keeper = J.LabKeeper(grace_s=10.0, clock=lambda: now[0])
    a, b = J.SessionLab(queue=J.JobQueue(1), owner="a"), J.SessionLab(queue=J.JobQueue(1), owner="b")
    keeper.hold("a", a)
    now[0] = 5.0
    keeper.hold("b", b)
    assert keeper.reap() == 0 and keeper.held() == 2  # within the grace period: nothing released
    assert keeper.adopt("a") is a and keeper.adopt("a") is None  # a reconnect takes its lab back, once
    now[0] = 15.5
    assert keeper.reap() == 1 and b.released and not a.released  # b's session is gone: released
    keeper.hold("a", a)
    assert keeper.end("a") and a.released and keeper.held() == 0
    assert not keeper.end("nobody")

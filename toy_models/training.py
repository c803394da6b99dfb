"""ONE trainer for every recipe, used by the CLI and by the app's live training.

    trainer = Trainer("moons")          # or a Recipe; device="auto" picks CUDA -> MPS -> CPU
    trainer.run(500, callback=print, should_stop=lambda: False, snapshot_every=100)
    trainer.ema_model                   # the EMA weights: the model to sample from

Each `step()` draws a batch x_0 (and labels y), times t ~ U{1..T}, noise eps ~ N(0, I), and takes one
AdamW step on the recipe's objective:
    "simple"  L_simple = ||eps - eps_theta(x_t, t, y)||^2 / D                (Ho et al. 2020, eq. 14)
    "vlb"     L_vlb = E_t[L_{t-1} / p(t)] / D with L_{t-1} from elbo.vb_term  (Ho et al. eq. 5); p(t)
              uniform 1/T, or importance-sampled p(t) ~ sqrt(E[L_{t-1}^2])  (Nichol & Dhariwal 2021, eq. 18)
    "hybrid"  L_simple + lambda L_vlb                                          (Nichol & Dhariwal 2021, eq. 16)
              Here sigma_t is fixed (not learned), so L_vlb only reweights the mean's error over t.
    "ce"      -log p_phi(y | x_t, t): a noisy classifier for classifier guidance (Dhariwal & Nichol 2021)
Losses are reported per dimension (divided by D): MSE per dimension, or nats per dimension.

Label dropout (p_uncond) replaces y by the null label so one network learns both eps(x_t, t, y) and
eps(x_t, t) for classifier-free guidance (Ho & Salimans 2022). Inpainting recipes draw random masks
(boxes, halves, scattered pixels) and feed [x_t, mask, mask * x_0] to the InpaintUNet.

Progress records are plain dicts: step, loss, lr, wall_time_s, bucket_losses (running means of the
per-example loss in 10 equal bins of t, None where a bin has no data yet), and `samples` (a tensor of a
few DDIM samples from the EMA model) when a snapshot was taken.
"""

from __future__ import annotations

import copy
import math
import threading
import time

import torch
import torch.nn.functional as F

from . import networks
from .diffusion import q_sample
from .elbo import l_simple, vb_term
from .recipes import DEVICES, Recipe, get_recipe
from .schedules import schedule_from_dict

N_BUCKETS = 10  # bins of t for the per-t loss curve
BUCKET_DECAY = 0.9  # running mean of each bin: m <- decay m + (1 - decay) * batch mean


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN or infinite loss); the message says what to change."""


# --- device -------------------------------------------------------------------------------------
def pick_device(device: str = "auto") -> torch.device:
    """CUDA when present, else Apple MPS, else CPU; an explicit unavailable device raises ValueError."""
    device = str(device)
    if device not in DEVICES and not device.startswith("cuda:"):
        raise ValueError(f"device must be one of {DEVICES} (or 'cuda:N'); got {device!r}")
    mps_ok = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps_ok else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch sees no CUDA GPU; use device='auto' or 'cpu'")
    if device == "mps" and not mps_ok:
        raise ValueError("device 'mps' was asked for but Apple MPS is not available; use device='auto' or 'cpu'")
    return torch.device(device)


# --- recipe, data, network ----------------------------------------------------------------------
def resolve_recipe(recipe) -> Recipe:
    """A recipe with num_classes = -1 ("from the data") replaced by the data's number of classes."""
    recipe = get_recipe(recipe)
    cfg = dict(recipe.network_config)
    if cfg.get("num_classes", 0) == -1:
        if recipe.data == "mnist":
            cfg["num_classes"] = 10
        else:
            from .data import num_classes_2d

            cfg["num_classes"] = int(num_classes_2d(recipe.data))
        recipe = recipe.replace(network_config=cfg)
    return recipe


def load_training_data(recipe: Recipe):
    """(x, y) for a recipe: a fixed draw of n_train 2D points, or the MNIST training images."""
    if recipe.is_2d:
        from .data import sample_2d

        x, y = sample_2d(recipe.data, recipe.n_train, seed=recipe.data_seed, **recipe.data_params)
    else:
        from .data import load_mnist

        d = load_mnist()
        x, y = d.x_train, d.y_train
    return torch.as_tensor(x, dtype=torch.float32), (None if y is None else torch.as_tensor(y, dtype=torch.long))


def _as_xy(data):
    """Accept (x, y), an x tensor, or an object with x_train / y_train (data.MnistData)."""
    if hasattr(data, "x_train"):
        data = (data.x_train, data.y_train)
    if torch.is_tensor(data):
        data = (data, None)
    x, y = data
    x = torch.as_tensor(x, dtype=torch.float32)
    y = None if y is None else torch.as_tensor(y, dtype=torch.long)
    if y is not None and y.shape[0] != x.shape[0]:
        raise ValueError(f"data: x has {x.shape[0]} examples but y has {y.shape[0]}")
    return x, y


def build_model(recipe: Recipe) -> torch.nn.Module:
    """The fresh network a recipe names, with its config (and its schedule, for a Gaussian skip)."""
    return networks.build_network(recipe.network, recipe.network_config, schedule_from_dict(recipe.schedule))


# --- masks for inpainting ---------------------------------------------------------------------------
def random_masks(n: int, kinds, size: int = 28, generator=None) -> torch.Tensor:
    """(n, 1, size, size) masks, 1 = known pixel: a random mix of
    "box"    everything known except a random rectangle (6..18 pixels a side) to fill in,
    "half"   one half known (top, bottom, left or right),
    "pixels" a random 5..50 % of the pixels known, scattered.
    """
    kinds = list(kinds)
    bad = [k for k in kinds if k not in ("box", "half", "pixels")]
    if not kinds or bad:
        raise ValueError(f"mask kinds must be a non-empty list from ('box', 'half', 'pixels'); got {kinds}")
    g = generator
    which = torch.randint(len(kinds), (n,), generator=g)
    masks = torch.ones(n, 1, size, size)
    rows = torch.arange(size)
    for i in range(n):
        kind = kinds[int(which[i])]
        if kind == "box":
            h, w = (torch.randint(6, 19, (2,), generator=g)).tolist()
            r0 = int(torch.randint(0, size - h + 1, (1,), generator=g))
            c0 = int(torch.randint(0, size - w + 1, (1,), generator=g))
            masks[i, 0, r0 : r0 + h, c0 : c0 + w] = 0.0
        elif kind == "half":
            side = int(torch.randint(4, (1,), generator=g))
            keep = rows < size // 2
            if side in (1, 3):
                keep = ~keep
            m = keep[:, None].expand(size, size) if side < 2 else keep[None, :].expand(size, size)
            masks[i, 0] = m.float()
        else:
            frac = 0.05 + 0.45 * float(torch.rand(1, generator=g))
            masks[i, 0] = (torch.rand(size, size, generator=g) < frac).float()
    return masks


# --- the trainer -------------------------------------------------------------------------------------
class Trainer:
    """Trains `recipe` (a Recipe or a name in RECIPES) from scratch; see the module docstring.

    device: "auto" (CUDA -> MPS -> CPU), "cpu", "cuda" or "mps". seed: overrides recipe.seed.
    data: optional (x, y) / x / MnistData to train on instead of the recipe's data.
    Thread use (the app): run() in a worker thread; read `latest`, `history`, `snapshots` under `lock`;
    call stop() from any thread.
    """

    def __init__(self, recipe, device="auto", seed=None, data=None):
        self.recipe = r = resolve_recipe(recipe)
        self.device = pick_device(device)
        self.seed = r.seed if seed is None else int(seed)
        self.schedule = schedule_from_dict(r.schedule)
        x, y = _as_xy(data) if data is not None else load_training_data(r)
        if (r.conditional or r.kind == "classifier") and y is None:
            raise ValueError(f"recipe {r.name!r} needs labels, but the data {r.data!r} has none")
        self.x_data = x.to(self.device)  # (N, ...) the training set
        self.y_data = None if y is None else y.to(self.device)  # (N,) labels or None
        self.dims = int(x[0].numel())  # D, dimensions per example
        self.data_kind = "continuous" if r.is_2d else "image8bit"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.model = build_model(r).to(self.device)
        self.messages: list[str] = []  # notes for the user (e.g. where the initial weights came from)
        if r.init_from:
            self._init_from(r.init_from)
        self.ema_model = copy.deepcopy(self.model).eval()
        for p in self.ema_model.parameters():
            p.requires_grad_(False)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=r.lr, weight_decay=r.weight_decay)
        self.generator = torch.Generator().manual_seed(self.seed)  # batches, t, noise, masks (CPU: reproducible)
        self.step_count = 0
        self.wall_time_s = 0.0
        self.history: list[dict] = []  # one record per step (without samples)
        self.snapshots: list[tuple[int, torch.Tensor]] = []  # (step, samples)
        self.latest: dict | None = None
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._bucket_mean = [math.nan] * N_BUCKETS
        T = self.schedule.T
        self._vlb_hist = torch.zeros(T + 1, 10, dtype=torch.float64)  # last 10 L_t^2 per t (importance sampling)
        self._vlb_count = torch.zeros(T + 1, dtype=torch.long)
        self._snapshot_noise = None

    # -- set-up helpers -------------------------------------------------------------------------------
    def _init_from(self, name: str):
        """Copy every tensor of checkpoint `name` whose shape fits; for a wider input conv copy the
        x_t channel and zero the extra ones (mask, known pixels) so training starts from the prior."""
        from .checkpoints import CheckpointError, load_checkpoint

        try:
            src = load_checkpoint(name, device="cpu").model.state_dict()
        except CheckpointError as e:
            self.messages.append(f"init_from {name!r} not available, training from scratch: {e}")
            return
        own = self.model.state_dict()
        copied = 0
        for k, v in own.items():
            w = src.get(k)
            if w is None:
                continue
            if w.shape == v.shape:
                own[k] = w.clone()
                copied += 1
            elif v.ndim == 4 and w.ndim == 4 and w.shape[1] < v.shape[1] and w.shape[0] == v.shape[0]:
                new = torch.zeros_like(v)
                new[:, : w.shape[1]] = w
                own[k] = new
                copied += 1
        self.model.load_state_dict(own)
        self.messages.append(f"initialised {copied}/{len(own)} tensors from checkpoint {name!r}")

    def lr_at(self, step: int) -> float:
        """Linear warm-up to lr, then constant or cosine decay to lr_min_factor * lr at recipe.steps."""
        r = self.recipe
        if step < r.lr_warmup:
            return r.lr * (step + 1) / r.lr_warmup
        if r.lr_schedule == "constant":
            return r.lr
        span = max(r.steps - r.lr_warmup, 1)
        u = min((step - r.lr_warmup) / span, 1.0)
        return r.lr * (r.lr_min_factor + (1 - r.lr_min_factor) * 0.5 * (1 + math.cos(math.pi * u)))

    # -- one step ---------------------------------------------------------------------------------------
    def _batch(self):
        g, r = self.generator, self.recipe
        idx = torch.randint(self.x_data.shape[0], (r.batch_size,), generator=g).to(self.device)
        x0 = self.x_data[idx]
        y = None if self.y_data is None or not (r.conditional or r.kind == "classifier") else self.y_data[idx]
        if y is not None and r.kind != "classifier" and r.p_uncond > 0:
            drop = (torch.rand(r.batch_size, generator=g) < r.p_uncond).to(self.device)
            y = torch.where(drop, torch.full_like(y, self.model.num_classes), y)  # the null label
        return x0, y

    def _sample_t(self):
        """t ~ U{1..T}, or importance-sampled for L_vlb once every t has 10 recorded losses. Returns (t, p_t)."""
        T, B, g = self.schedule.T, self.recipe.batch_size, self.generator
        if (
            self.recipe.objective == "vlb"
            and self.recipe.vlb_sampling == "importance"
            and bool((self._vlb_count[1:] >= 10).all())
        ):
            w = self._vlb_hist[1:].mean(1).sqrt()
            p = w / w.sum() * 0.999 + 0.001 / T  # (T,) Nichol & Dhariwal's mix with a little uniform
            t = torch.multinomial(p, B, replacement=True, generator=g) + 1
            return t, p[t - 1]
        t = torch.randint(1, T + 1, (B,), generator=g)
        return t, torch.full((B,), 1.0 / T, dtype=torch.float64)

    def _record_vlb(self, t, terms):
        for ti, v in zip(t.tolist(), terms.detach().double().cpu().tolist()):
            self._vlb_hist[ti] = torch.roll(self._vlb_hist[ti], 1)
            self._vlb_hist[ti, 0] = v * v
            self._vlb_count[ti] += 1

    def _losses(self, x0, y, t_cpu, p_t):
        """Per-example losses (B,) for the recipe's objective."""
        r, s, dev = self.recipe, self.schedule, self.device
        t = t_cpu.to(dev)
        noise = torch.randn(x0.shape, generator=self.generator).to(dev)
        if r.kind == "classifier":
            logits = self.model(q_sample(s, x0, t, noise), t.float(), None)
            return F.cross_entropy(logits, y, reduction="none")
        if r.kind == "inpaint":
            mask = random_masks(x0.shape[0], r.mask_kinds, x0.shape[-1], self.generator).to(dev)
            x_t = q_sample(s, x0, t, noise)
            out = self.model(x_t, t.float(), y, mask=mask, known=mask * x0)
            return ((noise - out) ** 2).flatten(1).sum(1) / self.dims
        loss = 0.0
        if r.objective in ("simple", "hybrid"):
            loss = l_simple(s, self.model, x0, t, y, noise=noise) / self.dims
        if r.objective in ("vlb", "hybrid"):
            terms = vb_term(s, self.model, x0, t, y, r.variance, self.data_kind, noise=noise)  # (B,) nats
            if r.objective == "vlb" and r.vlb_sampling == "importance":
                self._record_vlb(t_cpu, terms)
            # E_{t~p}[L_{t-1} / p(t)] = sum_t L_{t-1} (the bound without L_T), per dimension
            vlb = terms / (p_t.to(dev, terms.dtype) * self.dims)
            loss = vlb if r.objective == "vlb" else loss + r.vlb_weight * vlb
        return loss

    def step(self) -> dict:
        """One optimisation step; returns its progress record (also kept in `history` and `latest`)."""
        with self.lock:
            start = time.perf_counter()
            self.model.train()
            x0, y = self._batch()
            t, p_t = self._sample_t()
            losses = self._losses(x0, y, t, p_t)  # (B,)
            loss = losses.mean()
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"the loss became {loss.item()} at step {self.step_count + 1} of recipe {self.recipe.name!r}; "
                    f"training stopped. Lower the learning rate (now {self.lr_at(self.step_count):g}) or the "
                    f"gradient clip ({self.recipe.grad_clip}), or check the data for NaNs."
                )
            lr = self.lr_at(self.step_count)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if self.recipe.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.recipe.grad_clip)
            self.optimizer.step()
            self._update_ema()
            self.step_count += 1
            self._update_buckets(t, losses.detach())
            self.wall_time_s += time.perf_counter() - start
            rec = {
                "step": self.step_count,
                "loss": loss.item(),
                "lr": lr,
                "wall_time_s": self.wall_time_s,
                "bucket_losses": [None if math.isnan(v) else v for v in self._bucket_mean],
            }
            self.history.append(rec)
            self.latest = rec
            return rec

    @torch.no_grad()
    def _update_ema(self):
        r, n = self.recipe, self.step_count
        decay = min(r.ema_decay, (1 + n) / (10 + n)) if r.ema_warmup else r.ema_decay
        for pe, p in zip(self.ema_model.parameters(), self.model.parameters()):
            pe.lerp_(p.detach(), 1.0 - decay)
        for be, b in zip(self.ema_model.buffers(), self.model.buffers()):
            be.copy_(b)

    def _update_buckets(self, t, losses):
        T = self.schedule.T
        b = ((t - 1) * N_BUCKETS // T).clamp(0, N_BUCKETS - 1)  # (B,) bin of each t
        sums = torch.bincount(b, weights=losses.double().cpu(), minlength=N_BUCKETS)
        counts = torch.bincount(b, minlength=N_BUCKETS)
        for i in range(N_BUCKETS):
            if counts[i] > 0:
                m = float(sums[i] / counts[i])
                old = self._bucket_mean[i]
                self._bucket_mean[i] = m if math.isnan(old) else BUCKET_DECAY * old + (1 - BUCKET_DECAY) * m

    # -- snapshots ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def snapshot(self, n=None, steps=None) -> torch.Tensor | None:
        """A few DDIM samples from the EMA model, from the same x_T each time (so they can be compared);
        None for a classifier. Images are clipped to [-1, 1] via the x_0 estimate."""
        r = self.recipe
        if r.kind == "classifier":
            return None
        from .samplers import sample_ddim  # the project's one DDIM

        n = n or r.snapshot_n
        shape = (n, *self.x_data.shape[1:])
        if self._snapshot_noise is None or self._snapshot_noise.shape != shape:
            g = torch.Generator().manual_seed(self.seed + 1)
            self._snapshot_noise = torch.randn(shape, generator=g)
        x_T = self._snapshot_noise.to(self.device)
        model, y = self.ema_model, None
        if r.conditional:
            k = self.ema_model.num_classes
            y = (
                torch.arange(n, device=self.device) % k
                if not r.is_2d
                else torch.full((n,), k, dtype=torch.long, device=self.device)
            )  # digits: 0..9; 2D: the null label
        if r.kind == "inpaint":
            x0 = self.x_data[:n]
            mask = torch.ones_like(x0)
            mask[..., :, x0.shape[-1] // 2 :] = 0.0  # the right half is unknown
            model = self.ema_model.conditioned(mask, mask * x0)
        clip = None if r.is_2d else (-1.0, 1.0)
        out = sample_ddim(model, self.schedule, x_T, steps=steps or r.snapshot_steps, y=y, clip_x0=clip)
        return out.detach().cpu()

    # -- running ------------------------------------------------------------------------------------------
    def stop(self):
        """Ask a running `run` to stop after the current step (safe from any thread)."""
        self._stop.set()

    def run(self, steps=None, callback=None, should_stop=None, snapshot_every=None) -> list[dict]:
        """Take `steps` steps (default: the recipe's remaining steps); stop early on stop() or should_stop().

        callback(record) after each step; snapshot_every=N adds "samples" to every N-th record and the last.
        Returns the records of this run.
        """
        steps = max(self.recipe.steps - self.step_count, 0) if steps is None else int(steps)
        records = []
        try:
            for i in range(steps):
                if self._stop.is_set() or (should_stop is not None and should_stop()):
                    break
                rec = self.step()
                if snapshot_every and (rec["step"] % snapshot_every == 0 or i == steps - 1):
                    samples = self.snapshot()
                    with self.lock:
                        rec["samples"] = samples
                        if samples is not None:
                            self.snapshots.append((rec["step"], samples))
                records.append(rec)
                if callback is not None:
                    callback(rec)
        finally:
            self._stop.clear()
        return records

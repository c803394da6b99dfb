"""Guidance wraps the model; it never copies a sampler.

Each wrapper below is itself a model (the protocol of diffusion.py: `model(x_t, t, y=None)`,
t a (B,) float tensor, attribute `parameterization`), so every sampler runs guided generation
unchanged: `sample_ddim(ClassifierFreeGuidance(unet, w=2, null_label=10), s, x_T, y=labels)`.

Scale conventions (both wrappers: scale 0 returns the unguided model's output exactly)
    ClassifierFreeGuidance  eps = eps_uncond + w (eps_cond - eps_uncond)
                            w = 0 unconditional, w = 1 conditional, w > 1 sharper.
                            Ho & Salimans (2022, eq. 6) write (1 + w') eps_cond - w' eps_uncond:
                            the same thing with w = 1 + w'.
    ClassifierGuidance      eps = eps - gamma sqrt(1 - abar_t) grad_x log p_phi(y | x_t, t)
                            (Dhariwal & Nichol 2021, Algorithm 2 / eq. 14, where the scale is
                            called s: score + gamma grad log p). The course writes gamma, since s
                            is the score s_theta; the argument is `s_scale`.
"""

from __future__ import annotations

import math

import torch

from .diffusion import parameterization_of
from .schedules import Schedule
from .shapes import append_dims, as_timesteps


def null_labels(model, n: int) -> torch.Tensor | None:
    """Labels that ask a model for no class: its null label (= num_classes, the label dropped in training)
    n times for a label-conditional model, None for an unconditional one (networks.py's convention)."""
    k = int(getattr(model, "num_classes", 0) or 0)
    return torch.full((int(n),), k, dtype=torch.long) if k > 0 else None


def _as_labels(y, batch: int, device) -> torch.Tensor:
    y = torch.as_tensor(y, device=device).long()
    if y.ndim == 0:
        y = y.expand(batch)
    if y.shape != (batch,):
        raise ValueError(f"y must be a scalar or a (B,) tensor of labels with B = {batch}; got shape {tuple(y.shape)}")
    return y


class ClassifierFreeGuidance:
    """Classifier-free guidance (Ho & Salimans 2022): eps_uncond + w (eps_cond - eps_uncond).

    model: a class-conditional model trained with label dropout; `null_label` is the label that
        means "no class" (e.g. num_classes). w: the guidance scale (see the module docstring).
    The conditional and unconditional predictions come from ONE batched call (the batch is
    doubled: cond rows then null rows). At w = 0 and w = 1 only the one needed call is made, so
    those scales reproduce the unconditional and the conditional model bit for bit.
    The combination is affine with weights summing to one, so it is equally valid for models
    that predict x_0 or the posterior mean: `parameterization` is kept.
    With y=None the output is the unconditional prediction.
    """

    def __init__(self, model, w: float, null_label: int):
        w = float(w)
        if not math.isfinite(w):
            raise ValueError(f"the guidance scale w must be a finite number; got {w}")
        self.model, self.w, self.null_label = model, w, int(null_label)
        self.parameterization = parameterization_of(model)

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
        B = x_t.shape[0]
        t = as_timesteps(t, B, x_t.device)
        null = torch.full((B,), self.null_label, dtype=torch.long, device=x_t.device)
        if y is None or self.w == 0.0:
            return self.model(x_t, t, null)
        y = _as_labels(y, B, x_t.device)
        if self.w == 1.0:
            return self.model(x_t, t, y)
        out = self.model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, null]))  # (2B, ...)
        eps_cond, eps_uncond = out[:B], out[B:]
        return eps_uncond + self.w * (eps_cond - eps_uncond)

    def __repr__(self):
        return f"ClassifierFreeGuidance(w={self.w:g}, null_label={self.null_label})"


def classifier_log_prob_grad(classifier, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """grad_x log p_phi(y | x_t, t) by autograd, one row per example; shaped like x_t.

    classifier(x_t, t) -> logits (B, num_classes); log p = log_softmax(logits)[y]. Examples are
    independent, so the gradient of the summed log-probabilities gives every row's own gradient.
    """
    with torch.enable_grad():
        x = x_t.detach().requires_grad_(True)
        logits = classifier(x, t)
        if logits.ndim != 2 or logits.shape[0] != x.shape[0]:
            raise ValueError(f"the classifier must return logits (B, num_classes); got {tuple(logits.shape)}")
        log_p = torch.log_softmax(logits, dim=1).gather(1, y[:, None]).sum()
        (grad,) = torch.autograd.grad(log_p, x)
    return grad


class ClassifierGuidance:
    """Classifier guidance (Dhariwal & Nichol 2021, eq. 14): eps - gamma sqrt(1 - abar_t) grad log p(y | x_t, t).

    gamma = s_scale. In score terms: grad log p_gamma(x_t | y) = grad log p(x_t) + gamma grad log p_phi(y | x_t)
    and eps = -sqrt(1 - abar_t) * score. The noisy classifier takes (x_t, t) and returns logits;
    abar_t comes from `schedule.alpha_bar(t)`, so real-valued t (ODE samplers) works.

    model: the diffusion model (eps or x0 parameterization). By default it is called with y=None
        (an unconditional model, as in the paper's main experiments); pass_y=True hands it the
        labels too (guiding a conditional model). With y=None or gamma = 0 the output is the
        unguided model's output exactly.
    """

    def __init__(self, model, classifier, s_scale: float, schedule: Schedule, pass_y: bool = False):
        s_scale = float(s_scale)
        if not math.isfinite(s_scale):
            raise ValueError(f"the guidance scale s must be a finite number; got {s_scale}")
        self.parameterization = parameterization_of(model)
        if self.parameterization not in ("eps", "x0"):
            raise ValueError(f"classifier guidance needs an 'eps' or 'x0' model; got {self.parameterization!r}")
        self.model, self.classifier, self.s, self.schedule, self.pass_y = model, classifier, s_scale, schedule, pass_y

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, y=None) -> torch.Tensor:
        B = x_t.shape[0]
        t = as_timesteps(t, B, x_t.device)
        y = None if y is None else _as_labels(y, B, x_t.device)
        out = self.model(x_t, t, y if self.pass_y else None)
        if y is None or self.s == 0.0:
            return out
        grad = classifier_log_prob_grad(self.classifier, x_t, t, y)  # (B, ...)
        abar = append_dims(self.schedule.alpha_bar(t.detach().cpu()), x_t.ndim).to(x_t.device)  # float64
        shift = (self.s * (1.0 - abar).sqrt()).to(x_t.dtype) * grad  # gamma sqrt(1 - abar_t) grad log p
        if self.parameterization == "eps":
            return out - shift
        # x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar): shifting eps by -shift moves x0 by +shift sqrt((1-abar)/abar)
        return out + shift * ((1.0 - abar) / abar).sqrt().to(x_t.dtype)

    def __repr__(self):
        return f"ClassifierGuidance(s={self.s:g})"

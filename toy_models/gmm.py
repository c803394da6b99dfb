"""Exact ground truth for Gaussian-mixture data: every quantity a diffusion model learns, in closed form.

If x_0 ~ sum_k w_k N(mu_k, Sigma_k), then the forward process (Ho et al. 2020, eq. 4),
x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps, keeps it a mixture:

    q_t(x_t) = sum_k w_k N(x_t; sqrt(abar_t) mu_k, abar_t Sigma_k + (1 - abar_t) I).

So the score grad log q_t, the optimal noise predictor eps*(x_t, t) = -sqrt(1 - abar_t) grad log q_t
(Ho et al. eq. 11 with Song et al. 2021), the denoiser E[x_0 | x_t] (Tweedie's formula), the exact
reverse step q(x_{t-1} | x_t) and the data log-likelihood log q(x_0) are all exact. They are the
answers that lessons draw beside a learned model, and that tests compare against.

Implementation: each covariance is kept in its eigenbasis, Sigma_k = U_k diag(lambda_k) U_k^T.
Adding isotropic noise keeps the eigenvectors, abar Sigma_k + (1 - abar) I = U_k diag(abar lambda_k
+ 1 - abar) U_k^T, so one set of eigenvectors serves every t, a different t per example costs nothing
extra, and zero covariances (a finite point set, `GaussianMixture.from_points`) need no special case
once abar < 1. For many points in high dimension (5,000 MNIST digits, D = 784) use
`EmpiricalDistribution`, which never builds a D x D matrix.

Models that follow the samplers' protocol: `AnalyticModel` (any mixture or point set, labels, real t),
`MixtureEpsModel` (an unconditional mixture, precisions tabulated per integer t: a 1,000-step chain of
2,000 points in about a second) and `ExactNoisyClassifier` (log p(y | x_t) by Bayes' rule, for guidance).

Shapes: x is (B, D) for a `GaussianMixture`; `EmpiricalDistribution` also takes images (B, C, H, W)
and returns the same shape. alpha_bar is a float or a (B,) tensor (one noise level per example);
alpha_bar=None means the clean data (abar = 1). Everything is computed in float64.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .schedules import Schedule
from .shapes import check_int, shares_one_t

LOG_2PI = math.log(2 * math.pi)
CHUNK_ELEMENTS = 2_000_000  # bound on B_chunk * K * D per intermediate (memory for big point sets)
KL_METHODS = ("mc", "quadrature")


def _f64(x) -> torch.Tensor:
    return torch.as_tensor(x).to(torch.float64)


def _alpha_bar_vector(alpha_bar, batch: int, device) -> torch.Tensor:
    """alpha_bar (None, float, 0-d or (B,)) -> (B,) float64 in [0, 1]."""
    if alpha_bar is None:
        return torch.ones(batch, dtype=torch.float64, device=device)
    a = torch.as_tensor(alpha_bar, dtype=torch.float64, device=device)
    if a.ndim == 0:
        a = a.expand(batch)
    if a.ndim != 1 or a.shape[0] != batch:
        raise ValueError(f"alpha_bar must be a number or a (B,) tensor with B = {batch}; got shape {tuple(a.shape)}")
    if (a < 0).any() or (a > 1).any():
        raise ValueError(f"alpha_bar must lie in [0, 1]; got {a.min().item()}..{a.max().item()}")
    return a


# =============================================================================================
# Gaussian mixture with full covariances
# =============================================================================================
class GaussianMixture:
    """p(x) = sum_k w_k N(x; mu_k, Sigma_k) in D dimensions, float64.

    weights: (K,) non-negative, normalised to sum to 1.
    means:   (K, D).
    covs:    (K, D, D) symmetric positive semi-definite (zero is allowed: a point mass).
    """

    def __init__(self, weights, means, covs):
        weights, means, covs = _f64(weights), _f64(means), _f64(covs)
        if means.ndim != 2:
            raise ValueError(f"means must have shape (K, D); got {tuple(means.shape)}")
        K, D = means.shape
        if weights.shape != (K,):
            raise ValueError(f"weights must have shape (K,) = ({K},); got {tuple(weights.shape)}")
        if covs.shape != (K, D, D):
            raise ValueError(f"covs must have shape (K, D, D) = ({K}, {D}, {D}); got {tuple(covs.shape)}")
        if (weights < 0).any() or not weights.sum() > 0:
            raise ValueError("weights must be non-negative with a positive sum")
        if not torch.allclose(covs, covs.transpose(1, 2), atol=1e-10):
            raise ValueError("every covariance must be symmetric")
        lam, U = torch.linalg.eigh(covs)  # Sigma_k = U_k diag(lam_k) U_k^T
        if (lam < -1e-10 * lam.abs().max().clamp(min=1.0)).any():
            raise ValueError("every covariance must be positive semi-definite")
        self._set(weights / weights.sum(), means, U, lam.clamp(min=0.0))

    def _set(self, weights, means, U, lam):
        self.weights = weights  # (K,) w_k
        self.means = means  # (K, D) mu_k
        self.eigvecs = U  # (K, D, D) columns are the eigenvectors of Sigma_k
        self.eigvals = lam  # (K, D) eigenvalues of Sigma_k, >= 0
        self.covs = U @ torch.diag_embed(lam) @ U.transpose(1, 2)  # (K, D, D) Sigma_k
        K, D = means.shape
        # the eigenbases side by side, so that projecting onto every component is one matmul
        self._u_cols = U.permute(1, 0, 2).reshape(D, K * D)  # [d, (k, e)] = U_k[d, e]
        self._u_rows = U.permute(0, 2, 1).reshape(K * D, D)  # [(k, e), d] = U_k[d, e]
        self._mu_eig = torch.einsum("kd,kde->ke", means, U)  # (K, D) U_k^T mu_k

    @classmethod
    def _from_eig(cls, weights, means, U, lam) -> GaussianMixture:
        g = cls.__new__(cls)
        g._set(weights / weights.sum(), means, U, lam)
        return g

    @classmethod
    def from_points(cls, points, weights=None) -> GaussianMixture:
        """The finite point set itself: sum_i w_i delta(x - x_i) (zero covariances).

        The "ideal denoiser" data: the exact optimum of the training loss on a finite training
        set. It has no density at abar = 1; once noised (abar < 1) it is a proper mixture.
        """
        pts = _f64(points)
        if pts.ndim != 2:
            raise ValueError(f"points must have shape (N, D); got {tuple(pts.shape)}")
        N, D = pts.shape
        w = torch.ones(N, dtype=torch.float64) if weights is None else _f64(weights)
        U = torch.eye(D, dtype=torch.float64).expand(N, D, D).clone()
        return cls._from_eig(w, pts, U, torch.zeros(N, D, dtype=torch.float64))

    # -- basic facts -------------------------------------------------------------------------
    @property
    def num_components(self) -> int:
        return self.means.shape[0]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def is_singular(self) -> bool:
        """True if some component has a zero-variance direction (no density at abar = 1)."""
        return bool((self.eigvals <= 0).any())

    def mean(self) -> torch.Tensor:
        """(D,) E[x] = sum_k w_k mu_k."""
        return self.weights @ self.means

    def cov(self) -> torch.Tensor:
        """(D, D) Cov[x] = sum_k w_k (Sigma_k + mu_k mu_k^T) - E[x] E[x]^T (law of total covariance)."""
        m = self.mean()
        second = torch.einsum("k,kde->de", self.weights, self.covs + self.means[:, :, None] * self.means[:, None, :])
        return second - torch.outer(m, m)

    def __repr__(self) -> str:
        return f"GaussianMixture(K={self.num_components}, D={self.dim})"

    # -- new mixtures from this one ------------------------------------------------------------
    def noised(self, alpha_bar) -> GaussianMixture:
        """The mixture of q(x_t): means sqrt(abar) mu_k, covs abar Sigma_k + (1 - abar) I  (Ho et al. eq. 4)."""
        a = float(alpha_bar)
        if not 0.0 <= a <= 1.0:
            raise ValueError(f"alpha_bar must lie in [0, 1]; got {a}")
        return GaussianMixture._from_eig(
            self.weights, math.sqrt(a) * self.means, self.eigvecs, a * self.eigvals + (1.0 - a)
        )

    def component(self, k: int) -> GaussianMixture:
        """The single Gaussian N(mu_k, Sigma_k) as a one-component mixture."""
        if not 0 <= int(k) < self.num_components:
            raise ValueError(f"component index must lie in 0..{self.num_components - 1}; got {k}")
        return self.subset(torch.tensor([int(k)]))

    def subset(self, index) -> GaussianMixture:
        """The mixture restricted to some components (indices or a (K,) bool mask), weights renormalised."""
        index = torch.as_tensor(index)
        if index.dtype == torch.bool:
            if index.shape != (self.num_components,):
                raise ValueError(f"a mask must have shape ({self.num_components},); got {tuple(index.shape)}")
            index = index.nonzero().flatten()
        if index.numel() == 0 or not self.weights[index].sum() > 0:
            raise ValueError("subset needs at least one component of positive weight")
        return GaussianMixture._from_eig(
            self.weights[index], self.means[index], self.eigvecs[index], self.eigvals[index]
        )

    # -- evaluation at points (optionally of the noised mixture q_t) ----------------------------
    @property
    def is_isotropic(self) -> bool:
        """True if every Sigma_k is a multiple of I (e.g. a point set): distances by matmul, no eigenbasis."""
        return bool((self.eigvals == self.eigvals[:, :1]).all())

    def _prepare(self, x, alpha_bar):
        x = _f64(x).to(self.means.device)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x must have shape (B, {self.dim}); got {tuple(x.shape)}")
        return x, _alpha_bar_vector(alpha_bar, x.shape[0], x.device)

    def _evaluate(self, what: str, x, alpha_bar):
        """Run `what` ("log_prob", "resp", "score", "denoise") in chunks of rows (bounded memory)."""
        x, a = self._prepare(x, alpha_bar)
        iso = self.is_isotropic
        per_row = self.num_components * (1 if iso else self.dim)
        step = max(1, CHUNK_ELEMENTS // per_row)
        fn = self._eval_isotropic if iso else self._eval_general
        parts = [fn(what, x[i : i + step], a[i : i + step]) for i in range(0, x.shape[0], step)]
        if parts:
            return torch.cat(parts)
        return x.new_zeros((0,) + {"log_prob": (), "resp": (self.num_components,)}.get(what, (self.dim,)))

    @staticmethod
    def _check_v(v):
        if (v <= 0).any():
            raise ValueError(
                "the mixture has a singular covariance here (e.g. from_points at abar = 1); "
                "evaluate it noised, with alpha_bar < 1"
            )

    def _eval_general(self, what, x, a):
        """Full covariances. In component k's eigenbasis, C_k = U_k diag(v) U_k^T, v = a lambda_k + 1 - a,
        z = U_k^T (x - sqrt(a) mu_k); log N = -(|z / sqrt(v)|^2 + sum log v + D log 2 pi) / 2."""
        b, K, D = x.shape[0], self.num_components, self.dim
        shared = bool((a == a[0]).all())  # one noise level for the whole chunk (the usual case): v is (1, K, D)
        a_v = a[:1] if shared else a
        v = a_v[:, None, None] * self.eigvals[None] + (1.0 - a_v)[:, None, None]  # (b or 1, K, D)
        self._check_v(v)
        z = (x @ self._u_cols).reshape(b, K, D) - a.sqrt()[:, None, None] * self._mu_eig[None]  # (b, K, D)
        maha = torch.einsum("bkd,kd->bk", z**2, 1.0 / v[0]) if shared else (z**2 / v).sum(-1)  # (b, K)
        log_joint = torch.log(self.weights)[None] - 0.5 * (maha + torch.log(v).sum(-1) + D * LOG_2PI)
        if what == "log_prob":
            return torch.logsumexp(log_joint, 1)
        r = torch.softmax(log_joint, 1)  # (b, K) responsibilities
        if what == "resp":
            return r
        if what == "score":  # -sum_k r_k C_k^{-1} (x - m_k) = -sum_k r_k U_k (z / v)
            return -(r[:, :, None] * z / v).reshape(b, -1) @ self._u_rows
        # denoise: sum_k r_k [mu_k + sqrt(a) Sigma_k C_k^{-1} (x - m_k)]
        shift = (r[:, :, None] * z * self.eigvals[None] / v).reshape(b, -1) @ self._u_rows  # (b, D)
        return r @ self.means + a.sqrt()[:, None] * shift

    def _eval_isotropic(self, what, x, a):
        """Sigma_k = lambda_k I: C_k = v_k I, v_k = a lambda_k + 1 - a, and |x - c mu_k|^2 by one matmul."""
        D = self.dim
        lam = self.eigvals[:, 0]  # (K,)
        v = a[:, None] * lam[None] + (1.0 - a)[:, None]  # (b, K)
        self._check_v(v)
        c = a.sqrt()[:, None]  # (b, 1) sqrt(abar)
        sq = (x**2).sum(1, keepdim=True) - 2 * c * (x @ self.means.T) + c**2 * (self.means**2).sum(1)[None]
        log_joint = torch.log(self.weights)[None] - 0.5 * (sq.clamp(min=0) / v + D * (torch.log(v) + LOG_2PI))
        if what == "log_prob":
            return torch.logsumexp(log_joint, 1)
        r = torch.softmax(log_joint, 1)
        if what == "resp":
            return r
        if what == "score":  # -sum_k r_k (x - c mu_k) / v_k
            rv = r / v
            return -(x * rv.sum(1, keepdim=True) - c * (rv @ self.means))
        g = r * lam[None] / v  # denoise: sum_k r_k [mu_k + c lambda_k / v_k (x - c mu_k)]
        return r @ self.means + c * (x * g.sum(1, keepdim=True) - c * (g @ self.means))

    def log_prob(self, x, alpha_bar=None) -> torch.Tensor:
        """(B,) log q(x) = logsumexp_k [log w_k + log N(x; mu_k, Sigma_k)]; of q_t if alpha_bar is given."""
        return self._evaluate("log_prob", x, alpha_bar)

    def responsibilities(self, x, alpha_bar=None) -> torch.Tensor:
        """(B, K) posterior over components, r_k(x) = w_k N_k(x) / sum_j w_j N_j(x)."""
        return self._evaluate("resp", x, alpha_bar)

    def score(self, x, alpha_bar=None) -> torch.Tensor:
        """(B, D) grad_x log q(x) = -sum_k r_k(x) C_k^{-1} (x - m_k)  (closed form, no autograd).

        With alpha_bar: the score of q_t, C_k = abar Sigma_k + (1 - abar) I, m_k = sqrt(abar) mu_k.
        """
        return self._evaluate("score", x, alpha_bar)

    def denoise(self, x_t, alpha_bar) -> torch.Tensor:
        """(B, D) E[x_0 | x_t] for x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps, x_0 ~ this mixture.

        Equal to Tweedie's formula (x_t + (1 - abar) grad log q_t(x_t)) / sqrt(abar) (Efron 2011;
        Ho et al. eq. 11 solved for x_0), computed per component as Gaussian conditioning,
        E[x_0 | x_t, k] = mu_k + sqrt(abar) Sigma_k C_k^{-1} (x_t - sqrt(abar) mu_k), which stays
        accurate as abar -> 0.
        """
        return self._evaluate("denoise", x_t, alpha_bar)

    def sample(self, n: int, generator: torch.Generator | None = None):
        """n draws: labels k ~ Categorical(w), x = mu_k + U_k diag(sqrt(lambda_k)) eps.

        Returns (x (n, D) float64, labels (n,) int64 component indices).
        """
        if int(n) < 0:
            raise ValueError(f"n must be a non-negative integer; got {n}")
        labels = torch.multinomial(self.weights, int(n), replacement=True, generator=generator)
        eps = torch.randn(int(n), self.dim, generator=generator, dtype=torch.float64)
        x = self.means[labels] + torch.einsum("nde,ne->nd", self.eigvecs[labels], self.eigvals[labels].sqrt() * eps)
        return x, labels


# =============================================================================================
# A large point set in high dimension, with isotropic noise: no D x D matrices
# =============================================================================================
class EmpiricalDistribution:
    """sum_i w_i N(x; c * x_i, var I): a point set (var = 0), optionally noised.

    points: (N, ...) e.g. (5000, 1, 28, 28) digits or (N, 2) points; stored flattened (N, D).
    Evaluation with alpha_bar gives q_t of this distribution: means sqrt(abar) c x_i, variance
    abar var + 1 - abar. Distances use ||x||^2 - 2 x.m + ||m||^2, so memory is O(B N).
    """

    def __init__(self, points, weights=None, var: float = 0.0, scale: float = 1.0):
        pts = _f64(points)
        if pts.ndim < 2:
            raise ValueError(f"points must have shape (N, ...); got {tuple(pts.shape)}")
        if var < 0:
            raise ValueError(f"var must be non-negative; got {var}")
        w = torch.ones(pts.shape[0], dtype=torch.float64) if weights is None else _f64(weights)
        if w.shape != (pts.shape[0],) or (w < 0).any() or not w.sum() > 0:
            raise ValueError("weights must be (N,) non-negative with a positive sum")
        self.event_shape = tuple(pts.shape[1:])  # shape of one example, e.g. (1, 28, 28)
        self.points = pts.reshape(pts.shape[0], -1)  # (N, D) x_i (clean, before `scale`)
        self.weights = w / w.sum()  # (N,) w_i
        self.var = float(var)  # isotropic variance of each component
        self.scale = float(scale)  # c: component means are c * x_i
        self._sq = (self.points**2).sum(1)  # (N,) ||x_i||^2

    @property
    def num_components(self) -> int:
        return self.points.shape[0]

    @property
    def dim(self) -> int:
        return self.points.shape[1]

    @property
    def is_singular(self) -> bool:
        return self.var <= 0

    def __repr__(self) -> str:
        return f"EmpiricalDistribution(N={self.num_components}, shape={self.event_shape}, var={self.var:g})"

    def noised(self, alpha_bar) -> EmpiricalDistribution:
        """q_t: means sqrt(abar) c x_i, variance abar var + 1 - abar  (Ho et al. eq. 4)."""
        a = float(alpha_bar)
        if not 0.0 <= a <= 1.0:
            raise ValueError(f"alpha_bar must lie in [0, 1]; got {a}")
        out = EmpiricalDistribution.__new__(EmpiricalDistribution)
        out.__dict__.update(self.__dict__)
        out.scale, out.var = math.sqrt(a) * self.scale, a * self.var + 1.0 - a
        return out

    def subset(self, index) -> EmpiricalDistribution:
        """Restricted to some points (indices or an (N,) bool mask), weights renormalised."""
        index = torch.as_tensor(index)
        if index.dtype == torch.bool:
            index = index.nonzero().flatten()
        if index.numel() == 0:
            raise ValueError("subset needs at least one point")
        out = EmpiricalDistribution(
            self.points[index].reshape(-1, *self.event_shape), self.weights[index], self.var, self.scale
        )
        return out

    def _flat(self, x):
        x = _f64(x).to(self.points.device)
        if tuple(x.shape[1:]) != self.event_shape and not (x.ndim == 2 and x.shape[1] == self.dim):
            raise ValueError(f"x must have shape (B, {', '.join(map(str, self.event_shape))}); got {tuple(x.shape)}")
        return x.reshape(x.shape[0], -1)

    def _terms(self, xf, a):
        """log w_i N(x; sqrt(a) c x_i, v I) (b, N) and v (b,), for flattened x (b, D)."""
        c = a.sqrt() * self.scale  # (b,)
        v = a * self.var + 1.0 - a  # (b,)
        if (v <= 0).any():
            raise ValueError("a point set has no density at abar = 1; evaluate it noised, with alpha_bar < 1")
        sq = (xf**2).sum(1, keepdim=True) - 2 * c[:, None] * (xf @ self.points.T) + c[:, None] ** 2 * self._sq[None]
        log_n = -0.5 * (sq.clamp(min=0) / v[:, None] + self.dim * (torch.log(v)[:, None] + LOG_2PI))
        return torch.log(self.weights)[None] + log_n, v

    def _chunks(self, B):
        step = max(1, CHUNK_ELEMENTS // max(1, self.num_components))
        return [(i, min(B, i + step)) for i in range(0, B, step)]

    def log_prob(self, x, alpha_bar=None) -> torch.Tensor:
        """(B,) log q_t(x) (alpha_bar=None: of this distribution itself)."""
        xf = self._flat(x)
        a = _alpha_bar_vector(alpha_bar, xf.shape[0], xf.device)
        return torch.cat([torch.logsumexp(self._terms(xf[i:j], a[i:j])[0], 1) for i, j in self._chunks(len(xf))])

    def responsibilities(self, x, alpha_bar=None) -> torch.Tensor:
        """(B, N) posterior over points."""
        xf = self._flat(x)
        a = _alpha_bar_vector(alpha_bar, xf.shape[0], xf.device)
        return torch.cat([torch.softmax(self._terms(xf[i:j], a[i:j])[0], 1) for i, j in self._chunks(len(xf))])

    def _posterior_mean_of_means(self, xf, a):
        """(b, D) sum_i r_i(x) x_i (the unscaled points) and v (b,)."""
        out, vs = [], []
        for i, j in self._chunks(len(xf)):
            log_joint, v = self._terms(xf[i:j], a[i:j])
            out.append(torch.softmax(log_joint, 1) @ self.points)
            vs.append(v)
        return torch.cat(out), torch.cat(vs)

    def score(self, x, alpha_bar=None) -> torch.Tensor:
        """grad log q_t(x) = (sqrt(abar) c sum_i r_i x_i - x) / v, shaped like x."""
        xf = self._flat(x)
        a = _alpha_bar_vector(alpha_bar, xf.shape[0], xf.device)
        mbar, v = self._posterior_mean_of_means(xf, a)
        c = a.sqrt() * self.scale
        return ((c[:, None] * mbar - xf) / v[:, None]).reshape(x.shape)

    def denoise(self, x_t, alpha_bar) -> torch.Tensor:
        """E[x_0 | x_t] shaped like x_t; for a point set (var = 0) it is sum_i r_i(x_t) c x_i.

        In general, per component: c x_i + sqrt(abar) var / v (x_t - sqrt(abar) c x_i), the
        Gaussian-conditioning form of Tweedie's formula.
        """
        xf = self._flat(x_t)
        a = _alpha_bar_vector(alpha_bar, xf.shape[0], xf.device)
        mbar, v = self._posterior_mean_of_means(xf, a)
        k = (a.sqrt() * self.var / v)[:, None]  # (b, 1)
        out = self.scale * mbar + k * (xf - a.sqrt()[:, None] * self.scale * mbar)
        return out.reshape(x_t.shape)

    def sample(self, n: int, generator: torch.Generator | None = None):
        """n draws (n, ...) and the index of the point each came from (n,)."""
        idx = torch.multinomial(self.weights, int(n), replacement=True, generator=generator)
        eps = torch.randn(int(n), self.dim, generator=generator, dtype=torch.float64)
        x = self.scale * self.points[idx] + math.sqrt(self.var) * eps
        return x.reshape(int(n), *self.event_shape), idx


# =============================================================================================
# The exact model: the optimal noise predictor for mixture data
# =============================================================================================
class AnalyticModel(torch.nn.Module):
    """The Bayes-optimal eps-model for mixture data: eps*(x_t, t) = -sqrt(1 - abar_t) grad log q_t(x_t).

    Follows the model protocol of diffusion.py (parameterization "eps"), so samplers and
    elbo.py use it in place of a network. t is real in [0, T] (abar from schedule.alpha_bar).
    dist: a GaussianMixture or an EmpiricalDistribution.
    label_map: (K,) class of each component (default: the component index itself). A label
        y = c restricts the data to the components of class c; y = num_classes is the null
        label (the unconditional distribution), as in classifier-free guidance.
    min_noise_var: for a point set (no density at t = 0), 1 - abar is floored at this value so
        that eps stays finite at t = 0; distributions with a density are used exactly.
    """

    parameterization = "eps"

    def __init__(self, dist, schedule: Schedule, label_map=None, min_noise_var: float = 1e-8):
        super().__init__()
        self.dist = dist
        self.schedule = schedule
        K = dist.num_components
        lm = torch.arange(K) if label_map is None else torch.as_tensor(label_map).long().flatten()
        if lm.shape != (K,) or (lm < 0).any():
            raise ValueError(f"label_map must give a non-negative class for each of the {K} components")
        self.label_map = lm  # (K,) class of each component
        self.num_classes = int(lm.max()) + 1
        self.min_noise_var = float(min_noise_var)
        self._by_class = {}

    def __repr__(self) -> str:
        return f"AnalyticModel({self.dist!r}, {self.schedule.describe()}, classes={self.num_classes})"

    def for_class(self, c: int):
        """The data distribution of class c (num_classes: the whole distribution)."""
        c = int(c)
        if not 0 <= c <= self.num_classes:
            raise ValueError(
                f"labels must lie in 0..{self.num_classes} ({self.num_classes} is the null label); got {c}"
            )
        if c == self.num_classes:
            return self.dist
        if c not in self._by_class:
            if not (self.label_map == c).any():
                raise ValueError(f"no component has class {c}")
            self._by_class[c] = self.dist.subset(self.label_map == c)
        return self._by_class[c]

    def alpha_bar(self, t, batch: int) -> torch.Tensor:
        """(B,) abar(t) for real t in [0, T], float64; floored away from 1 for a point set."""
        t = torch.as_tensor(t, dtype=torch.float64).cpu()
        if t.ndim == 0:
            t = t.expand(batch)
        if t.shape != (batch,):
            raise ValueError(f"t must be a number or a (B,) tensor with B = {batch}; got shape {tuple(t.shape)}")
        slack = 1e-4 * self.schedule.T  # float32 round-off from a sampler's time grid is not an error
        if (t < -slack).any() or (t > self.schedule.T + slack).any():
            raise ValueError(f"t must lie in [0, T] = [0, {self.schedule.T}]; got {t.min().item()}..{t.max().item()}")
        a = self.schedule.alpha_bar(t.clamp(0, self.schedule.T))
        if self.dist.is_singular:
            a = a.clamp(max=1.0 - self.min_noise_var)
        return a

    def _per_class(self, fn_name: str, x, t, y):
        """Apply dist.<fn_name>(x, abar) per class of y (rows grouped by label)."""
        a = self.alpha_bar(t, x.shape[0])
        xd = x.to(torch.float64).cpu()  # keeps the graph: the ODE likelihood differentiates through it
        if y is None:
            return getattr(self.dist, fn_name)(xd, a), a
        y = torch.as_tensor(y).long().cpu().flatten()
        if y.shape != (x.shape[0],):
            raise ValueError(f"y must have one label per example ({x.shape[0]}); got shape {tuple(y.shape)}")
        out = None
        for c in torch.unique(y).tolist():
            rows = (y == c).nonzero().flatten()
            part = getattr(self.for_class(c), fn_name)(xd[rows], a[rows])
            if out is None:
                out = part.new_zeros((x.shape[0],) + tuple(part.shape[1:]))
            out[rows] = part
        return out, a

    def score(self, x, t, y=None) -> torch.Tensor:
        """grad log q_t(x | y), shaped and typed like x."""
        s, _ = self._per_class("score", x, t, y)
        return s.to(x.dtype).to(x.device).reshape(x.shape)

    def forward(self, x_t, t, y=None) -> torch.Tensor:
        """eps*(x_t, t) = -sqrt(1 - abar_t) grad log q_t(x_t)  (Ho et al. eq. 11; Song et al. 2021)."""
        s, a = self._per_class("score", x_t, t, y)
        shape = (-1,) + (1,) * (s.ndim - 1)
        eps = -(1.0 - a).sqrt().reshape(shape) * s
        return eps.to(x_t.dtype).to(x_t.device).reshape(x_t.shape)

    def denoise(self, x_t, t, y=None) -> torch.Tensor:
        """E[x_0 | x_t] (Tweedie), shaped and typed like x_t."""
        d, _ = self._per_class("denoise", x_t, t, y)
        return d.to(x_t.dtype).to(x_t.device).reshape(x_t.shape)

    def log_prob(self, x, t, y=None) -> torch.Tensor:
        """(B,) log q_t(x | y) in nats, float64."""
        lp, _ = self._per_class("log_prob", x, t, y)
        return lp

    def reverse_conditional(self, x_t_point, t: int, y: int | None = None) -> GaussianMixture:
        """Exact q(x_{t-1} | x_t) for one point x_t (D,); see `reverse_conditional`."""
        dist = self.dist if y is None else self.for_class(int(y))
        return reverse_conditional(dist, self.schedule, x_t_point, t)


# =============================================================================================
# The exact reverse step and how Gaussian it is
# =============================================================================================
def reverse_conditional(gmm: GaussianMixture, schedule: Schedule, x_t, t: int) -> GaussianMixture:
    """Exact q(x_{t-1} | x_t) for mixture data, as a mixture over x_{t-1} (Bayes' rule).

    Per component k: x_{t-1} ~ N(m_k, S_k), m_k = sqrt(abar_{t-1}) mu_k, S_k = abar_{t-1} Sigma_k +
    (1 - abar_{t-1}) I, and x_t | x_{t-1} ~ N(sqrt(alpha_t) x_{t-1}, beta_t I) (Ho et al. eq. 2). The
    pair is jointly Gaussian, so
        weight_k  proportional to  w_k N(x_t; sqrt(alpha_t) m_k, C_k),  C_k = alpha_t S_k + beta_t I,
        mean_k = m_k + sqrt(alpha_t) S_k C_k^{-1} (x_t - sqrt(alpha_t) m_k),
        cov_k  = S_k - alpha_t S_k C_k^{-1} S_k = U_k diag(s beta_t / (alpha_t s + beta_t)) U_k^T.
    With one component this is a single Gaussian; with several and a large beta_t it can be
    strongly multimodal, which is why DDPM needs many small steps (Sohl-Dickstein et al. 2015).
    """
    if not isinstance(gmm, GaussianMixture):
        raise ValueError(
            "reverse_conditional needs a GaussianMixture (use GaussianMixture.from_points for a point set)"
        )
    t = check_int("t", t, 1, schedule.T, "T")
    x = _f64(x_t).flatten()
    if x.shape != (gmm.dim,):
        raise ValueError(f"x_t must be one point of shape ({gmm.dim},); got {tuple(_f64(x_t).shape)}")
    a_prev = float(schedule.alphas_cumprod[t - 1])
    alpha, beta = float(schedule.alphas[t]), float(schedule.betas[t])
    s = a_prev * gmm.eigvals + (1.0 - a_prev)  # (K, D) eigenvalues of S_k
    m = math.sqrt(a_prev) * gmm.means  # (K, D)
    c = alpha * s + beta  # (K, D) eigenvalues of C_k
    z = torch.einsum("d,kde->ke", x, gmm.eigvecs) - math.sqrt(alpha) * torch.einsum("kd,kde->ke", m, gmm.eigvecs)
    log_w = torch.log(gmm.weights) - 0.5 * ((z**2 / c).sum(1) + torch.log(c).sum(1) + gmm.dim * LOG_2PI)
    mean = m + torch.einsum("ke,kde->kd", math.sqrt(alpha) * s * z / c, gmm.eigvecs)
    keep = log_w > log_w.max() - 700  # drop components whose weight underflows to 0
    w = torch.softmax(log_w[keep], 0)
    return GaussianMixture._from_eig(w, mean[keep], gmm.eigvecs[keep], (s * beta / c)[keep])


def gaussian_fit(mixture: GaussianMixture):
    """(mean (D,), cov (D, D)): the moment-matched Gaussian, argmin_q KL(p || q) over Gaussians q."""
    return mixture.mean(), mixture.cov()


def kl_mixture_to_gaussian(
    mixture: GaussianMixture, mean, cov, n: int = 20_000, generator=None, method: str = "mc", nodes: int = 24
):
    """KL(p || N(mean, cov)) = E_p[log p(x) - log N(x; mean, cov)] in nats, with exact log densities.

    method "mc": Monte Carlo over n samples of p; returns (value, standard error).
    method "quadrature": per component, a Gauss-Hermite product grid with `nodes` points per axis
        in the component's own eigen-coordinates (so narrow components are resolved); D <= 3;
        returns (value, 0.0). Either way the mixture needs a density (no zero-variance direction).
    """
    if method not in KL_METHODS:
        raise ValueError(f"method must be one of {KL_METHODS}; got {method!r}")
    q = GaussianMixture(torch.ones(1), _f64(mean)[None], _f64(cov)[None])
    if method == "mc":
        x, _ = mixture.sample(n, generator=generator)
        d = mixture.log_prob(x) - q.log_prob(x)
        return d.mean().item(), (d.std() / math.sqrt(n)).item()
    D = mixture.dim
    if D > 3:
        raise ValueError(f"quadrature is for D <= 3 (nodes^D points); got D = {D}; use method='mc'")
    u, wq = np.polynomial.hermite_e.hermegauss(int(nodes))  # nodes for the weight exp(-u^2/2)
    grid = torch.cartesian_prod(*[_f64(u)] * D).reshape(-1, D)  # (G, D)
    gw = torch.cartesian_prod(*[_f64(wq / math.sqrt(2 * math.pi))] * D).reshape(-1, D).prod(1)  # (G,)
    # the grid in every component's own coordinates at once: pts[k] = mu_k + V_k diag(sqrt(lambda_k)) u
    scaled = grid[None] * mixture.eigvals.sqrt()[:, None]  # (K, G, D)
    pts = mixture.means[:, None] + torch.einsum("kge,kde->kgd", scaled, mixture.eigvecs)  # (K, G, D)
    flat = pts.reshape(-1, D)
    d = (mixture.log_prob(flat) - q.log_prob(flat)).reshape(mixture.num_components, -1)  # (K, G)
    return float(((d * gw).sum(1) * mixture.weights).sum()), 0.0


# =============================================================================================
# The project's 2D ground truth
# =============================================================================================
DEFAULT_WEIGHTS = (0.35, 0.25, 0.2, 0.12, 0.08)  # unequal on purpose: sampling must get them right
# Before standardising: component centres on a rough pentagon of radius ~3, and
# (std along, std across, angle in degrees) of each ellipse.
_RAW_MEANS = ((0.0, 3.0), (2.9, 0.9), (1.8, -2.5), (-1.8, -2.5), (-2.9, 0.9))
_RAW_SHAPES = ((0.9, 0.35, 0.0), (0.8, 0.3, 60.0), (0.6, 0.4, -30.0), (0.7, 0.25, 30.0), (0.5, 0.3, 90.0))


# --- fast exact models for the lessons: a tabulated eps* and Bayes' rule for p(y | x_t) ----------------
class MixtureEpsModel(torch.nn.Module):
    """The exact eps*(x_t, t) = -sqrt(1 - abar_t) grad log q_t(x_t) of a Gaussian mixture, vectorised.

    Same values as toy_models.gmm.AnalyticModel (tested to 1e-9), but with every component in one
    batched product and the per-t precisions tabulated once for the integer times, so a 1,000-step
    chain of 2,000 points takes about a second on a CPU. q_t is the mixture with means
    sqrt(abar_t) mu_k and covariances C_k = abar_t Sigma_k + (1 - abar_t) I (Ho et al. eq. 4), so

        grad log q_t(x) = -sum_k r_k(x) C_k^{-1} (x - sqrt(abar_t) mu_k),  r_k = posterior of component k.

    Unconditional only (y must be None). Follows the model protocol (parameterization "eps").
    """

    parameterization = "eps"

    def __init__(self, gmm: GaussianMixture, schedule: Schedule):
        super().__init__()
        self.gmm, self.schedule = gmm, schedule
        self._logw = torch.log(gmm.weights)  # (K,)
        self._eye = torch.eye(gmm.dim, dtype=torch.float64)
        # Tables for the integer times t = 0..T (a sampler's case), float64 and float32 copies. The K components
        # sit side by side in one row of K*D numbers, so one step is a few matrix products over the batch
        # instead of einsums over (B, K, D) (make bench times the chain):
        #   m (T+1, K*D)       sqrt(abar_t) mu_k, flattened
        #   P (T+1, K*D, K*D)  the precisions C_k^{-1} on the block diagonal
        #   c (T+1, K)         log w_k - 1/2 log det C_k
        # and four 0/1 matrices that move between the two layouts: tiles (D, K*D) copies x once per component,
        # half_pick (K*D, K) sums each block's D entries (times -1/2: the quadratic form), spread (K, K*D)
        # copies a component's weight over its block, minus_sum (K*D, D) adds the blocks up (times -1).
        a = schedule.alphas_cumprod
        prec, logdet = self._precisions(a)
        K, D = gmm.num_components, gmm.dim
        blocks = torch.zeros(len(a), K * D, K * D, dtype=torch.float64)
        for k in range(K):
            blocks[:, k * D : (k + 1) * D, k * D : (k + 1) * D] = prec[:, k]
        pick = torch.eye(K, dtype=torch.float64).repeat_interleave(D, 0)  # (K*D, K)
        tiles = torch.eye(D, dtype=torch.float64).repeat(1, K)  # (D, K*D)
        table = dict(
            m=(a.sqrt()[:, None, None] * gmm.means).flatten(1),
            P=blocks,
            c=self._logw - 0.5 * logdet,
            tiles=tiles,
            half_pick=-0.5 * pick,
            spread=pick.T.contiguous(),
            minus_sum=-tiles.T.contiguous(),
        )
        self._tables = {torch.float64: table, torch.float32: {k: v.float() for k, v in table.items()}}

    def _precisions(self, a: torch.Tensor):
        """C^{-1} (N, K, D, D) and log det C (N, K) for alpha-bars a (N,)."""
        C = a[:, None, None, None] * self.gmm.covs[None] + (1 - a)[:, None, None, None] * self._eye
        return torch.linalg.inv(C), torch.logdet(C)

    @staticmethod
    def _integer_time(t):
        """The batch's common integer time, or None. t: a number or a 0-d or (B,) tensor, as the caller gave
        it (a sampler's expanded scalar is known to share one t without comparing its B entries)."""
        batch = torch.is_tensor(t) and t.ndim > 0
        t0 = float(t[0]) if batch else float(t)
        return int(t0) if t0.is_integer() and (not batch or shares_one_t(t)) else None

    def score(self, x_t: torch.Tensor, t) -> torch.Tensor:
        """grad log q_t(x_t) for x_t (B, D) at times t (B,); float32 in, float32 out, else float64."""
        dtype = torch.float32 if x_t.dtype == torch.float32 else torch.float64
        x = x_t.detach().cpu().to(dtype)
        i = self._integer_time(t)
        if i is not None and 0 <= i <= self.schedule.T:  # one integer t for the batch: the tables
            tb = self._tables[dtype]
            d = torch.addmm(-tb["m"][i], x, tb["tiles"])  # (B, K*D): x - sqrt(abar) mu_k for every k
            Pd = d @ tb["P"][i]  # (B, K*D): C_k^{-1} (x - sqrt(abar) mu_k), block by block
            r = torch.softmax(torch.addmm(tb["c"][i], d * Pd, tb["half_pick"]), dim=1)  # (B, K) posterior of k
            return (r @ tb["spread"] * Pd) @ tb["minus_sum"]  # (B, D): -sum_k r_k C_k^{-1} (x - sqrt(abar) mu_k)
        t = torch.as_tensor(t, dtype=torch.float64).cpu().expand(x.shape[0])
        a = self.schedule.alpha_bar(t)  # (B,): real times, each its own covariances
        P, logdet = self._precisions(a)  # (B, K, D, D), (B, K)
        d = x.double()[:, None, :] - a.sqrt()[:, None, None] * self.gmm.means[None]
        Pd = torch.einsum("bkij,bkj->bki", P, d)
        c = self._logw - 0.5 * logdet
        r = torch.softmax(c - 0.5 * (d * Pd).sum(-1), dim=1)  # (B, K) posterior over components
        return -torch.einsum("bk,bkd->bd", r, Pd).to(dtype)  # (B, D)

    def forward(self, x_t, t, y=None):
        if y is not None:
            raise ValueError("MixtureEpsModel is unconditional: call it with y=None (use AnalyticModel for labels)")
        i = self._integer_time(t)
        if i is not None and 0 <= i <= self.schedule.T:  # a sampler's step: one integer t for the batch
            s1 = float(self.schedule.sqrt_one_minus_alphas_cumprod[i])
        else:
            tt = torch.as_tensor(t, dtype=torch.float64).cpu().expand(x_t.shape[0])
            if (tt < 0).any() or (tt > self.schedule.T).any():
                raise ValueError(f"t must lie in [0, T] = [0, {self.schedule.T}]")
            s1 = (1 - self.schedule.alpha_bar(tt)).sqrt()[:, None]
        return (-s1 * self.score(x_t, t)).to(x_t.dtype).to(x_t.device)


class ExactNoisyClassifier(torch.nn.Module):
    """log p(y | x_t) of mixture data by Bayes' rule on the noised mixture q_t (exact, differentiable).

    q_t(x_t | k) = N(x_t; sqrt(abar_t) mu_k, abar_t Sigma_k + (1 - abar_t) I), so
    log p(y | x_t) = logsumexp_{k: c(k) = y} [log w_k + log q_t(x_t | k)] - log q_t(x_t)
    and grad log p(y | x_t) = grad log q_t(x_t | y) - grad log q_t(x_t) (Dhariwal & Nichol 2021, eq. 10-11).
    Returns logits (B, C) = log p(y | x_t) (a valid log-softmax input); t real in [0, T].
    """

    def __init__(self, gmm, schedule, label_map=None):
        super().__init__()
        self.gmm, self.schedule = gmm, schedule
        K = gmm.num_components
        self.label_map = torch.arange(K) if label_map is None else torch.as_tensor(label_map).long()
        self.num_classes = int(self.label_map.max()) + 1

    def forward(self, x_t, t, y=None):
        x = x_t.to(torch.float64)  # (B, D)
        t = torch.as_tensor(t, dtype=torch.float64).cpu().expand(x.shape[0])
        a = self.schedule.alpha_bar(t.clamp(0, self.schedule.T)).to(x.device)[:, None, None, None]  # (B,1,1,1)
        g = self.gmm
        D = g.dim
        a = a[:, :, 0, 0]  # (B, 1)
        # in component k's eigenbasis C_k = U_k diag(v_k) U_k^T, v_k = a lambda_k + 1 - a (cheap and differentiable)
        v = a[:, :, None] * g.eigvals[None] + (1 - a)[:, :, None]  # (B, K, D)
        z = torch.einsum("bkd,kde->bke", x[:, None, :] - a.sqrt()[:, :, None] * g.means[None], g.eigvecs)  # (B, K, D)
        log_n = -0.5 * ((z**2 / v).sum(-1) + torch.log(v).sum(-1) + D * math.log(2 * math.pi))  # (B, K)
        log_joint = torch.log(g.weights)[None] + log_n  # (B, K)
        per_class = torch.stack(
            [torch.logsumexp(log_joint[:, self.label_map == c], 1) for c in range(self.num_classes)], 1
        )  # (B, C)
        return (per_class - torch.logsumexp(log_joint, 1, keepdim=True)).to(x_t.dtype)


def default_gmm() -> GaussianMixture:
    """The 2D ground-truth mixture: 5 anisotropic, well-separated components, labels = components.

    Built from the centres and ellipses above, then moved and scaled by one affine map so that
    the mixture has mean exactly 0 and standard deviation exactly 1 per coordinate (unit-ish
    overall variance: the scale a diffusion schedule assumes).
    """
    means = _f64(_RAW_MEANS)
    covs = []
    for sd_a, sd_b, deg in _RAW_SHAPES:
        th = math.radians(deg)
        R = _f64([[math.cos(th), -math.sin(th)], [math.sin(th), math.cos(th)]])
        covs.append(R @ torch.diag(_f64([sd_a**2, sd_b**2])) @ R.T)
    raw = GaussianMixture(_f64(DEFAULT_WEIGHTS), means, torch.stack(covs))
    m, sd = raw.mean(), raw.cov().diagonal().sqrt()
    A = torch.diag(1.0 / sd)
    return GaussianMixture(raw.weights, (raw.means - m) / sd, A @ raw.covs @ A)


def true_nll(gmm, x) -> torch.Tensor:
    """(B,) -log q(x_0) in nats: the exact negative log-likelihood of data under the mixture."""
    return -gmm.log_prob(x)

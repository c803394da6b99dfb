"""The networks: a residual MLP for 2D points, a small U-Net for 28x28 digits, noisy classifiers
and an inpainting U-Net. All diffusion networks follow the model protocol of diffusion.py:

    model(x_t, t, y=None) -> a tensor shaped like x_t, with attribute `parameterization` ("eps")

t is a (B,) float tensor of real times in [0, T] (fractional t is fine: the ODE sampler uses it).
y is None or a (B,) long tensor of labels in 0..num_classes; the label `num_classes` is the NULL
label (no class: the unconditional model used by classifier-free guidance, Ho & Salimans 2022),
and y=None means the null label for every example. Classifiers return logits (B, num_classes).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from toy_models.shapes import shares_one_t


# --- precision ----------------------------------------------------------------------------------
@functools.cache
def _cpu_has_native_bf16() -> bool:
    """True where the CPU multiplies bfloat16 in hardware (x86 AVX512-BF16 or AMX); read from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "").split()
    except OSError:  # not Linux: no way to tell cheaply, so full precision
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def bf16_is_native(device) -> bool:
    """Whether bfloat16 autocast is a hardware speed-up on this device (not an emulation)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and _cpu_has_native_bf16()


def fast_inference(device):
    """Autocast the U-Nets' convolutions to bfloat16 for *sampling*, where the hardware does it natively.

    It halves the time of a U-Net forward pass on a CPU with AVX512-BF16 (the course's benchmark machine);
    the output is cast back to float32, and samples agree with full precision to within a few grey levels
    (tests/test_networks.py). Not for the bound or likelihoods: their small-t terms resolve noise of
    size 0.01, below bfloat16's resolution, so those paths stay in float32. COURSE_PRECISION=fp32 turns
    it off everywhere; elsewhere it is a no-op.
    """
    if os.environ.get("COURSE_PRECISION", "auto") == "fp32" or not bf16_is_native(device):
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


# --- embeddings ---------------------------------------------------------------------------------
def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of real times (Vaswani et al. 2017, sec. 3.5; Ho et al. 2020, app. B).

    emb(t)_i = cos(t * w_i) for i < dim/2 and sin(t * w_i) after, w_i = max_period^(-i / (dim/2)).
    t: (B,) float, any real value in [0, T]. Returns (B, dim) float32.
    """
    if t.ndim != 1:
        raise ValueError(f"t must be a (B,) tensor of times; got shape {tuple(t.shape)}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]  # (B, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb  # (B, dim)


def _check_t(t, batch: int, device) -> torch.Tensor:
    """t as a (B,) float tensor; a scalar is broadcast; a wrong length raises ValueError."""
    if not torch.is_tensor(t):
        t = torch.tensor(t, dtype=torch.float32)
    if t.ndim == 0:
        t = t.expand(batch)
    if t.ndim != 1 or t.shape[0] != batch:
        raise ValueError(f"t must be a scalar or a (B,) tensor with B = {batch}; got shape {tuple(t.shape)}")
    return t.to(device=device, dtype=torch.float32)


class LabelEmbedding(nn.Module):
    """Embedding of labels 0..num_classes-1 plus the null label num_classes (classifier-free guidance)."""

    def __init__(self, num_classes: int, dim: int):
        super().__init__()
        self.num_classes = num_classes
        self.table = nn.Embedding(num_classes + 1, dim)

    def forward(self, y, batch: int, device) -> torch.Tensor:
        """y: None (null label for all) or (B,) integer labels in 0..num_classes. Returns (B, dim)."""
        if y is None:
            y = torch.full((batch,), self.num_classes, dtype=torch.long, device=device)
        if not torch.is_tensor(y) or y.ndim != 1 or y.shape[0] != batch:
            shape = tuple(y.shape) if torch.is_tensor(y) else type(y).__name__
            raise ValueError(f"y must be None or a (B,) tensor of labels with B = {batch}; got {shape}")
        if y.is_floating_point() or y.dtype == torch.bool:
            raise ValueError(f"y must hold integer labels; got dtype {y.dtype}")
        if y.numel() and (y.min() < 0 or y.max() > self.num_classes):
            raise ValueError(
                f"labels must lie in 0..{self.num_classes} ({self.num_classes} = the null label); "
                f"got {y.min().item()}..{y.max().item()}"
            )
        return self.table(y.to(device).long())


# --- 2D: residual MLP ---------------------------------------------------------------------------
@dataclass
class MLPConfig:
    """A residual MLP for points in R^D (2D toys)."""

    data_dim: int = 2  # D, the dimension of a point
    width: int = 256  # hidden width of every block
    n_blocks: int = 3  # residual blocks
    time_embed_dim: int = 128  # size of the sinusoidal time embedding
    num_classes: int = 0  # labels 0..num_classes-1 and a null label; 0 = unconditional
    fourier_features: int = 16  # sin/cos frequencies per coordinate fed besides x (0 = plain x): sharp, thin data
    fourier_max_freq: float = 32.0  # the highest of those frequencies (geometric from 1), radians per data unit
    gaussian_skip: bool = False  # output sqrt(1 - abar_t) x_t + net: exact for N(0, I) data; needs the schedule
    parameterization: str = "eps"  # what the output means: "eps", "x0" or "mean" (diffusion.py)
    activation: str = "silu"  # "silu" or "relu": on a CPU a 2,000-point ReLU costs ~a third of a SiLU (no exp)
    layer_norm: bool = True  # pre-norm LayerNorm in each block and before the output (False: none; each costs
    #                          as much as a width-32 matmul at 2,000 points)


def fourier_frequencies(n: int, max_freq: float, device=None) -> torch.Tensor:
    """w_k = exp(linspace(0, log max_freq, n)): n frequencies, geometric from 1 to max_freq. (n,)"""
    return torch.exp(torch.linspace(0.0, math.log(max_freq), n, device=device))


def fourier_features(x: torch.Tensor, n: int, max_freq: float) -> torch.Tensor:
    """[x, sin(w_k x), cos(w_k x)] per coordinate, w_k geometric from 1 to max_freq (Tancik et al. 2020).

    Lets an MLP represent the sharp denoiser that thin data (two moons) needs at small t.
    x: (B, D) -> (B, D * (1 + 2 n)).
    """
    if n == 0:
        return x
    w = fourier_frequencies(n, max_freq, x.device)  # (n,)
    a = (x[:, :, None] * w).flatten(1)  # (B, D n)
    return torch.cat([x, torch.sin(a), torch.cos(a)], dim=1)


ACTIVATIONS = {"silu": F.silu, "relu": F.relu}  # MLPConfig.activation


def _normed(norm: nn.Module | None, h: torch.Tensor) -> torch.Tensor:
    """norm(h), or h where the network has no LayerNorm (MLPConfig.layer_norm=False: norm is None)."""
    return h if norm is None else norm(h)


class ResidualMLPBlock(nn.Module):
    """h + W2 act(W1 act(LN(h)) + E c): a pre-norm residual block conditioned on an embedding c (act: SiLU or
    ReLU; LN: LayerNorm, or none)."""

    def __init__(self, width: int, cond_dim: int, activation: str = "silu", layer_norm: bool = True):
        super().__init__()
        self.norm = nn.LayerNorm(width) if layer_norm else None
        self.act = ACTIVATIONS[activation]
        self.fc1 = nn.Linear(width, width)
        self.cond = nn.Linear(cond_dim, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, h, c):
        """h (B, width); c (B, cond_dim), or (1, cond_dim) when the whole batch shares one conditioning."""
        z = self.fc1(self.act(_normed(self.norm, h))) + self.cond(c)  # (B, width)
        return h + self.fc2(self.act(z))


def _check_points(x, dim: int, who: str):
    if not torch.is_tensor(x) or x.ndim != 2 or x.shape[1] != dim:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"{who} expects points of shape (B, {dim}); got {shape}")


def sqrt_one_minus_alpha_bar(log_alphas_cumprod: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """sqrt(1 - abar(t)) at real t, log abar interpolated linearly as in Schedule.alpha_bar. t: (B,) -> (B,)."""
    T = log_alphas_cumprod.shape[0] - 1
    t = t.clamp(0, T)
    lo = t.floor().long().clamp(max=T - 1)
    log_abar = torch.lerp(log_alphas_cumprod[lo], log_alphas_cumprod[lo + 1], t - lo)
    return (-torch.expm1(log_abar)).clamp(min=0).sqrt()


class MLP2D(nn.Module):
    """eps_theta(x_t, t, y) for 2D points: input layer, residual blocks, output layer (zero-initialised).

        c   = silu(MLP(emb(t)) + E[y])                 the conditioning: time and label
        h   = W_in [x, sin(w_k x), cos(w_k x)]         Fourier features of the point
        h   = h + block(h, c)                          n_blocks residual blocks
        out = W_out act(LN(h))                         the prediction (eps, x0 or mean)

    With config.gaussian_skip, eps_theta = sqrt(1 - abar_t) x_t + out: the first term is the exact
    E[eps | x_t] for standardised N(0, I) data (a skip connection in the spirit of Karras et al. 2022,
    "EDM", sec. 5), so the net only learns the data's departure from a Gaussian. That matters at large t,
    where x_0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar) amplifies any error in eps by 1 / sqrt(abar_T)
    ~ 150 and an unaided MLP's samples drift off. Pass the schedule to build it.
    """

    def __init__(self, config: MLPConfig | None = None, schedule=None):
        super().__init__()
        self.config = c = config or MLPConfig()
        if c.gaussian_skip:
            if schedule is None:
                raise ValueError("MLPConfig(gaussian_skip=True) needs the schedule: MLP2D(config, schedule)")
            self.register_buffer("log_alphas_cumprod", torch.log(schedule.alphas_cumprod).float(), persistent=False)
        if c.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {c.activation!r}")
        if c.parameterization not in ("eps", "x0", "mean"):
            raise ValueError(f"parameterization must be 'eps', 'x0' or 'mean'; got {c.parameterization!r}")
        self.act = ACTIVATIONS[c.activation]
        self.parameterization = c.parameterization
        self.num_classes = c.num_classes
        self.time_mlp = nn.Sequential(nn.Linear(c.time_embed_dim, c.width), nn.SiLU(), nn.Linear(c.width, c.width))
        self.label = LabelEmbedding(c.num_classes, c.width) if c.num_classes > 0 else None
        self.inp = nn.Linear(c.data_dim * (1 + 2 * c.fourier_features), c.width)
        self.blocks = nn.ModuleList(
            ResidualMLPBlock(c.width, c.width, c.activation, c.layer_norm) for _ in range(c.n_blocks)
        )
        self.out_norm = nn.LayerNorm(c.width) if c.layer_norm else None
        self.out = nn.Linear(c.width, c.data_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def embed(self, t, y, batch: int) -> torch.Tensor:
        """The conditioning c = silu(MLP(emb(t)) + E[y]): (B, width), or (1, width) when the batch shares one
        t and has no labels (a sampler's step: one embedding, broadcast by the blocks)."""
        if t.shape[0] > 1 and shares_one_t(t):
            t = t[:1]
        c = self.time_mlp(timestep_embedding(t, self.config.time_embed_dim))  # (B or 1, width)
        if self.label is not None:
            c = c + self.label(y, batch, t.device)  # (B, width)
        elif y is not None:
            raise ValueError("this network is unconditional (num_classes = 0); call it with y=None")
        return F.silu(c)

    def forward(self, x_t, t, y=None):
        _check_points(x_t, self.config.data_dim, "MLP2D")
        t = _check_t(t, x_t.shape[0], x_t.device)  # (B,) float
        x = x_t.float()
        c = self.embed(t, y, x.shape[0])  # (B or 1, width)
        h = self.inp(fourier_features(x, self.config.fourier_features, self.config.fourier_max_freq))  # (B, width)
        for block in self.blocks:
            h = block(h, c)
        out = self.out(self.act(_normed(self.out_norm, h)))  # (B, D)
        if self.config.gaussian_skip:
            out = out + sqrt_one_minus_alpha_bar(self.log_alphas_cumprod, t)[:, None] * x
        return out.to(x_t.dtype)  # (B, D)


@dataclass
class Classifier2DConfig:
    """A noisy classifier p(y | x_t, t) for 2D points."""

    data_dim: int = 2  # D
    width: int = 128  # hidden width
    n_blocks: int = 2  # residual blocks
    time_embed_dim: int = 64  # size of the sinusoidal time embedding
    num_classes: int = 2  # number of classes C (the logits' width)


class NoisyClassifier2D(nn.Module):
    """logits of p(y | x_t, t), (B, C): a time-conditioned residual MLP (Dhariwal & Nichol 2021, sec. 4)."""

    def __init__(self, config: Classifier2DConfig | None = None):
        super().__init__()
        self.config = c = config or Classifier2DConfig()
        if c.num_classes < 2:
            raise ValueError(f"a classifier needs num_classes >= 2; got {c.num_classes}")
        self.num_classes = c.num_classes
        self.time_mlp = nn.Sequential(nn.Linear(c.time_embed_dim, c.width), nn.SiLU(), nn.Linear(c.width, c.width))
        self.inp = nn.Linear(c.data_dim, c.width)
        self.blocks = nn.ModuleList(ResidualMLPBlock(c.width, c.width) for _ in range(c.n_blocks))
        self.out_norm = nn.LayerNorm(c.width)
        self.out = nn.Linear(c.width, c.num_classes)

    def forward(self, x_t, t, y=None):
        """y is ignored (accepted for a uniform signature). Returns logits (B, C)."""
        _check_points(x_t, self.config.data_dim, "NoisyClassifier2D")
        t = _check_t(t, x_t.shape[0], x_t.device)
        c = F.silu(self.time_mlp(timestep_embedding(t, self.config.time_embed_dim)))
        h = self.inp(x_t.float())
        for block in self.blocks:
            h = block(h, c)
        return self.out(F.silu(self.out_norm(h)))  # (B, C)


# --- 28x28: a small U-Net -----------------------------------------------------------------------
@dataclass
class UNetConfig:
    """A small U-Net for (B, 1, 28, 28) images: 28 -> 14 -> 7 and back (Ronneberger et al. 2015; Ho et al. 2020)."""

    in_channels: int = 1  # channels of x_t (the inpainting U-Net adds 2: mask and known pixels)
    out_channels: int = 1  # channels of the output (eps)
    image_size: int = 28  # height = width; must be divisible by 2^(levels-1)
    channels: list = field(default_factory=lambda: [32, 64, 64])  # feature channels per resolution level
    attention: bool = True  # one self-attention layer at the lowest resolution (7x7)
    time_embed_dim: int = 128  # size of the time (and label) embedding
    num_classes: int = 0  # labels 0..num_classes-1 and a null label; 0 = unconditional
    groups: int = 8  # GroupNorm groups
    dropout: float = 0.0  # dropout inside residual blocks
    parameterization: str = "eps"  # what the output means (diffusion.py)
    skip: str = "concat"  # how the up path takes the down path's features: "concat" them (Ronneberger et al.) or
    #                       "add" them (the up path's convolutions then read half as many channels)
    upsample: str = "upsample_conv"  # between levels of the up path: "upsample_conv" (2x nearest, then a 3x3 conv)
    #                       or "conv_upsample" (a 1x1 conv at the lower resolution, then 2x nearest: ~1/36 the work)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, add the projected embedding, GroupNorm-SiLU-(dropout)-conv, plus a skip."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int, dropout: float):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x, emb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(self.drop(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    """Single-head self-attention over the pixels of a feature map, with a residual connection."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)  # each (B, C, HW)
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))  # (B, HW, C)
        return x + self.proj(a.transpose(1, 2).reshape(b, c, h, w))


def _check_image(x, config, who: str):
    want = (config.in_channels, config.image_size, config.image_size)
    if not torch.is_tensor(x) or x.ndim != 4 or tuple(x.shape[1:]) != want:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f"{who} expects images of shape (B, {', '.join(map(str, want))}); got {shape}")


class _Encoder(nn.Module):
    """The U-Net's down path: a conv stem, one ResBlock per level, stride-2 convs between levels."""

    def __init__(self, c: UNetConfig, emb_dim: int):
        super().__init__()
        ch = list(c.channels)
        if c.image_size % (2 ** (len(ch) - 1)):
            raise ValueError(f"image_size {c.image_size} must be divisible by 2^(levels - 1) = {2 ** (len(ch) - 1)}")
        self.stem = nn.Conv2d(c.in_channels, ch[0], 3, padding=1)
        self.blocks = nn.ModuleList()
        self.downs = nn.ModuleList()
        prev = ch[0]
        for i, cout in enumerate(ch):
            self.blocks.append(ResBlock(prev, cout, emb_dim, c.groups, c.dropout))
            prev = cout
            if i < len(ch) - 1:
                self.downs.append(nn.Conv2d(cout, cout, 3, stride=2, padding=1))

    def forward(self, x, emb):
        """Returns the lowest-resolution features and the skip tensors, one per level."""
        h = self.stem(x)
        skips = []
        for i, block in enumerate(self.blocks):
            h = block(h, emb)
            skips.append(h)
            if i < len(self.downs):
                h = self.downs[i](h)
        return h, skips


def _time_label_embedding(c, emb_dim):
    time_mlp = nn.Sequential(nn.Linear(c.time_embed_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
    label = LabelEmbedding(c.num_classes, emb_dim) if c.num_classes > 0 else None
    return time_mlp, label


class UNet(nn.Module):
    """eps_theta(x_t, t, y) for (B, 1, 28, 28) images in [-1, 1] (Ho et al. 2020, app. B, made small)."""

    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        self.config = c = config or UNetConfig()
        if c.parameterization not in ("eps", "x0", "mean"):
            raise ValueError(f"parameterization must be 'eps', 'x0' or 'mean'; got {c.parameterization!r}")
        if c.skip not in ("concat", "add"):
            raise ValueError(f"skip must be 'concat' or 'add'; got {c.skip!r}")
        if c.upsample not in ("upsample_conv", "conv_upsample"):
            raise ValueError(f"upsample must be 'upsample_conv' or 'conv_upsample'; got {c.upsample!r}")
        self.parameterization = c.parameterization
        self.num_classes = c.num_classes
        ch = list(c.channels)
        emb_dim = 4 * ch[0]
        self.time_mlp, self.label = _time_label_embedding(c, emb_dim)
        self.encoder = _Encoder(c, emb_dim)
        self.mid1 = ResBlock(ch[-1], ch[-1], emb_dim, c.groups, c.dropout)
        self.mid_attn = SelfAttention(ch[-1], c.groups) if c.attention else nn.Identity()
        self.mid2 = ResBlock(ch[-1], ch[-1], emb_dim, c.groups, c.dropout)
        self.up_blocks = nn.ModuleList()
        self.ups = nn.ModuleList()
        prev = ch[-1]
        for i in reversed(range(len(ch))):
            c_in = prev if c.skip == "add" else prev + ch[i]
            self.up_blocks.append(ResBlock(c_in, ch[i], emb_dim, c.groups, c.dropout))
            prev = ch[i]
            if i > 0:  # to the next level's channels, and 2x the resolution (the order is c.upsample)
                k = 1 if c.upsample == "conv_upsample" else 3
                self.ups.append(nn.Conv2d(ch[i], ch[i - 1], k, padding=k // 2))
                prev = ch[i - 1]
        self.out_norm = nn.GroupNorm(c.groups, ch[0])
        self.out = nn.Conv2d(ch[0], c.out_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def embed(self, x, t, y):
        """c = MLP(emb(t)) + E[y]: (B, 4 * channels[0])."""
        t = _check_t(t, x.shape[0], x.device)
        e = self.time_mlp(timestep_embedding(t, self.config.time_embed_dim))
        if self.label is not None:
            e = e + self.label(y, x.shape[0], x.device)
        elif y is not None:
            raise ValueError("this network is unconditional (num_classes = 0); call it with y=None")
        return F.silu(e)

    def _forward(self, h_in, t, y):
        emb = self.embed(h_in, t, y)
        h, skips = self.encoder(h_in.float(), emb)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for j, block in enumerate(self.up_blocks):
            s = skips[-1 - j]
            h = block(h + s if self.config.skip == "add" else torch.cat([h, s], dim=1), emb)
            if j < len(self.ups):
                h = self._up(j, h)
        return self.out(F.silu(self.out_norm(h)))

    def _up(self, j, h):
        """Level j of the up path to the next: 2x nearest upsample and a conv to its channels, in either order."""
        if self.config.upsample == "conv_upsample":
            return F.interpolate(self.ups[j](h), scale_factor=2, mode="nearest")
        return self.ups[j](F.interpolate(h, scale_factor=2, mode="nearest"))

    def forward(self, x_t, t, y=None):
        _check_image(x_t, self.config, type(self).__name__)
        return self._forward(x_t, t, y).to(x_t.dtype)  # (B, 1, 28, 28)


class InpaintUNet(UNet):
    """A U-Net that also sees the mask and the known pixels: input channels [x_t, mask, mask * x_0].

    Call: model(x_t, t, y=None, mask=None, known=None), with mask (B, 1, 28, 28) holding 1 where a
    pixel is known and known = mask * x_0 (the known pixels, 0 elsewhere). mask=None means nothing is
    known. To pass it to a sampler (which calls model(x_t, t, y)), wrap it: `model.conditioned(mask, known)`.
    """

    def __init__(self, config: UNetConfig | None = None):
        config = config or UNetConfig(in_channels=3)
        if config.in_channels != 3:
            raise ValueError(f"InpaintUNet needs in_channels = 3 (x_t, mask, known); got {config.in_channels}")
        super().__init__(config)

    def forward(self, x_t, t, y=None, mask=None, known=None):
        s = self.config.image_size
        if not torch.is_tensor(x_t) or x_t.ndim != 4 or tuple(x_t.shape[1:]) != (1, s, s):
            shape = tuple(x_t.shape) if torch.is_tensor(x_t) else type(x_t).__name__
            raise ValueError(f"InpaintUNet expects x_t of shape (B, 1, {s}, {s}); got {shape}")
        if mask is None:
            mask = torch.zeros_like(x_t)
        if known is None:
            known = torch.zeros_like(x_t)
        for name, v in (("mask", mask), ("known", known)):
            if v.shape != x_t.shape:
                raise ValueError(f"{name} must have the shape of x_t {tuple(x_t.shape)}; got {tuple(v.shape)}")
        h = torch.cat([x_t, mask.to(x_t.dtype), known.to(x_t.dtype)], dim=1)  # (B, 3, 28, 28)
        return self._forward(h, t, y).to(x_t.dtype)

    def conditioned(self, mask: torch.Tensor, known: torch.Tensor) -> MaskConditioned:
        """A model-protocol wrapper with the mask and known pixels bound (for the samplers)."""
        return MaskConditioned(self, mask, known)


class MaskConditioned(nn.Module):
    """model(x_t, t, y) = inpaint_net(x_t, t, y, mask=mask, known=known): the protocol of diffusion.py.

    mask / known may hold one image (1, 1, 28, 28) that is broadcast over the batch.
    """

    def __init__(self, net: InpaintUNet, mask: torch.Tensor, known: torch.Tensor):
        super().__init__()
        self.net = net
        self.parameterization = net.parameterization
        self.num_classes = net.num_classes
        self.mask, self.known = mask, known

    def forward(self, x_t, t, y=None):
        b = x_t.shape[0]
        mask = self.mask.to(x_t.device).expand(b, *self.mask.shape[1:])
        known = self.known.to(x_t.device).expand(b, *self.known.shape[1:])
        return self.net(x_t, t, y, mask=mask, known=known)


class NoisyClassifierUNet(nn.Module):
    """logits of p(y | x_t, t), (B, C): the U-Net's encoder half, global average pooling, a linear head
    (Dhariwal & Nichol 2021, sec. 4: the classifier that guides sampling sees noisy images)."""

    def __init__(self, config: UNetConfig | None = None):
        super().__init__()
        self.config = c = config or UNetConfig(num_classes=10)
        if c.num_classes < 2:
            raise ValueError(f"a classifier needs num_classes >= 2; got {c.num_classes}")
        self.num_classes = c.num_classes
        emb_dim = 4 * c.channels[0]
        self.time_mlp = nn.Sequential(nn.Linear(c.time_embed_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.encoder = _Encoder(c, emb_dim)
        self.mid = ResBlock(c.channels[-1], c.channels[-1], emb_dim, c.groups, c.dropout)
        self.out_norm = nn.GroupNorm(c.groups, c.channels[-1])
        self.head = nn.Linear(c.channels[-1], c.num_classes)

    def forward(self, x_t, t, y=None):
        """y is ignored (accepted for a uniform signature). Returns logits (B, C)."""
        _check_image(x_t, self.config, "NoisyClassifierUNet")
        t = _check_t(t, x_t.shape[0], x_t.device)
        emb = F.silu(self.time_mlp(timestep_embedding(t, self.config.time_embed_dim)))
        h, _ = self.encoder(x_t.float(), emb)
        h = F.silu(self.out_norm(self.mid(h, emb)))
        return self.head(h.mean(dim=(2, 3)))  # (B, C)


# --- building a network from a recipe ------------------------------------------------------------
NETWORK_BUILDERS = {
    "mlp2d": (MLP2D, MLPConfig),
    "unet": (UNet, UNetConfig),
    "classifier2d": (NoisyClassifier2D, Classifier2DConfig),
    "classifier_unet": (NoisyClassifierUNet, UNetConfig),
    "inpaint_unet": (InpaintUNet, UNetConfig),
}


def make_config(network: str, config: dict):
    """The config dataclass of a network name from a dict; unknown keys raise ValueError listing the valid ones."""
    if network not in NETWORK_BUILDERS:
        raise ValueError(f"unknown network {network!r}; valid: {', '.join(NETWORK_BUILDERS)}")
    _, cfg_cls = NETWORK_BUILDERS[network]
    fields = set(cfg_cls.__dataclass_fields__)
    unknown = set(config) - fields
    if unknown:
        raise ValueError(f"unknown {cfg_cls.__name__} field(s) {sorted(unknown)}; valid: {sorted(fields)}")
    config = dict(config)
    if network == "inpaint_unet":
        config.setdefault("in_channels", 3)
    if config.get("num_classes", 0) < 0:
        raise ValueError(
            "num_classes is still unresolved (-1); resolve it from the data first (training.resolve_recipe)"
        )
    return cfg_cls(**config)


def build_network(network: str, config: dict, schedule=None) -> nn.Module:
    """A fresh network from its name and config dict (as stored in a recipe); the schedule is needed by an
    MLP2D with gaussian_skip (it is not stored in the weights: the checkpoint sidecar holds it)."""
    cls, _ = NETWORK_BUILDERS.get(network, (None, None))
    cfg = make_config(network, config)
    return cls(cfg, schedule) if network == "mlp2d" else cls(cfg)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

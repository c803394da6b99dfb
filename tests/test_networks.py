"""Networks: shapes, the model protocol, label handling (null label), clear errors on bad input."""

import pytest
import torch

from toy_models import networks as N
from toy_models.diffusion import call_model, p_mean_variance
from toy_models.schedules import make_schedule


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _randomise(model, seed=0):
    """Zero-initialised output layers make every output 0; give them random weights to see the inputs' effect."""
    g = _gen(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model


def test_timestep_embedding_matches_formula():
    t = torch.tensor([0.0, 1.5, 999.0])
    e = N.timestep_embedding(t, 8)
    w = torch.tensor([10_000.0 ** (-i / 4) for i in range(4)])
    want = torch.cat([torch.cos(t[:, None] * w), torch.sin(t[:, None] * w)], 1)
    torch.testing.assert_close(e, want)
    with pytest.raises(ValueError, match=r"\(B,\)"):
        N.timestep_embedding(torch.zeros(2, 2), 8)


def test_fourier_features_formula():
    x = torch.tensor([[0.5, -1.0]])
    f = N.fourier_features(x, 2, 4.0)  # frequencies 1 and 4
    want = torch.tensor(
        [
            [
                0.5,
                -1.0,
                torch.sin(torch.tensor(0.5)),
                torch.sin(torch.tensor(2.0)),
                torch.sin(torch.tensor(-1.0)),
                torch.sin(torch.tensor(-4.0)),
                torch.cos(torch.tensor(0.5)),
                torch.cos(torch.tensor(2.0)),
                torch.cos(torch.tensor(-1.0)),
                torch.cos(torch.tensor(-4.0)),
            ]
        ]
    )
    torch.testing.assert_close(f, want)


def test_mlp2d_relu_without_layer_norm_is_the_written_network():
    """MLPConfig(activation="relu", layer_norm=False), the shipped 2D networks' cheaper form, computed by
    hand for one block: h = inp(features); h += W2 relu(W1 relu(h) + E silu(MLP(emb t)) + b1) + b2;
    eps = W_out relu(h) + b_out. No LayerNorm weights are kept; an unknown activation is refused."""
    m = _randomise(N.MLP2D(N.MLPConfig(width=16, n_blocks=1, activation="relu", layer_norm=False)))
    assert not any("norm" in k for k in m.state_dict())
    x, t = torch.randn(30, 2, generator=_gen(2)), torch.full((30,), 40.0)
    b = m.blocks[0]
    c = torch.nn.functional.silu(m.time_mlp(N.timestep_embedding(t, m.config.time_embed_dim)))
    h = m.inp(N.fourier_features(x, 16, 32.0))
    h = h + b.fc2(torch.relu(b.fc1(torch.relu(h)) + b.cond(c)))
    want = m.out(torch.relu(h))
    assert want.abs().max() > 0.1
    torch.testing.assert_close(m(x, t), want, rtol=0, atol=1e-5)
    silu = N.MLP2D(N.MLPConfig(width=16, n_blocks=1, layer_norm=False))
    silu.load_state_dict(m.state_dict())  # the same weights under SiLU: another function
    assert (silu(x, t) - want).abs().max() > 1e-2
    with pytest.raises(ValueError, match="activation must be one of"):
        N.MLP2D(N.MLPConfig(activation="gelu"))


def test_mlp2d_protocol_and_fractional_t():
    m = _randomise(N.MLP2D(N.MLPConfig(width=32, n_blocks=2)))
    assert m.parameterization == "eps"
    x = torch.randn(5, 2)
    out = call_model(m, x, 10)  # diffusion.py's checked call: (B,) float t, same shape out
    assert out.shape == (5, 2)
    # real-valued t: the output moves continuously between integer times
    a, b, mid = m(x, torch.full((5,), 10.0)), m(x, torch.full((5,), 11.0)), m(x, torch.full((5,), 10.5))
    assert not torch.allclose(a, b)
    assert (mid - 0.5 * (a + b)).abs().max() < (a - b).abs().max()
    # works inside the reverse step
    s = make_schedule("linear", 50)
    pm = p_mean_variance(s, m, x, 10)
    assert pm.mean.shape == (5, 2)


def test_fresh_mlp_outputs_zero():
    """The output layer starts at zero: the untrained model predicts eps = 0 (x_0 estimate = x_t / sqrt(abar))."""
    m = N.MLP2D(N.MLPConfig(width=16, n_blocks=1))
    assert torch.equal(m(torch.randn(3, 2), torch.rand(3) * 100), torch.zeros(3, 2))


def test_mlp2d_labels_null_label_differs():
    m = _randomise(N.MLP2D(N.MLPConfig(width=32, n_blocks=2, num_classes=3)))
    x, t = torch.randn(4, 2), torch.full((4,), 100.0)
    null = m(x, t, torch.full((4,), 3))
    torch.testing.assert_close(m(x, t, None), null)  # y=None is the null label
    for c in range(3):
        assert not torch.allclose(m(x, t, torch.full((4,), c)), null)
    assert not torch.allclose(m(x, t, torch.zeros(4, dtype=torch.long)), m(x, t, torch.ones(4, dtype=torch.long)))


@pytest.mark.parametrize(
    "bad, match",
    [
        (lambda m: m(torch.randn(4, 3), torch.zeros(4)), r"\(B, 2\)"),
        (lambda m: m(torch.randn(4, 2), torch.zeros(3)), "t must be"),
        (lambda m: m(torch.randn(4, 2), torch.zeros(4), torch.full((4,), 4)), r"0\.\.3"),
        (lambda m: m(torch.randn(4, 2), torch.zeros(4), torch.zeros(4)), "integer"),
        (lambda m: m(torch.randn(4, 2), torch.zeros(4), torch.zeros(3, dtype=torch.long)), "y must be"),
    ],
)
def test_mlp2d_bad_inputs(bad, match):
    m = N.MLP2D(N.MLPConfig(width=16, n_blocks=1, num_classes=3))
    with pytest.raises(ValueError, match=match):
        bad(m)


def test_unconditional_rejects_labels():
    m = N.MLP2D(N.MLPConfig(width=16, n_blocks=1))
    with pytest.raises(ValueError, match="unconditional"):
        m(torch.randn(2, 2), torch.zeros(2), torch.zeros(2, dtype=torch.long))


def test_unet_shapes_labels_and_size():
    m = N.UNet(N.UNetConfig(num_classes=10))
    n = N.count_parameters(m)
    assert 0.5e6 <= n <= 2e6, n
    _randomise(m)
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([10.0, 500.5])
    out = m(x, t, torch.tensor([3, 10]))
    assert out.shape == x.shape
    null = m(x, t, None)
    torch.testing.assert_close(m(x, t, torch.tensor([10, 10])), null)
    assert not torch.allclose(m(x, t, torch.tensor([3, 3])), null)
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        m(torch.randn(2, 1, 32, 32), t)
    with pytest.raises(ValueError, match=r"0\.\.10"):
        m(x, t, torch.tensor([11, 0]))


def test_unet_add_skips_and_conv_before_upsample_are_wired_as_configured():
    """skip='add', upsample='conv_upsample': each up block reads (the level below, upsampled) + (the down path's
    features at its level), and the upsampling is a nearest 2x of a 1x1 conv's output, here redone with
    repeat_interleave from the tensors that hooks record."""
    cfg = N.UNetConfig(channels=[8, 16, 32], groups=4, num_classes=10, skip="add", upsample="conv_upsample")
    m = _randomise(N.UNet(cfg), 2)
    assert [b.conv1.in_channels for b in m.up_blocks] == [32, 16, 8]  # concat would read 64, 32, 16
    assert [u.kernel_size for u in m.ups] == [(1, 1), (1, 1)]
    seen = {}
    hooks = [m.mid2.register_forward_hook(lambda mod, i, o: seen.__setitem__("mid", o))]
    for k, blk in enumerate(m.encoder.blocks):
        hooks.append(blk.register_forward_hook(lambda mod, i, o, k=k: seen.__setitem__(("skip", k), o)))
    for j, blk in enumerate(m.up_blocks):
        hooks.append(blk.register_forward_pre_hook(lambda mod, i, j=j: seen.__setitem__(("in", j), i[0])))
    for j, up in enumerate(m.ups):
        hooks.append(up.register_forward_hook(lambda mod, i, o, j=j: seen.__setitem__(("up", j), (i[0], o))))
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([3.0, 700.0])
    m(x, t, torch.tensor([1, 10]))
    for h in hooks:
        h.remove()
    torch.testing.assert_close(seen[("in", 0)], seen["mid"] + seen[("skip", 2)])
    for j in (0, 1):
        up_in, up_out = seen[("up", j)]
        assert up_in.shape[-1] * 2 == seen[("in", j + 1)].shape[-1]  # the conv ran at the lower resolution
        upsampled = up_out.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)
        torch.testing.assert_close(seen[("in", j + 1)], upsampled + seen[("skip", 1 - j)])
    concat = N.UNet(N.UNetConfig(channels=[8, 16, 32], groups=4))
    assert [b.conv1.in_channels for b in concat.up_blocks] == [64, 32, 16]
    assert [u.kernel_size for u in concat.ups] == [(3, 3), (3, 3)]
    with pytest.raises(ValueError, match="skip must be"):
        N.UNet(N.UNetConfig(skip="sum"))
    with pytest.raises(ValueError, match="upsample must be"):
        N.UNet(N.UNetConfig(upsample="bilinear"))


def test_unet_is_translation_sensitive_but_local():
    """A change in one corner pixel changes the output near it more than far away (a sanity check on the
    skip connections: output at a pixel depends on its neighbourhood)."""
    torch.manual_seed(0)
    m = _randomise(N.UNet(N.UNetConfig(channels=[8, 16, 16], groups=4, attention=False)), 1)
    x = torch.randn(1, 1, 28, 28)
    x2 = x.clone()
    x2[0, 0, 0, 0] += 5.0
    t = torch.tensor([100.0])
    d = (m(x2, t) - m(x, t)).abs()[0, 0]
    assert d[:4, :4].mean() > d[20:, 20:].mean()


def test_classifiers_return_logits():
    c2 = N.NoisyClassifier2D(N.Classifier2DConfig(num_classes=4))
    assert c2(torch.randn(6, 2), torch.rand(6) * 1000).shape == (6, 4)
    cu = N.NoisyClassifierUNet(N.UNetConfig(num_classes=10))
    assert cu(torch.randn(3, 1, 28, 28), torch.rand(3) * 1000).shape == (3, 10)
    with pytest.raises(ValueError, match="num_classes >= 2"):
        N.NoisyClassifier2D(N.Classifier2DConfig(num_classes=1))
    with pytest.raises(ValueError, match=r"\(B, 1, 28, 28\)"):
        cu(torch.randn(3, 28, 28), torch.zeros(3))


def test_inpaint_unet_sees_mask_and_known_pixels():
    m = _randomise(N.InpaintUNet(N.UNetConfig(in_channels=3, num_classes=10)))
    x, t = torch.randn(2, 1, 28, 28), torch.tensor([50.0, 50.0])
    mask = torch.zeros_like(x)
    mask[..., :14, :] = 1.0
    known = mask * torch.randn_like(x)
    a = m(x, t, None, mask=mask, known=known)
    assert a.shape == x.shape
    assert not torch.allclose(a, m(x, t, None))  # the mask matters
    assert not torch.allclose(a, m(x, t, None, mask=mask, known=2 * known))  # the known pixels matter
    wrapped = m.conditioned(mask[:1], known[:1])  # the protocol wrapper broadcasts one mask
    assert wrapped.parameterization == "eps"
    torch.testing.assert_close(wrapped(x[:1], t[:1]), a[:1])
    with pytest.raises(ValueError, match="mask must have the shape"):
        m(x, t, None, mask=mask[:, :, :14], known=known)
    with pytest.raises(ValueError, match="in_channels = 3"):
        N.InpaintUNet(N.UNetConfig(in_channels=1))


def test_build_network_rejects_unknown_names():
    with pytest.raises(ValueError, match="valid: mlp2d"):
        N.build_network("resnet", {})
    with pytest.raises(ValueError, match="valid:"):
        N.build_network("mlp2d", {"widht": 3})
    assert isinstance(N.build_network("inpaint_unet", {}), N.InpaintUNet)


def test_gaussian_skip_is_the_exact_predictor_for_standard_normal_data():
    """A fresh MLP2D with gaussian_skip predicts eps = sqrt(1 - abar(t)) x_t, which is E[eps | x_t] when
    x_0 ~ N(0, I); check against Schedule.alpha_bar at integer and fractional t, and by Monte Carlo."""
    s = make_schedule("linear", 1000)
    m = N.build_network("mlp2d", {"width": 16, "n_blocks": 1, "gaussian_skip": True}, s)
    x = torch.randn(6, 2)
    t = torch.tensor([0.0, 1.0, 10.5, 250.25, 999.9, 1000.0])
    want = (1 - s.alpha_bar(t)).sqrt().float()[:, None] * x
    torch.testing.assert_close(m(x, t), want, rtol=1e-5, atol=1e-6)
    # Monte Carlo: regress eps on x_t for Gaussian data at t = 300; the slope is sqrt(1 - abar)
    g = _gen(3)
    x0, eps = (
        torch.randn(200_000, generator=g, dtype=torch.float64),
        torch.randn(200_000, generator=g, dtype=torch.float64),
    )
    ab = s.alphas_cumprod[300]
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    slope = (eps * xt).mean() / (xt * xt).mean()
    pred = m(torch.ones(1, 2), torch.tensor([300.0]))[0, 0].item()
    assert abs(slope.item() - pred) < 0.01
    with pytest.raises(ValueError, match="needs the schedule"):
        N.build_network("mlp2d", {"gaussian_skip": True})


@pytest.mark.parametrize("num_classes", [0, 3])
def test_mlp2d_shared_time_rows_give_the_same_outputs_as_one_example_at_a_time(num_classes):
    """A batch that shares one t is embedded once and broadcast (a sampler's step); with or without autograd,
    and for a shared t, a few distinct t values or all distinct ones, the batch gives what the network gives
    one example at a time."""
    torch.manual_seed(0)
    s = make_schedule("linear", 100)
    net = N.MLP2D(
        N.MLPConfig(width=32, n_blocks=2, time_embed_dim=16, num_classes=num_classes, gaussian_skip=True), schedule=s
    )
    for p in net.parameters():  # the output layer starts at zero: make every path visible
        torch.nn.init.normal_(p, std=0.3)
    x = torch.randn(60, 2)
    y = None if num_classes == 0 else torch.randint(0, num_classes + 1, (60,))
    for t in (
        torch.full((60,), 37.0),
        torch.tensor([5.0, 90.0, 37.5]).repeat_interleave(20),  # few distinct: shared
        torch.rand(60) * 100,
    ):  # all distinct: per example
        out = net(x, t, y)
        with torch.no_grad():
            out_no_grad = net(x, t, y)
        one = torch.cat([net(x[i : i + 1], t[i : i + 1], None if y is None else y[i : i + 1]) for i in range(60)])
        assert out.abs().max() > 0.1 and torch.allclose(out, one, atol=1e-5), t[:3]
        assert torch.equal(out_no_grad, out.detach())


# --- fast_inference: bfloat16 convolutions for sampling, only where the hardware has them ----------------
def _unet_out(model, x, t, y):
    with torch.no_grad():
        return model(x, t, y)


def test_fast_inference_changes_nothing_without_native_bf16(monkeypatch):
    monkeypatch.setattr(N, "bf16_is_native", lambda device: False)
    model = _randomise(N.UNet(N.UNetConfig(channels=[16, 32, 32], num_classes=10))).eval()
    x, t, y = torch.randn(4, 1, 28, 28, generator=_gen(1)), torch.full((4,), 300.0), torch.arange(4)
    with N.fast_inference("cpu"):
        fast = _unet_out(model, x, t, y)
    assert torch.equal(fast, _unet_out(model, x, t, y))


def test_fast_inference_can_be_turned_off_by_setting(monkeypatch):
    monkeypatch.setattr(N, "bf16_is_native", lambda device: True)
    monkeypatch.setenv("COURSE_PRECISION", "fp32")
    with N.fast_inference("cpu"):
        assert not torch.is_autocast_enabled("cpu")
    monkeypatch.setenv("COURSE_PRECISION", "auto")
    with N.fast_inference("cpu"):
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


def test_fast_inference_samples_agree_with_full_precision(monkeypatch):
    """The shipped digit model sampled in bfloat16 (forced on, emulated where the CPU lacks it) lands within
    a few grey levels of the float32 run from the same noise: the speed-up does not change what is drawn."""
    from tests.helpers import shipped_or_skip
    from toy_models.guidance import ClassifierFreeGuidance
    from toy_models.samplers import sample_ddim

    ck = shipped_or_skip("mnist")
    monkeypatch.setattr(N, "bf16_is_native", lambda device: True)
    model = ClassifierFreeGuidance(ck.model, 2.0, 10)
    x_T = torch.randn(8, 1, 28, 28, generator=_gen(3))
    y = torch.arange(8)

    def run():
        with torch.no_grad():
            return sample_ddim(model, ck.schedule, x_T, steps=20, y=y, clip_x0=(-1.0, 1.0))

    full = run()
    with N.fast_inference("cpu"):
        fast = run()
    assert fast.dtype == torch.float32
    diff = (fast - full).abs()  # pixels in [-1, 1]: 0.02 is 2.5 grey levels of 255
    assert diff.mean() < 0.02 and diff.max() < 0.5, (diff.mean().item(), diff.max().item())

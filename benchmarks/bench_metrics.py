"""Speed of the metrics and of guidance, and the judge's figures (medians of repeated runs)."""

from __future__ import annotations

from benchmarks import median_seconds


def _median_s(fn, repeats: int = 5) -> float:
    fn()  # warm-up
    return median_seconds(fn, repeats)


def run() -> list[str]:
    import torch

    from toy_models import data, metrics
    from toy_models.guidance import ClassifierFreeGuidance
    from toy_models.networks import MLP2D, MLPConfig

    lines = []
    a, _ = data.sample_2d("moons", 2000, seed=1)
    b, _ = data.sample_2d("moons", 2000, seed=2)
    t = _median_s(lambda: metrics.sliced_wasserstein(a, b))
    lines.append(f"sliced_wasserstein 2000 vs 2000 points, 512 projections: {t * 1e3:.1f} ms")
    t = _median_s(lambda: metrics.noise_floor(lambda n, s: data.sample_2d("moons", n, seed=s)[0], 2000), 3)
    floor = metrics.noise_floor(lambda n, s: data.sample_2d("moons", n, seed=s)[0], 2000)
    lines.append(f"noise_floor moons n=2000 (4 draws, 6 pairs): {t * 1e3:.0f} ms, value {floor:.4f}")

    # classifier-free guidance: one doubled batch vs a plain call
    torch.manual_seed(0)
    net = MLP2D(MLPConfig(num_classes=5)).eval()
    x, tt = torch.randn(512, 2), torch.full((512,), 500.0)
    y = torch.randint(0, 5, (512,))
    cfg = ClassifierFreeGuidance(net, 2.0, 5)
    with torch.no_grad():
        t_plain = _median_s(lambda: net(x, tt, y), 20)
        t_cfg = _median_s(lambda: cfg(x, tt, y), 20)
    lines.append(
        f"CFG on MLP2D batch 512: {t_cfg * 1e3:.2f} ms vs plain {t_plain * 1e3:.2f} ms "
        f"({t_cfg / t_plain:.2f}x; two separate calls would be 2x)"
    )

    try:
        judge = metrics.load_judge()
    except metrics.JudgeError as e:
        return lines + [f"judge: skipped ({e})"]
    d = data.load_mnist()
    acc = metrics.judge_accuracy(d.x_test, d.y_test, judge)
    lines.append(f"judge held-out accuracy: {acc:.4f} on {len(d.y_test)} real test digits ({d.source})")
    x200 = d.x_test[:200]
    t = _median_s(lambda: metrics.judge_features(x200, judge))
    lines.append(f"judge_features 200 digits: {t * 1e3:.0f} ms")
    f1, f2 = metrics.judge_features(d.x_test[::2][:200], judge), metrics.judge_features(d.x_test[1::2][:200], judge)
    t = _median_s(lambda: metrics.frechet_distance(f1, f2))
    floor = metrics.real_floor_fd(d.x_test, 200, judge=judge)
    lines.append(f"frechet_distance 200 x 128 features: {t * 1e3:.0f} ms; real-vs-real floor (n=200): {floor:.2f}")
    return lines


if __name__ == "__main__":
    print("\n".join(run()))

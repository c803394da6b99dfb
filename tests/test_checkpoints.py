"""Checkpoints: exact round trip, and the promised messages for corrupt, missing and mismatched files;
every shipped file in weights/ loads and matches its sidecar."""

import json

import pytest
import torch

from toy_models.checkpoints import (
    WEIGHTS_DIR,
    CheckpointError,
    list_shipped,
    load_checkpoint,
    read_sidecar,
    resolve_paths,
    save_checkpoint,
    sha256_file,
    update_metrics,
)
from toy_models.schedules import schedule_to_dict
from toy_models.training import Trainer, resolve_recipe

torch.set_num_threads(1)
SHIPPED_2D = (
    "moons",
    "swissroll",
    "rings",
    "checkerboard",
    "gmm",
    "gmm-classifier",
    "moons-cond",
    "moons-vlb",
    "moons-hybrid",
)


@pytest.fixture(scope="module")
def trained():
    tr = Trainer("tiny", device="cpu")
    tr.run(5)
    return tr


@pytest.fixture
def saved(trained, tmp_path):
    return save_checkpoint(trained, path_stem=tmp_path / "tiny", metrics={"sw": 0.1})


def test_round_trip_identical_outputs(trained, saved):
    loaded = load_checkpoint(saved)
    x, t = torch.randn(16, 2), torch.rand(16) * 100
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(x, t), trained.ema_model(x, t), rtol=0, atol=0)  # the EMA weights
        assert not torch.equal(loaded.model(x, t), trained.model(x, t))
    assert schedule_to_dict(loaded.schedule) == schedule_to_dict(trained.schedule)
    sc = loaded.sidecar
    assert loaded.recipe == trained.recipe.to_dict() == sc["recipe"]
    assert sc["steps"] == 5 and sc["seed"] == trained.seed and sc["metrics"] == {"sw": 0.1}
    assert sc["sha256"] == sha256_file(saved) and sc["param_count"] == sum(p.numel() for p in loaded.model.parameters())
    assert not loaded.model.training
    # the same file found by its path with either suffix or none
    for p in (saved.with_suffix(""), saved.with_suffix(".json")):
        assert resolve_paths(p)[0] == saved


def test_weights_hold_no_pickle(saved):
    head = saved.read_bytes()[:2]
    assert head != b"\x80\x04" and b"pickle" not in saved.read_bytes()  # safetensors: a JSON header + raw tensors


def test_corrupted_file(saved):
    data = bytearray(saved.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 16):
        data[i] ^= 0xFF
    saved.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=r"corrupt.*sha256.*python -m toy_models train tiny"):
        load_checkpoint(saved)


def test_truncated_file_without_hash_check(saved):
    saved.write_bytes(saved.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=r"cannot be read as safetensors.*python -m toy_models train tiny"):
        load_checkpoint(saved, verify=False)


def test_missing_files(saved):
    json_path = saved.with_suffix(".json")
    saved.unlink()
    with pytest.raises(CheckpointError, match=r"missing.*python -m toy_models train tiny"):
        load_checkpoint(saved)
    with pytest.raises(CheckpointError, match=r"weights.*missing.*python -m toy_models train nosuchmodel"):
        load_checkpoint("nosuchmodel")
    assert json_path.exists()


def test_shape_mismatch(saved):
    side = saved.with_suffix(".json")
    d = json.loads(side.read_text())
    d["recipe"]["network_config"]["width"] = 80  # the recipe now builds a wider network than the file holds
    side.write_text(json.dumps(d))
    with pytest.raises(CheckpointError, match=r"does not match.*wrong shape.*python -m toy_models train tiny"):
        load_checkpoint(saved)


def test_bad_sidecar(saved):
    saved.with_suffix(".json").write_text("{not json")
    with pytest.raises(CheckpointError, match=r"not valid JSON.*python -m toy_models train"):
        load_checkpoint(saved)


def test_update_metrics(saved):
    update_metrics(saved, {"nll": 1.5})
    assert read_sidecar(saved)["metrics"] == {"sw": 0.1, "nll": 1.5}
    load_checkpoint(saved)  # the weights' hash is unchanged


def test_shipped_2d_weights_present():
    missing = [n for n in SHIPPED_2D if n not in list_shipped()]
    assert not missing, f"missing shipped weights: {missing}"


@pytest.mark.parametrize("name", list_shipped())
def test_every_shipped_file_loads_and_matches_its_sidecar(name):
    weights, side = resolve_paths(name)
    sc = json.loads(side.read_text())
    assert sc["sha256"] == sha256_file(weights)
    assert sc["recipe"]["name"] == name
    loaded = load_checkpoint(name)
    assert sc["param_count"] == sum(p.numel() for p in loaded.model.parameters())
    assert sc["schedule"] == schedule_to_dict(loaded.schedule)
    # the file is what `python -m toy_models train NAME` makes today: same recipe, all its steps
    assert sc["recipe"] == resolve_recipe(name).to_dict(), f"{name}: trained with another recipe; retrain it"
    assert sc["steps"] == sc["recipe"]["steps"]
    if sc["recipe"]["data"] != "mnist":
        assert weights.stat().st_size < 1_000_000
    if name in SHIPPED_2D and sc["recipe"]["kind"] == "diffusion":
        # measured by `python -m toy_models evaluate NAME --write`: 8 sets of 2,000 DDPM samples vs held-out
        # data, over a floor from 16 data draws (fewer read the exact mixture model itself at 1.4-1.55x)
        assert sc["metrics"]["sw_repeats"] >= 8 and sc["metrics"]["sw_floor_draws"] >= 16
        assert sc["metrics"]["sw_over_floor"] <= 1.3
    if name == "mnist":
        # `python -m toy_models evaluate mnist --write`: the judge on 200 class-conditional samples at the default
        # guidance scale, and the bound on held-out digits (the targets: >= 95%, <= 2.0 bits/dim)
        assert sc["metrics"]["judge_accuracy"] >= 0.95 and sc["metrics"]["elbo_bits_per_dim"] <= 2.0
    if sc["recipe"]["kind"] == "classifier":
        # `python -m toy_models evaluate NAME --write`: held-out accuracy of p(y | x_t, t) at small t
        assert sc["metrics"]["accuracy_t1"] >= 0.95
    assert weights.parent == WEIGHTS_DIR

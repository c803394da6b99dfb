"""Safe checkpoints: safetensors weights + a JSON sidecar. No pickle anywhere.

    weights/NAME.safetensors   the EMA weights (tensors only: loading cannot run code)
    weights/NAME.json          {recipe (full dict), schedule, data, seed, steps, wall_time_s, device,
                                metrics, sha256 (of the .safetensors file), param_count, created, format}

`load_checkpoint("moons")` resolves a shipped name to weights/moons.*; a path (with or without the
suffix) works too. It checks the sha256, rebuilds the network from the sidecar's recipe and checks every
tensor's name and shape against it. Anything missing, corrupt or mismatched raises CheckpointError whose
message says what is wrong and how to rebuild the file ("python -m toy_models train NAME").
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from . import networks
from .recipes import Recipe, get_recipe
from .schedules import Schedule, schedule_from_dict, schedule_to_dict

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
FORMAT = "diffusion-course-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt or does not fit its recipe; the message says how to rebuild it."""


@dataclass
class Loaded:
    """A loaded checkpoint."""

    model: torch.nn.Module  # the network with the EMA weights, in eval mode
    schedule: Schedule  # the schedule it was trained with
    recipe: dict  # the full recipe dict (Recipe.from_dict(recipe) rebuilds the dataclass)
    sidecar: dict  # everything in the JSON sidecar


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_paths(name_or_path) -> tuple[Path, Path]:
    """(weights path, sidecar path). A bare name ("moons") means weights/NAME.safetensors."""
    p = Path(name_or_path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    elif len(p.parts) == 1 and not str(name_or_path).startswith("."):
        p = WEIGHTS_DIR / p.name
    return p.with_name(p.name + ".safetensors"), p.with_name(p.name + ".json")


def _rebuild_hint(recipe_name: str | None, stem: Path) -> str:
    name = recipe_name or stem.name
    return f"Rebuild it with: python -m toy_models train {name}"


def list_shipped(weights_dir=None) -> list[str]:
    """Names of the model checkpoints in weights/: both files present, sidecar in this module's FORMAT
    (other files there, e.g. the metrics' MNIST judge, have their own loader)."""
    d = Path(weights_dir or WEIGHTS_DIR)
    names = []
    for p in sorted(d.glob("*.safetensors")):
        try:
            if json.loads(p.with_suffix(".json").read_text()).get("format") == FORMAT:
                names.append(p.stem)
        except (OSError, ValueError, AttributeError):
            continue
    return names


# --- saving --------------------------------------------------------------------------------------------
def save_checkpoint(
    trainer_or_model,
    recipe=None,
    path_stem=None,
    metrics=None,
    *,
    schedule=None,
    seed=None,
    steps=None,
    wall_time_s=None,
    device=None,
    data=None,
    extra=None,
) -> Path:
    """Write PATH_STEM.safetensors (EMA weights when given a Trainer) and PATH_STEM.json; return the weights path.

    trainer_or_model: a training.Trainer (its recipe, schedule, seed, steps, wall time and device are
    used) or a bare network (then pass recipe and schedule). path_stem defaults to weights/RECIPE_NAME.
    """
    from safetensors.torch import save_file

    model = getattr(trainer_or_model, "ema_model", trainer_or_model)
    tr = trainer_or_model if hasattr(trainer_or_model, "ema_model") else None
    recipe = (
        tr.recipe if (recipe is None and tr is not None) else get_recipe(recipe) if isinstance(recipe, str) else recipe
    )
    if isinstance(recipe, dict):
        recipe = Recipe.from_dict(recipe)
    if recipe is None:
        raise ValueError("save_checkpoint needs a recipe (a Recipe, a dict or a name) when given a bare model")
    if schedule is None:
        schedule = tr.schedule if tr is not None else schedule_from_dict(recipe.schedule)
    weights, side = resolve_paths(path_stem if path_stem is not None else recipe.name)
    weights.parent.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).contiguous()
        for k, v in model.state_dict().items()
    }
    save_file(state, str(weights), metadata={"format": FORMAT, "recipe": recipe.name})
    weights.chmod(0o644)  # safetensors writes 0600; shipped weights must be world-readable
    sidecar = {
        "format": FORMAT,
        "name": weights.stem,
        "recipe": recipe.to_dict(),
        "schedule": schedule_to_dict(schedule),
        "data": data
        if data is not None
        else {"name": recipe.data, "params": recipe.data_params, "n_train": recipe.n_train if recipe.is_2d else None},
        "seed": seed if seed is not None else (tr.seed if tr is not None else recipe.seed),
        "steps": steps if steps is not None else (tr.step_count if tr is not None else None),
        "wall_time_s": wall_time_s if wall_time_s is not None else (round(tr.wall_time_s, 2) if tr else None),
        "device": device if device is not None else (str(tr.device) if tr is not None else "cpu"),
        "metrics": metrics or {},
        "sha256": sha256_file(weights),
        "param_count": networks.count_parameters(model),
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "torch": torch.__version__,
    }
    if extra:
        sidecar.update(extra)
    _write_json(side, sidecar)
    return weights


def _write_json(path: Path, obj: dict):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


def update_metrics(name_or_path, metrics: dict) -> dict:
    """Merge `metrics` into a checkpoint's sidecar (the CLI's evaluate fills them); returns the sidecar."""
    _, side = resolve_paths(name_or_path)
    sidecar = read_sidecar(name_or_path)
    sidecar["metrics"] = {**sidecar.get("metrics", {}), **metrics}
    _write_json(side, sidecar)
    return sidecar


# --- loading -------------------------------------------------------------------------------------------
def read_sidecar(name_or_path) -> dict:
    """The JSON sidecar, or CheckpointError if it is missing or unreadable."""
    weights, side = resolve_paths(name_or_path)
    hint = _rebuild_hint(None, weights.with_suffix(""))
    if not side.exists():
        raise CheckpointError(f"checkpoint sidecar {side} is missing. {hint}")
    try:
        sidecar = json.loads(side.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"checkpoint sidecar {side} is not valid JSON ({e}). {hint}") from None
    if not isinstance(sidecar, dict) or "recipe" not in sidecar or "sha256" not in sidecar:
        raise CheckpointError(f"checkpoint sidecar {side} lacks its recipe or sha256. {hint}")
    return sidecar


def load_checkpoint(name_or_path, device="cpu", verify: bool = True) -> Loaded:
    """Load a checkpoint safely (see the module docstring); the model holds the EMA weights, in eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    weights, side = resolve_paths(name_or_path)
    stem = weights.with_suffix("")
    if not weights.exists():
        raise CheckpointError(f"checkpoint weights {weights} are missing. {_rebuild_hint(None, stem)}")
    sidecar = read_sidecar(name_or_path)
    recipe_name = sidecar["recipe"].get("name") if isinstance(sidecar["recipe"], dict) else None
    hint = _rebuild_hint(recipe_name, stem)
    if verify:
        digest = sha256_file(weights)
        if digest != sidecar["sha256"]:
            raise CheckpointError(
                f"checkpoint {weights} is corrupt or was changed: its sha256 is {digest[:12]}..., the sidecar "
                f"{side.name} expects {str(sidecar['sha256'])[:12]}.... {hint}"
            )
    try:
        recipe = Recipe.from_dict(sidecar["recipe"])
        schedule = schedule_from_dict(sidecar.get("schedule") or recipe.schedule)
        model = networks.build_network(recipe.network, recipe.network_config, schedule)
    except (ValueError, TypeError, KeyError) as e:
        raise CheckpointError(
            f"checkpoint sidecar {side} holds a recipe this code cannot build ({e}). {hint}"
        ) from None
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"checkpoint {weights} cannot be read as safetensors ({e}). {hint}") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs network {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            parts.append(f"{len(wrong)} tensor(s) of the wrong shape (e.g. {'; '.join(wrong[:3])})")
        if missing:
            parts.append(f"{len(missing)} missing tensor(s) (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected tensor(s) (e.g. {', '.join(unexpected[:3])})")
        raise CheckpointError(
            f"checkpoint {weights} does not match the network its recipe {recipe.name!r} builds "
            f"({recipe.network} {recipe.network_config}): {'; '.join(parts)}. {hint}"
        )
    model.load_state_dict(state)
    model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return Loaded(model=model, schedule=schedule, recipe=recipe.to_dict(), sidecar=sidecar)

"""Shared, read-only things, loaded once per server process and shared by every session: the device,
2D data, MNIST, the shipped checkpoints and the ground-truth mixture."""

from __future__ import annotations

import streamlit as st


@st.cache_resource
def device() -> str:
    """The device the course computes on: CUDA when present, else Apple MPS, else CPU."""
    from toy_models.training import pick_device

    return str(pick_device("auto"))


@st.cache_data(max_entries=64)
def points_2d(name: str, n: int, seed: int):
    """(x (n, 2) float32 tensor) of a 2D toy, from toy_models.data."""
    from toy_models.data import sample_2d

    return sample_2d(name, n, seed=seed)[0]


@st.cache_resource
def mnist():
    """The MNIST data (embedded 5,000-digit subset unless $MNIST_DIR points at full MNIST)."""
    from toy_models.data import load_mnist

    return load_mnist()


@st.cache_resource(max_entries=8, show_spinner="Loading shipped weights ...")
def checkpoint(name: str, dev: str = "cpu"):
    """A shipped checkpoint, loaded once per server; raises CheckpointError (not cached) when missing or broken."""
    from toy_models.checkpoints import load_checkpoint

    return load_checkpoint(name, device=dev)


def try_checkpoint(name: str, dev: str = "cpu"):
    """(Loaded, None), or (None, the error's message): a missing or broken checkpoint never stops a page.
    A session model's key ("mine:<id>", see model_for) gives that model (on the CPU)."""
    from toy_models.checkpoints import CheckpointError

    from .my_models import is_session_model, session_lab

    if is_session_model(name):
        loaded = session_lab().models.get(name)
        return (
            (loaded, None)
            if loaded is not None
            else (None, f"Your model {name!r} is no longer in this session (removed, or the session restarted).")
        )
    try:
        return checkpoint(name, dev), None
    except CheckpointError as e:
        return None, str(e)


@st.cache_resource
def ground_truth_gmm():
    from toy_models.gmm import default_gmm

    return default_gmm()

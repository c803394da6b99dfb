"""Shared test set-up.

One torch thread: the tests are dominated by small tensors, where a second thread only adds
synchronisation, and a shared 2-core machine punishes oversubscribed OpenMP threads badly
(a loop of tiny ops measured 20x slower with 2 threads under load).
"""

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def random_mnist_weights(tmp_path_factory):
    """Random-init networks of the shipped MNIST recipes in a temporary weights dir, for the pages' code
    paths (not their quality): the checkpoints module reads from it until the module's tests end."""
    import streamlit as st

    from toy_models import checkpoints as C
    from toy_models.networks import build_network
    from toy_models.recipes import RECIPES
    from toy_models.schedules import schedule_from_dict

    d = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    for name in ("mnist", "mnist-classifier", "mnist-inpaint"):
        r = RECIPES[name]
        C.save_checkpoint(
            build_network(r.network, dict(r.network_config)).eval(),
            recipe=r,
            path_stem=d / name,
            schedule=schedule_from_dict(r.schedule),
        )
    old = C.WEIGHTS_DIR
    C.WEIGHTS_DIR = d
    st.cache_resource.clear()  # pages cache the checkpoints they loaded (or failed to load)
    st.cache_data.clear()
    yield d
    C.WEIGHTS_DIR = old
    st.cache_resource.clear()
    st.cache_data.clear()

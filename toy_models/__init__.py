"""The science of the course: diffusion math, samplers, exact ground truth, data, networks,
training and checkpoints. Plain torch/numpy; never imports streamlit."""

"""Shared test set-up.

One torch thread: the tests are dominated by small tensors, where a second thread only adds
synchronisation, and a shared 2-core machine punishes oversubscribed OpenMP threads badly
(a loop of tiny ops measured 20x slower with 2 threads under load).
"""

import torch

torch.set_num_threads(1)

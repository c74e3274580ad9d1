"""Model tests run single-threaded: their tensors are small, and on a shared 2-core machine
OpenMP's spinning threads make small ops many times slower than one thread does."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

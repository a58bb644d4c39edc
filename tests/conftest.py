"""Shared test setup.

Real Keras 3 is the optional parity oracle: it runs on its torch backend in
this same process (it is a different package, so it never shadows kerasish).
Tests that need it take the `keras_ref` fixture, which skips with a reason
when Keras is not installed.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("KERAS_HOME", os.path.join(os.path.dirname(__file__), ".keras_home"))

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

# two threads in one process; one per worker under pytest-xdist (`-n 2`, as CI runs it on 2 cores)
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)


@pytest.fixture(scope="session")
def keras_ref():
    """The real Keras 3 package (torch backend), or a skip when absent."""
    keras = pytest.importorskip("keras", reason="parity tests need Keras 3 (pip install keras)")
    if keras.backend.backend() != "torch":
        pytest.skip(f"Keras runs on the {keras.backend.backend()} backend, parity needs torch")
    return keras


@pytest.fixture(autouse=True)
def _fresh_names():
    """Every test starts with fresh layer-name counters and the float32 policy."""
    import kerasish

    if hasattr(kerasish, "utils") and hasattr(kerasish.utils, "clear_session"):
        kerasish.utils.clear_session(free_memory=False)
    yield
    if hasattr(kerasish, "mixed_precision"):
        kerasish.mixed_precision.set_global_policy("float32")
    # a test's set_random_seed must not switch later tests to Keras-exact seeding
    from kerasish.random import seed_generator

    seed_generator._RANDOM_SEED[0] = None


@pytest.fixture
def rng():
    return np.random.default_rng(1234)

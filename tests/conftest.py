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


def _torchvision_ops_schemas():
    """The registry's torchvision wheels are CUDA builds: with the CPU torch that
    CI runs, torchvision's compiled `_C` library cannot load, and `import
    torchvision` then fails on its own fake-kernel registration ("operator
    torchvision::nms does not exist") -- and with it every package that imports
    torchvision: timm, torchmetrics, lightning. When (and only when) that
    library cannot load, declare the two operator schemas torchvision's import
    registers against, with kernels that raise; torchvision's Python (models,
    transforms, fx feature extraction, StochasticDepth, FPN) then imports and
    works, and its compiled box ops say they are unavailable."""
    import glob
    import importlib.util

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    libs = glob.glob(os.path.join(list(spec.submodule_search_locations)[0], "_C.*"))
    try:
        for lib in libs:
            torch.ops.load_library(lib)
        return None
    except OSError as e:
        reason = f"torchvision's compiled ops did not load against torch {torch.__version__}: {e}"
    lib = torch.library.Library("torchvision", "DEF")  # kept alive by the module global below

    def unavailable(*args, **kwargs):
        raise NotImplementedError(reason)

    for name in ("nms", "qnms"):
        lib.define(f"{name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.impl(name, unavailable, "CompositeExplicitAutograd")
    return lib


_TORCHVISION_OPS = _torchvision_ops_schemas()


@pytest.fixture(scope="session")
def keras_ref():
    """The real Keras 3 package (torch backend), or a skip when absent."""
    keras = pytest.importorskip("keras", reason="parity tests need Keras 3 (pip install keras)")
    if keras.backend.backend() != "torch":
        pytest.skip(f"Keras runs on the {keras.backend.backend()} backend, parity needs torch")
    return keras


@pytest.fixture(autouse=True, scope="module")
def _freeze_long_lived_objects():
    """Moves every object alive when a test module starts (imported torch, Keras, ONNX, earlier modules'
    globals) out of the cyclic garbage collector's sight (`gc.freeze`), after one collection. A full
    `gc.collect()` (which `keras.utils.clear_session()` runs, in kerasish and in real Keras) then scans
    only what the current module made: late in a worker it scanned ~750k objects, ~0.3-1.3 s per call,
    hundreds of calls (tests/models took 211 s with it, 121 s without, at load 11). Reference counting
    still frees frozen objects; only cycles among objects that were alive at a module's start and die
    later are never reclaimed, which tests of memory do not rely on (their objects are made inside
    the test)."""
    import gc

    gc.collect()
    gc.freeze()
    yield


def _global_state():
    """The process-wide settings a test could leave changed, as (name, value,
    restore) triples. Read after the module-scoped fixtures have run, so a
    module that changes a setting for all its tests (and restores it at its
    end) is not flagged."""
    import sys

    from kerasish.backend import config
    from kerasish.backend import dtypes
    from kerasish.distribution import distribution_lib
    from kerasish.utils import io_utils

    state = [(f"kerasish.backend.config.{k}", v, lambda v, k=k: setattr(config, k, v))
             for k, v in vars(config).items()
             if k.startswith("_") and not k.startswith("__") and isinstance(v, (str, int, float, bool, type(None)))]
    state += [
        ("kerasish floatx", dtypes._floatx, lambda v: setattr(dtypes, "_floatx", v)),
        ("kerasish interactive logging", dict(io_utils._settings), lambda v: io_utils._settings.update(v)),
        ("kerasish distribution", distribution_lib.distribution(), distribution_lib.set_distribution),
        ("torch default dtype", torch.get_default_dtype(), torch.set_default_dtype),
        ("torch default device", torch.get_default_device(), torch.set_default_device),
        ("torch grad mode", torch.is_grad_enabled(), torch.set_grad_enabled),
        ("torch anomaly detection", torch.is_anomaly_enabled(), torch.set_anomaly_enabled),
        ("torch deterministic algorithms", torch.are_deterministic_algorithms_enabled(),
         torch.use_deterministic_algorithms),
        ("torch threads", torch.get_num_threads(), torch.set_num_threads),
    ]
    if torch.distributed.is_available():  # a default process group left behind puts later fits "in a group"
        state.append(("torch.distributed default process group", torch.distributed.is_initialized(),
                      lambda v: v or torch.distributed.destroy_process_group()))
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "config"):  # the parity oracle, when a test has imported it
        state += [
            ("keras floatx", keras.config.floatx(), keras.config.set_floatx),
            ("keras epsilon", keras.config.epsilon(), keras.config.set_epsilon),
            ("keras image_data_format", keras.config.image_data_format(), keras.config.set_image_data_format),
            ("keras dtype policy", keras.config.dtype_policy().name, keras.config.set_dtype_policy),
        ]
    return state


def _same(a, b):
    return a is b or (type(a) is type(b) and not isinstance(a, (dict, list)) and a == b) or (
        isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys() and all(a[k] is b[k] or a[k] == b[k]
                                                                                    for k in a))


def _reseed():
    """Every test starts from the same random state, whatever ran before it in
    this process: tests that draw unseeded weights (kerasish's or Keras's, from
    torch, NumPy or Python's `random`) get the same ones in any order and in
    any pytest-xdist worker."""
    import random
    import sys

    random.seed(0)
    np.random.seed(0)
    # the CPU generator (torch.manual_seed, 0.3 ms, also seeds every accelerator backend)
    torch.default_generator.manual_seed(0)
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.manual_seed_all(0)
    if "keras" in sys.modules:
        try:
            from keras.src.backend.common import global_state
            from keras.src.random import seed_generator
            from keras.src.utils import rng_utils
        except ImportError:
            return
        # Keras's set_random_seed and its global SeedGenerator outlive the test that used them
        global_state.set_global_attribute(rng_utils.GLOBAL_RANDOM_SEED, None)
        global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)


_MODULE_GENERATORS = {}


def _module_generators(module):
    """The random generators a test module keeps in its globals (`RNG =
    np.random.default_rng(0)`, a `torch.Generator`, a `random.Random`), with
    their states when first seen: every test of the module then draws from
    those states, not from wherever the tests before it (in this worker, in
    this order) left them."""
    import random

    key = getattr(module, "__name__", None)
    if key is None:
        return []
    if key not in _MODULE_GENERATORS:
        found = []
        for name, value in vars(module).items():
            if isinstance(value, np.random.Generator):
                found.append((value.bit_generator, "state", value.bit_generator.state))
            elif isinstance(value, np.random.RandomState):
                found.append((value, "set_state", value.get_state()))
            elif isinstance(value, torch.Generator):
                found.append((value, "set_state", value.get_state()))
            elif isinstance(value, random.Random):
                found.append((value, "setstate", value.getstate()))
        _MODULE_GENERATORS[key] = found
    return _MODULE_GENERATORS[key]


def _rewind(module):
    for owner, how, state in _module_generators(module):
        if how == "state":
            owner.state = state
        else:
            getattr(owner, how)(state)


@pytest.fixture(autouse=True, scope="module")
def _reseed_module(request):
    """Module-scoped fixtures (set up before `_fresh_names`, autouse fixtures
    first within their scope) also start from the same random state, and
    the module's own generators are recorded before any test draws."""
    _reseed()
    _rewind(request.module)


@pytest.fixture(autouse=True, scope="class")
def _reseed_class():
    _reseed()


@pytest.fixture(autouse=True)
def _fresh_names(request):
    """Every test starts with fresh layer-name counters, the same random
    state, and ends with the process-wide settings it found (floatx, data
    format, dtype policies, the distribution, torch's default dtype, device,
    grad mode, threads, ...): a test that leaves one changed is restored and
    reported as an error at its teardown, naming the setting. kerasish's
    global dtype policy alone is restored without a report (tests set it
    and rely on this)."""
    import kerasish

    if hasattr(kerasish, "utils") and hasattr(kerasish.utils, "clear_session"):
        kerasish.utils.clear_session(free_memory=False)
    _reseed()
    _rewind(request.module)
    from kerasish import dtype_policies

    policy = dtype_policies._GLOBAL.policy  # (this thread's; None means floatx)
    before = _global_state()
    yield
    # tests may set kerasish's global dtype policy and leave it: it goes back quietly, as it always has
    dtype_policies._GLOBAL.policy = policy
    # a test's set_random_seed must not switch later tests to Keras-exact seeding
    from kerasish.random import seed_generator

    seed_generator._RANDOM_SEED[0] = None
    # the next module-scoped fixture set up (before the next test's rewind) sees the recorded states too
    _rewind(request.module)
    after = {name: value for name, value, _ in _global_state()}
    leaked = []
    for name, value, restore in before:
        if name in after and not _same(after[name], value):
            leaked.append(f"{name}: {value!r} before, {after[name]!r} after")
            restore(value)
    if leaked:
        pytest.fail("the test left process-wide settings changed (now restored): " + "; ".join(leaked),
                    pytrace=False)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)

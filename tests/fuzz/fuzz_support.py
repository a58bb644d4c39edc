"""The oracle and settings shared by the property-based (hypothesis) tests.

The only acceptable outcomes of a generated case are a correct result or a
*clear* error: an exception of a Keras type (`ValueError`, `TypeError`,
`IndexError`, `NotImplementedError`) whose innermost frame is kerasish's own
code (so it was raised, or re-raised with a message, by kerasish, not by
torch, h5py or zipfile deep inside), with a non-empty message. A case that
runs longer than `HANG_SECONDS` is a hang.

Campaign size: `KERASISH_FUZZ_EXAMPLES` (examples per test; small and
derandomized by default so CI is short and repeatable). `tools/fuzz.py` sets
it high, with random seeds, for long runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import traceback

from hypothesis import HealthCheck
from hypothesis import settings

import kerasish

KERASISH_DIR = os.path.dirname(os.path.abspath(kerasish.__file__)) + os.sep
CLEAR_ERRORS = (ValueError, TypeError, IndexError, NotImplementedError)
HANG_SECONDS = int(os.environ.get("KERASISH_FUZZ_HANG_SECONDS", "20"))

_LONG_RUN = "KERASISH_FUZZ_EXAMPLES" in os.environ
settings.register_profile(
    "kerasish-fuzz",
    max_examples=int(os.environ.get("KERASISH_FUZZ_EXAMPLES", "30")),
    deadline=None,
    derandomize=not _LONG_RUN,  # CI: the same cases every run; long runs explore
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
FUZZ = settings.get_profile("kerasish-fuzz")


def error_origin(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    return f"{frames[-1].filename}:{frames[-1].lineno}"


def is_clear_error(exc: BaseException) -> bool:
    frames = traceback.extract_tb(exc.__traceback__)
    return (
        isinstance(exc, CLEAR_ERRORS)
        and bool(frames)
        and os.path.abspath(frames[-1].filename).startswith(KERASISH_DIR)
        and bool(str(exc).strip())
    )


def assert_clear_error(exc: BaseException, context) -> None:
    """Fails (showing where the error came from) unless `exc` is clear."""
    if not is_clear_error(exc):
        raise AssertionError(
            f"unclear error for {context}: {type(exc).__name__} raised at {error_origin(exc)}: {str(exc)[:400]}"
        ) from exc


class Hang(Exception):
    pass


@contextlib.contextmanager
def no_hang(seconds: int = HANG_SECONDS):
    """Raises `Hang` when the block runs longer than `seconds` (main thread)."""

    def _alarm(signum, frame):
        raise Hang(f"ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def attempt(fn, context):
    """Runs `fn`; returns `(True, result)` or `(False, clear_error)`; a hang
    or an unclear error fails the test."""
    try:
        with no_hang():
            return True, fn()
    except Hang as e:
        raise AssertionError(f"hang in {context}: {e}") from None
    except Exception as e:  # noqa: BLE001 - sorting errors is the point
        assert_clear_error(e, context)
        return False, e

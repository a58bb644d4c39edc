"""The fuzz tests need hypothesis (in the `test` extra); without it they are
not collected (a plain `pytest` run stays green) and a note says why."""

import importlib.util
import warnings

collect_ignore_glob = []
if importlib.util.find_spec("hypothesis") is None:
    collect_ignore_glob = ["test_fuzz_*.py"]
    warnings.warn("tests/fuzz skipped: hypothesis is not installed (pip install kerasish[test])", stacklevel=1)

"""Long fuzzing runs of the property-based tests in tests/fuzz/.

    python tools/fuzz.py                      # 2000 examples per test
    python tools/fuzz.py --examples 20000 -k Embedding
    python tools/fuzz.py --files-only

CI runs the same tests with 30 derandomized examples each; this script
raises `KERASISH_FUZZ_EXAMPLES` (which also makes the runs random, so every
run explores new cases) and prints the falsifying examples hypothesis finds.
Exit status is pytest's: 0 when nothing was found.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=2000, help="examples per test (default 2000)")
    parser.add_argument("--hang-seconds", type=int, default=60, help="a single case longer than this is a hang")
    parser.add_argument("-k", default=None, help="pytest -k expression (e.g. a layer name)")
    parser.add_argument("--files-only", action="store_true", help="only the damaged-file tests")
    parser.add_argument("--layers-only", action="store_true", help="only the layer/config tests")
    args = parser.parse_args(argv)
    target = "tests/fuzz"
    if args.files_only:
        target = "tests/fuzz/test_fuzz_files.py"
    elif args.layers_only:
        target = "tests/fuzz/test_fuzz_layers.py"
    env = dict(os.environ, KERASISH_FUZZ_EXAMPLES=str(args.examples), KERASISH_FUZZ_HANG_SECONDS=str(args.hang_seconds))
    cmd = [sys.executable, "-m", "pytest", target, "-p", "no:cacheprovider", "-q", "--hypothesis-show-statistics"]
    if args.k:
        cmd += ["-k", args.k]
    return subprocess.call(cmd, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())

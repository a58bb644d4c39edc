"""Summary table of `tools/gpu_check.sh`: reads the saved outputs of the
CUDA tests and of bench_layers / bench_fit / bench_overhead and prints one
table, kerasish vs hand-written torch with the ratio of each row.

    python tools/gpu_summary.py OUT_DIR [--device cuda] [--seconds N]

Exits non-zero when a stage failed, ran out of time, or printed no rows.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import sys

_NUM = r"(\d+(?:\.\d+)?)"
# one pattern per tool, matching the row lines each prints (see their main())
PATTERNS = {
    # "Dense               forward      0.123ms    0.100ms   1.230"
    "bench_layers": (re.compile(rf"^(?P<case>\S.{{0,19}}?)\s+(?P<mode>forward|fwd\+bwd)\s+{_NUM}ms\s*{_NUM}ms\s+{_NUM}\s*$"),
                     "ms"),
    # "MLP 64-256-256-10, bs 128  keras Adam  128  0.1234  0.1100  1.12x" / call rows in us
    "bench_fit": (re.compile(rf"^(?P<case>\S.*?)\s+{_NUM}\s+{_NUM}\s+{_NUM}x\s*$"), ""),
    # "eager 4x16      12.3us     10.1us   1.218  <= 1.3 ok"
    "bench_overhead": (re.compile(rf"^(?P<case>\S.*?)\s+{_NUM}us\s*{_NUM}us\s+{_NUM}\s+<="), "us"),
}


def parse(tool: str, text: str) -> list[tuple[str, float, float, float, str]]:
    pattern, unit = PATTERNS[tool]
    rows = []
    section = ""
    for line in text.splitlines():
        if tool == "bench_fit" and line.startswith(("fit benchmark", "model call")):
            section = "s/epoch" if line.startswith("fit") else "us"
            continue
        m = pattern.match(line.rstrip())
        if not m:
            continue
        a, b, r = (float(v) for v in m.groups()[-3:])
        case = m.group("case").strip()
        if tool == "bench_layers":
            case = f"{case} {m.group('mode')}"
        case = re.sub(r"\s{2,}", " ", case)
        rows.append((case, a, b, r, unit or section))
    return rows


def tests_line(out: pathlib.Path) -> str:
    text = (out / "tests.txt").read_text() if (out / "tests.txt").exists() else ""
    summary = [ln for ln in text.splitlines() if re.search(r"\d+ (passed|failed|skipped|error)", ln)]
    rc = (out / "tests.rc").read_text().strip() if (out / "tests.rc").exists() else "tests rc=?"
    return f"{summary[-1].strip('= ') if summary else 'no pytest summary'} ({rc})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=pathlib.Path)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seconds", type=int, default=None)
    args = parser.parse_args(argv)
    ok = True
    print(f"gpu_check summary (device={args.device}"
          + (f", {args.seconds} s in all" if args.seconds is not None else "") + ")")
    print(f"CUDA tests: {tests_line(args.out)}")
    print(f"{'benchmark':<15}{'case':<58}{'kerasish':>11}{'torch':>11}{'unit':>9}{'ratio':>8}")
    for tool in PATTERNS:
        path, rc_path = args.out / f"{tool}.txt", args.out / f"{tool}.rc"
        rc = rc_path.read_text().strip() if rc_path.exists() else "missing"
        rows = parse(tool, path.read_text()) if path.exists() else []
        for case, a, b, r, unit in rows:
            print(f"{tool:<15}{case[:57]:<58}{a:>11.4g}{b:>11.4g}{unit:>9}{r:>7.3f}x")
        if rc != "0" or not rows:
            ok = False
            why = {"124": "ran out of time", "missing": "did not run"}.get(rc, f"exit status {rc}")
            print(f"{tool:<15}{'FAILED: ' + why + (', no rows' if not rows else ''):<58}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

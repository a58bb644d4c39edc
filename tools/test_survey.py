"""Classifies the test functions under tests/ by the reference they check
kerasish against (issue #7's "about 60% of the suite checks kerasish
against itself").

    python tools/test_survey.py [--list CATEGORY] [--by-file] [--root CHECKOUT]

Each `test_*` function (parametrized ones count once) is read with `ast`,
together with the module-level helpers, tables and fixtures it names
(transitively, also those imported from tests/parity.py and other helper
modules), and lands in the first category whose signal it contains:

  keras       real Keras 3 runs in the test: the `keras_ref` fixture, or a
              name bound by `importorskip("keras")` / `import keras` (also in
              a helper it calls: `run_layer_test`'s Keras-parity step, which
              has no oracle for the few layers Keras lacks or runs only on TF)
  recorded    files or values recorded from real (tf.)keras: fixture paths
              (tests/fixtures, legacy_h5, metadata.json, *_keras2*.json)
  torch       a torch.nn / torch.nn.functional / torch.optim reference
              (`nn.Linear`, `F.conv2d`, `torch.optim.Adam`...; `nn.Module`,
              `nn.Parameter` and containers do not count)
  maths       an independent maths reference in NumPy / SciPy / torch ops
              (np.exp, np.einsum, scipy.special..., torch.tanh,
              torch.einsum...; array construction, random draws and
              np.testing do not count)
  self-error  kerasish only, and it asserts an error or a warning
              (pytest.raises / pytest.warns): a behaviour contract
  self        kerasish only: round trips, kerasish vs kerasish, constants

The signals are syntactic, so the split is an estimate: a maths call used
only to build inputs counts as a reference, and a constant derived by hand
in a comment counts as `self`.
"""

from __future__ import annotations

import argparse
import ast
import collections
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"

CATEGORIES = ("keras", "recorded", "torch", "maths", "self-error", "self")
_NOT_TORCH_REFERENCE = {
    "Module", "Parameter", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict", "Sequential",
    "Buffer", "UninitializedParameter", "UninitializedBuffer", "parallel", "utils", "init", "functional",
    "parameter", "modules",
}
_MATHS = {
    "exp", "expm1", "log", "log1p", "log2", "log10", "sqrt", "rsqrt", "tanh", "sinh", "cosh", "sin", "cos", "tan",
    "arctan", "arctanh", "arcsin", "arccos", "atan", "atanh", "erf", "erfc", "erfinv", "sigmoid", "softmax",
    "log_softmax", "logsumexp", "softplus", "einsum", "matmul", "dot", "tensordot", "outer", "inner", "mean", "var",
    "std", "sum", "prod", "cumsum", "cumprod", "maximum", "minimum", "max", "min", "argmax", "argmin", "abs",
    "square", "power", "clip", "clamp", "where", "sign", "floor", "ceil", "round", "median", "percentile",
    "quantile", "histogram", "bincount", "linalg", "fft", "convolve", "correlate", "polyfit", "diff", "kron",
    "cov", "corrcoef", "norm", "trace", "mm", "bmm", "relu", "gelu", "silu", "mish", "hardtanh", "special",
    "distributions", "stats", "trapz", "trapezoid", "interp", "cross",
}
_RECORDED = re.compile(r"fixtures|legacy_h5|metadata\.json|keras2|tf_keras|recorded", re.I)


class _Module:
    """One parsed test or helper module: its top-level names and imports."""

    def __init__(self, path: pathlib.Path):
        self.path = path
        self.tree = ast.parse(path.read_text(), filename=str(path))
        self.defs: dict[str, ast.AST] = {}
        self.imports: dict[str, tuple[str, str]] = {}  # local name -> (module, name)
        self.aliases: dict[str, str] = {}  # local name -> dotted module
        self.real_keras: set[str] = set()
        for node in self.tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.defs[node.name] = node
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    for n in ast.walk(t):
                        if isinstance(n, ast.Name):
                            self.defs[n.id] = node
                            if _is_importorskip_keras(node.value):
                                self.real_keras.add(n.id)
            elif isinstance(node, ast.ImportFrom) and node.module:
                for a in node.names:
                    self.imports[a.asname or a.name] = (node.module, a.name)
            elif isinstance(node, ast.Import):
                for a in node.names:
                    local = a.asname or a.name.split(".")[0]
                    self.aliases[local] = a.name if a.asname else a.name.split(".")[0]
                    if a.name == "keras":
                        self.real_keras.add(local)
        # `import torch.nn.functional as F`, `from torch import nn`
        for local, (mod, name) in self.imports.items():
            self.aliases.setdefault(local, f"{mod}.{name}")


def _is_importorskip_keras(value) -> bool:
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Attribute)
        and value.func.attr == "importorskip"
        and value.args
        and isinstance(value.args[0], ast.Constant)
        and value.args[0].value in ("keras", "tf_keras")
    )


_HELPERS: dict[str, _Module] = {}


def _helper(module_name: str) -> _Module | None:
    """A helper module under tests/ (`parity`, `tests.parity`, ...)."""
    short = module_name.removeprefix("tests.").replace(".", "/")
    if short in _HELPERS:
        return _HELPERS[short]
    for candidate in (TESTS / f"{short}.py", *TESTS.rglob(f"{short.split('/')[-1]}.py")):
        if candidate.exists():
            _HELPERS[short] = _Module(candidate)
            return _HELPERS[short]
    return None


def _dotted(node) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _signals(module: _Module, node: ast.AST, seen: set) -> set[str]:
    """Signals in `node`, following module-level names it uses."""
    out: set[str] = set()
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        for arg in node.args.args + node.args.kwonlyargs:
            if arg.arg == "keras_ref":
                out.add("keras")
            elif arg.arg in module.defs and (module.path, arg.arg) not in seen:  # a fixture in this file
                seen.add((module.path, arg.arg))
                out |= _signals(module, module.defs[arg.arg], seen)
    for n in ast.walk(node):
        if isinstance(n, ast.Name):
            if n.id == "keras_ref" or n.id in module.real_keras:
                out.add("keras")
            key = (module.path, n.id)
            if n.id in module.defs and key not in seen:
                seen.add(key)
                out |= _signals(module, module.defs[n.id], seen)
            elif n.id in module.imports and key not in seen:
                seen.add(key)
                mod, name = module.imports[n.id]
                helper = _helper(mod) if not mod.startswith(("kerasish", "torch", "numpy", "keras")) else None
                if helper is not None and name in helper.defs:
                    out |= _signals(helper, helper.defs[name], seen)
        elif isinstance(n, ast.Attribute):
            dotted = _dotted(n)
            if dotted is None:
                continue
            head, _, rest = dotted.partition(".")
            full = module.aliases.get(head, head) + ("." + rest if rest else "")
            parts = full.split(".")
            if full.startswith("torch.nn.functional.") or full.startswith("torch.optim."):
                out.add("torch")
            elif full.startswith("torch.nn.") and len(parts) >= 3 and parts[2][:1].isupper() and (
                parts[2] not in _NOT_TORCH_REFERENCE
            ):
                out.add("torch")
        elif isinstance(n, ast.Import) and any(a.name == "keras" for a in n.names):
            out.add("keras")  # (a helper importing real Keras: tests/layer_harness.py's parity step)
        elif isinstance(n, ast.Constant) and isinstance(n.value, str) and _RECORDED.search(n.value):
            out.add("recorded")
        elif isinstance(n, ast.Call) and _dotted(n.func) in ("pytest.raises", "pytest.warns", "pytest.deprecated_call"):
            out.add("error")
    if _maths_reaches_an_assertion(module, node):
        out.add("maths")
    return out


def _is_maths(module: _Module, n, depth: int = 0) -> bool:
    if isinstance(n, ast.BinOp) and isinstance(n.op, ast.MatMult):
        return True
    if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and depth < 2:
        # a module-level reference helper (`_sparsemax_reference(x)`)
        helper = module.defs.get(n.func.id)
        if isinstance(helper, ast.FunctionDef):
            return any(_is_maths(module, m, depth + 1) for m in ast.walk(helper) if m is not helper)
        return False
    if not isinstance(n, ast.Attribute):
        return False
    dotted = _dotted(n)
    if dotted is None:
        return False
    head, _, rest = dotted.partition(".")
    parts = (module.aliases.get(head, head) + ("." + rest if rest else "")).split(".")
    return parts[0] == "scipy" or (
        parts[0] in ("numpy", "torch", "math") and len(parts) >= 2 and parts[1] in _MATHS
    )


def _is_assertion(n) -> bool:
    if isinstance(n, ast.Assert):
        return True
    if isinstance(n, ast.Call):
        name = (_dotted(n.func) or "").rsplit(".", 1)[-1]
        return "assert" in name or name in ("allclose", "isclose", "array_equal")
    return False


def _maths_reaches_an_assertion(module: _Module, node: ast.AST) -> bool:
    """A maths call (or a name assigned from one) inside an assertion: an
    expected value computed independently. A maths call in a module-level
    table (reference functions per case) counts too."""
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        return any(_is_maths(module, n) for n in ast.walk(node))
    tainted: set[str] = set()
    for _ in range(3):  # names assigned from maths, and from those
        for n in ast.walk(node):
            if isinstance(n, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and n.value is not None:
                if any(_is_maths(module, m) or (isinstance(m, ast.Name) and m.id in tainted) for m in ast.walk(n.value)):
                    targets = n.targets if isinstance(n, ast.Assign) else [n.target]
                    tainted.update(t.id for tg in targets for t in ast.walk(tg) if isinstance(t, ast.Name))
    for n in ast.walk(node):
        if _is_assertion(n):
            for m in ast.walk(n):
                if _is_maths(module, m) or (isinstance(m, ast.Name) and m.id in tainted):
                    return True
    return False


def classify(signals: set[str]) -> str:
    for cat in ("keras", "recorded", "torch", "maths"):
        if cat in signals:
            return cat
    return "self-error" if "error" in signals else "self"


def survey():
    rows = []
    for path in sorted(TESTS.rglob("test_*.py")):
        module = _Module(path)
        tests = []
        for node in module.tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
                tests.append((node.name, node, node.decorator_list))
            elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
                for sub in node.body:
                    if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)) and sub.name.startswith("test"):
                        tests.append((f"{node.name}.{sub.name}", sub, sub.decorator_list))
        for name, node, decorators in tests:
            seen: set = set()
            signals = _signals(module, node, seen)
            for dec in decorators:  # parametrize tables
                signals |= _signals(module, dec, seen)
            rows.append((str(path.relative_to(ROOT)), name, classify(signals)))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--list", choices=CATEGORIES, help="list the tests of one category")
    parser.add_argument("--by-file", action="store_true", help="per-file counts of self + self-error")
    parser.add_argument("--root", type=pathlib.Path, help="another checkout (e.g. `git worktree` of an old commit)")
    args = parser.parse_args(argv)
    if args.root is not None:
        global ROOT, TESTS
        ROOT = args.root.resolve()
        TESTS = ROOT / "tests"
    rows = survey()
    counts = collections.Counter(cat for _, _, cat in rows)
    total = len(rows)
    print(f"{total} test functions under tests/ (parametrized functions count once)")
    for cat in CATEGORIES:
        print(f"  {cat:<11}{counts[cat]:>5}  {100 * counts[cat] / total:5.1f}%")
    external = sum(counts[c] for c in ("keras", "recorded", "torch", "maths"))
    self_only = counts["self"] + counts["self-error"]
    print(f"  external reference {external} ({100 * external / total:.1f}%); "
          f"kerasish only {self_only} ({100 * self_only / total:.1f}%), "
          f"of which error/warning contracts {counts['self-error']}")
    if args.by_file:
        per = collections.Counter(f for f, _, c in rows if c in ("self", "self-error"))
        for f, n in per.most_common():
            print(f"{n:5}  {f}")
    if args.list:
        for f, name, cat in rows:
            if cat == args.list:
                print(f"{f}::{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""dynloop.classify on a paper-sized block, beside what one would do by hand with numpy, in one run.

The hand-made reference iterates the same block with the numpy oracle (tests/oracle.py) for as
many loops as classify did, takes the loop Jacobian at the last state by central finite
differences (2n loop evaluations) and its eigenvalues: the minimum needed to state "converged,
with these multipliers". classify does that and more (Newton check, stage points, degeneracy,
exponents, the regime decision).

Run:  python benchmarks/bench_classify.py
"""

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import dynloop  # noqa: E402
from oracle import fd_jacobian, oracle_stages  # noqa: E402

FIELDS = ("width", "tokens", "layers", "heads", "mixer", "activation", "norm", "norm_kind", "norm_eps",
          "injection", "residual_scale", "injection_scale", "causal")

CASES = {
    "sandwich + concat (Huginn-like)": dict(norm="sandwich", injection="concat"),
    "peri_outer, no injection (Ouro-like)": dict(norm="peri_outer", injection="none"),
    "pre + concat (retrofitted)": dict(norm="pre", injection="concat"),
}


def by_hand(spec, loops):
    fields = dict({name: getattr(spec, name) for name in FIELDS}, hidden=spec.hidden_size)
    arrays = spec.materialize()
    x = spec.start_state()
    for _ in range(loops):
        x = oracle_stages(fields, arrays, x)[-1]
    jacobian = fd_jacobian(lambda z: oracle_stages(fields, arrays, z)[-1], x)
    return np.linalg.eigvals(jacobian)


def main():
    print("paper-sized block: k = 12, d = 64, T = 16, transformer, 4 heads (state of 1024 numbers)\n")
    print(f"{'scheme':<40} {'regime':<14} {'classify s':>10} {'numpy by hand s':>16} {'ratio':>7}")
    for label, scheme in CASES.items():
        spec = dynloop.BlockSpec(width=64, tokens=16, layers=12, heads=4, mixer="transformer",
                                 residual_scale=0.5, seed=0, **scheme)
        dynloop.classify(spec)  # compile or load the kernels
        start = time.perf_counter()
        result = dynloop.classify(spec)
        ours = time.perf_counter() - start
        start = time.perf_counter()
        by_hand(spec, result.evidence["loops"])
        theirs = time.perf_counter() - start
        print(f"{label:<40} {result.regime.value:<14} {ours:10.2f} {theirs:16.2f} {theirs / ours:6.1f}x")


if __name__ == "__main__":
    main()

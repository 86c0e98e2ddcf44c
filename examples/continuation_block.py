"""Where a transformer block's cyclic fixed point loses stability, and how.

Three looped blocks of the norm × injection schemes (k = 4, d = 32, T = 8, 4 heads, exact GELU,
RMSNorm, seed 0): Huginn's sandwich with concat injection and Ouro's peri-norm + outer norm without
injection, followed in the residual scale (weight gains 1 and 0.5), and pre-norm with concat
injection, followed in the weight gain at residual scale 0.5 (in the residual scale, at weight gain
1, it stays stable up to 4). From the cyclic fixed point that
classify finds at 0.5, dynloop.continuation follows the fixed point (a state of n = 256 numbers)
a little past its first loss of stability and locates every fold, flip and Neimark–Sacker point
on the way. The first is checked with classify started at the branch's point, nudged by 1e-6,
just below and just above it: the fixed point attracts below and not above.

Run:  python examples/continuation_block.py [OUTPUT.png]
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import dynloop

# label: (norm, injection, weight gain, parameter, start, stop); the residual scale is 0.5 where the
# weight gain is continued
BLOCKS = {
    "sandwich + concat": ("sandwich", "concat", 1.0, "residual_scale", 0.5, 1.1),
    "pre + concat": ("pre", "concat", 0.5, "weight_gain", 0.5, 1.15),
    "peri_outer + none": ("peri_outer", "none", 0.5, "residual_scale", 0.5, 1.25),
}


def block(norm, injection, gain, **fields):
    values = dict(residual_scale=0.5, weight_gain=gain) | fields
    return dynloop.BlockSpec(width=32, tokens=8, layers=4, heads=4, mixer="transformer", hidden=128,
                             norm=norm, injection=injection, seed=0, **values)


def check(norm, injection, gain, parameter, branch, first, side):
    """classify from the branch's point nudged by 1e-6, on ``side`` of the first bifurcation ``first``.

    Below: the last branch point before it at least 1 % of the parameter away; above: the first
    one after it at least 0.2 % away (before the branch can turn back at a fold). Returns the
    parameter there, whether the branch is stable there, and what classify reaches.
    """
    k = first.index
    if side == "below":
        candidates = [i for i in range(k, -1, -1) if branch.parameter[i] <= first.parameter * (1 - 0.01)]
    else:
        candidates = [i for i in range(k + 1, len(branch)) if abs(branch.parameter[i] - first.parameter)
                      >= 0.002 * abs(first.parameter)]
    index = candidates[0]
    nudge = 1e-6 * np.random.default_rng(0).standard_normal(branch.states[index].shape)
    spec = block(norm, injection, gain, **{parameter: float(branch.parameter[index])})
    result = dynloop.classify(spec, x0=branch.states[index] + nudge, lyapunov=side == "above")
    return float(branch.parameter[index]), bool(branch.stable[index]), result


def main(path="examples/output/continuation_block.png"):
    fig, axes = plt.subplots(1, len(BLOCKS), figsize=(5.4 * len(BLOCKS), 4.6), constrained_layout=True,
                             squeeze=False)
    for ax, (label, (norm, injection, gain, parameter, start, stop)) in zip(axes[0], BLOCKS.items()):
        spec = block(norm, injection, gain, **{parameter: start})
        branch = dynloop.continuation(spec, parameter, start=start, stop=stop)
        print(f"{label}:")
        print(branch.summary())
        first = branch.bifurcations[0] if branch.bifurcations else None
        if first is not None:
            for side in ("below", "above"):
                at, stable, result = check(norm, injection, gain, parameter, branch, first, side)
                reached = result.regime.value + (f", period {result.period}" if result.period else "")
                print(f"  {side} the {first.kind}, {parameter} = {at:.4f} (branch "
                      f"{'stable' if stable else 'unstable'}): classify from the branch's point nudged by "
                      f"1e-6 reaches {reached}")
        branch.plot(ax=ax)
        what = f"first: {first.describe()}" if first is not None else "no bifurcation"
        ax.set_title(f"{label}\n{what}", fontsize=9)
    fig.suptitle("The cyclic fixed point of three looped transformer blocks, continued until it loses "
                 "stability (k = 4, d = 32, T = 8)", fontsize=10)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"figure written to {path}")


if __name__ == "__main__":
    main(*sys.argv[1:])

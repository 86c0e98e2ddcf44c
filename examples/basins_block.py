"""Basins of attraction of looped transformer blocks on a plane through the start state.

Does every start state reach the same cyclic fixed point, or does the block have several
attractors, so that what a looped model computes depends on its (random) start? For blocks of the
norm × injection schemes (k = 4, d = 32, T = 8, 4 heads, exact GELU, RMSNorm), a coarse 12 × 12 plane
of starts (offsets -3 … 3 along two random directions through the start state, each as long as the
state) counts the attractors of each block. The first block found with one attractor and the first
with several are then drawn on a finer 40 × 40 plane, side by side. If no block on the list has
several attractors, the script says so.

Run:  python examples/basins_block.py [OUTPUT.png]
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import dynloop

# (norm, injection, weight_gain, residual_scale): with injection the input pins the state; without
# it nothing does, and the normalised schemes are where several attractors can coexist
CANDIDATES = [
    ("sandwich", "concat", 0.5, 0.5),
    ("pre", "concat", 0.5, 0.5),
    ("peri_outer", "none", 1.0, 1.0),
    ("sandwich", "none", 1.0, 1.0),
    ("peri_outer", "none", 2.0, 1.0),
    ("sandwich", "none", 2.0, 1.0),
    ("post", "none", 1.0, 1.0),
    ("post", "none", 2.0, 1.0),
]


def block(norm, injection, gain, scale):
    return dynloop.BlockSpec(width=32, tokens=8, layers=4, heads=4, mixer="transformer", hidden=128,
                             norm=norm, injection=injection, weight_gain=gain, residual_scale=scale,
                             state_init="normal", seed=0)


def plane(spec, n):
    offsets = np.linspace(-3.0, 3.0, n)
    return dynloop.state_grid(spec, {"direction 1": offsets, "direction 2": offsets}, seed=1)


def main(path="examples/output/basins_block.png"):
    single = several = None
    for norm, injection, gain, scale in CANDIDATES:
        spec = block(norm, injection, gain, scale)
        coarse = dynloop.basins(spec, plane(spec, 12), progress=False)
        shares = ", ".join(f"{'A' + str(k) if k >= 0 else {-1: 'divergent', -2: 'undetermined'}[k]} "
                           f"{100 * v:.0f} %" for k, v in coarse.fractions.items())
        print(f"{norm:>10} + {injection:<6} gain {gain:<4} scale {scale:<4}: {len(coarse.attractors)} "
              f"attractor(s): {shares}")
        if len(coarse.attractors) == 1 and coarse.fractions.get(0, 0) == 1.0 and single is None:
            single = spec
        if len(coarse.attractors) > 1 and several is None:
            several = spec
    chosen = [spec for spec in (single, several) if spec is not None]
    if several is None:
        print("no block on the list has more than one attractor on the coarse plane")
    fig, axes = plt.subplots(1, len(chosen), figsize=(7.5 * len(chosen), 6.2), constrained_layout=True,
                             squeeze=False)
    for ax, spec in zip(axes[0], chosen):
        result = dynloop.basins(spec, plane(spec, 40), progress=False)
        print(result.summary())
        result.plot(ax=ax)
        ax.set_title(f"{spec.norm} + {spec.injection}, weight gain {spec.weight_gain:g}, residual scale "
                     f"{spec.residual_scale:g}\n{len(result.attractors)} attractor(s); basin entropy "
                     f"{result.basin_entropy:.3f}", fontsize=10)
        legend = ax.get_legend()  # under the panel rather than beside it
        legend.set_loc("upper center")
        legend.set_bbox_to_anchor((0.5, -0.12))
    fig.suptitle("Which attractor each start state reaches, on a plane through the start state "
                 "(k = 4, d = 32, T = 8; offsets in units of the state's norm)", fontsize=11)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"figure written to {path}")


if __name__ == "__main__":
    main(*sys.argv[1:])

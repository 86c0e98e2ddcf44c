"""Per-layer distances across loops of a looped transformer block.

The measurement of docs/background.md, Metrics on real checkpoints.

A Huginn-like block (sandwich norm, concat injection, random start) of 4 layers is looped
128 times. For every layer the last state stands in for that layer's fixed point X*_l; the
figure shows the distance |X_{l,t} - X*_l| and the successive difference |X_{l,t} - X_{l,t-1}|
against the loop t. Straight lines on the log scale mean geometric convergence of every layer to
its own point: a cyclic fixed point.

Run:  python examples/per_layer_distances.py [OUTPUT.png]
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import dynloop


def main(path="examples/output/per_layer_distances.png"):
    spec = dynloop.BlockSpec(width=32, tokens=8, layers=4, heads=4, mixer="transformer",
                             norm="sandwich", injection="concat", state_init="normal",
                             init_scale=0.62, residual_scale=0.5, seed=0)
    trajectory = dynloop.simulate(spec, 128)
    print(trajectory.summary())
    states = trajectory.stage_states                       # (loops, stages + 1, T, d)
    layer_stages = [j for j, name in enumerate(trajectory.stage_names, start=1) if name.startswith("layer")]
    fixed = states[-1]                                     # last loop stands in for X*_l
    loops = trajectory.recorded_loops
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(layer_stages)))
    for colour, j in zip(colours, layer_stages):
        name = trajectory.stage_names[j - 1]
        distance = np.linalg.norm((states[:, j] - fixed[j]).reshape(len(loops), -1), axis=1)
        axes[0].semilogy(loops[:-1], distance[:-1], color=colour, label=name)
        axes[1].semilogy(loops[1:], trajectory.stage_steps[1:, j], color=colour, label=name)
    axes[0].set(xlabel="loop t", ylabel=r"$\|X_{\ell,t} - X^*_\ell\|$",
                title="distance to the per-layer fixed point")
    axes[1].set(xlabel="loop t", ylabel=r"$\|X_{\ell,t} - X_{\ell,t-1}\|$",
                title="successive difference per layer")
    axes[0].legend()
    fig.suptitle(spec.name, fontsize="medium")
    spread = [np.linalg.norm(fixed[a] - fixed[b]) for a in layer_stages for b in layer_stages if a < b]
    print(f"smallest distance between two per-layer points: {min(spread):.3g} "
          f"(> 0: a cyclic fixed point, the layers do not coincide)")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"figure written to {path}")


if __name__ == "__main__":
    main(*sys.argv[1:])

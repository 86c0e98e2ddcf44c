"""dynloop.analyze of a paper-sized recording, figures and report included, beside the run it analyses.

The recording: 128 loops of a k = 12, d = 64, T = 16, 4-head transformer block (pre-norm, concat
injection) with its attention. Timed, cold (the first call in the process, numba cache filled) and
warm (best of ``--repeat``): the simulation that produces the recording, ``dynloop.analyze`` on it
(every metric, including the doubled-horizon check, which simulates 128 more loops), and
``LoopAnalysis.report`` (six figures and the Markdown page). The target: analysis and report
within a minute on the development machine.

Run:  python benchmarks/bench_analyze.py [--loops 128] [--repeat 3]
"""

import argparse
import tempfile
import time

import matplotlib

matplotlib.use("Agg")

import dynloop  # noqa: E402


def timed(function):
    start = time.perf_counter()
    value = function()
    return time.perf_counter() - start, value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loops", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    spec = dynloop.BlockSpec(
        width=64, tokens=16, layers=12, heads=4, mixer="transformer", norm="pre", injection="concat", seed=0
    )
    rows = []
    for attempt in range(args.repeat + 1):
        simulate_s, trajectory = timed(lambda: dynloop.simulate(spec, args.loops, record_attention=True))
        analyze_s, result = timed(lambda: dynloop.analyze(trajectory))
        with tempfile.TemporaryDirectory() as outdir:
            report_s, _ = timed(lambda: result.report(outdir))
        rows.append((simulate_s, analyze_s, report_s))
        label = "cold" if attempt == 0 else f"warm {attempt}"
        print(
            f"{label:>7}: simulate {simulate_s:6.2f} s   analyze {analyze_s:6.2f} s   "
            f"report {report_s:6.2f} s   analyze + report {analyze_s + report_s:6.2f} s"
        )
    best = [min(column) for column in zip(*rows[1:])] if len(rows) > 1 else rows[0]
    print(
        f"\n{args.loops} loops of k = 12, d = 64, T = 16, 4 heads "
        f"({result.recording.stage_states.nbytes / 1e6:.0f} MB of states, "
        f"{result.recording.attention.nbytes / 1e6:.0f} MB of attention)"
    )
    print(
        f"best warm: simulate {best[0]:.2f} s, analyze {best[1]:.2f} s ({best[1] / best[0]:.1f}x the run), "
        f"report {best[2]:.2f} s; analyze + report {best[1] + best[2]:.2f} s (target: under 60 s)"
    )
    print(f"cold: analyze + report {rows[0][1] + rows[0][2]:.2f} s")
    print("\n" + result.summary())


if __name__ == "__main__":
    main()

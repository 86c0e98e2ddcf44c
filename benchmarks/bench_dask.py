"""A transformer-block sweep in process against the same sweep on a Dask LocalCluster, in one run.

Workload: the sandwich + concat block of bench_transformer.py (d = 64, T = 8, k = 4, 4 heads,
hidden 256, causal) over a 32 × 32 grid of residual scale by injection strength, 100 loops,
early exit off, in chunks of ``--chunk`` points (128: 8 chunks). In process, the compiled kernel
runs each call's point groups on numba's threads (2 here). On the cluster, each chunk is one task
(``executor=client.get_executor()``): a worker process receives the BlockSpec (its fields and
seed, not its weights: the worker materialises them), the chunk's point values and the settings,
runs the same kernel, and returns the chunk's regime codes (one byte per point) and diagnostics
(float64 per point and diagnostic). Workers run one numba thread each (``NUMBA_NUM_THREADS=1``),
so two workers use the same two cores as the in-process run; each has loaded the cached kernels
before the timing (a warm-up sweep).

The labels and diagnostics of both runs are checked equal, bit for bit.

Run:  python benchmarks/bench_dask.py [--workers 2] [--chunk 128] [--repeat 3]
"""

import argparse
import pickle
import sys
from pathlib import Path

import numpy as np

import dynloop

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ is not a package
from _common import race  # noqa: E402
from bench_transformer import block_spec, grid_axes  # noqa: E402

POINTS, LOOPS = 1024, 100


class Measured:
    """An executor that passes every task on and records the pickled size of what each task ships."""

    def __init__(self, executor):
        self.executor, self.sent, self.returned = executor, [], []

    def submit(self, function, *args):
        self.sent.append(len(pickle.dumps(args)))
        future = self.executor.submit(function, *args)
        future.add_done_callback(lambda done: self.returned.append(len(pickle.dumps(done.result()))))
        return future


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        sys.exit("needs dask.distributed: pip install 'dynloop[distributed]'")
    spec = block_spec("sandwich", 64, 8, 4)
    axes = grid_axes(spec, POINTS)

    def run(executor=None):
        return dynloop.sweep(spec, axes, loops=LOOPS, early_exit=False, chunk=args.chunk, executor=executor,
                             progress=False)

    local = run()  # compiles or loads the kernels here
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      env={"NUMBA_NUM_THREADS": "1"}) as cluster, Client(cluster) as client:
        executor = client.get_executor()
        measured = Measured(executor)
        remote = run(measured)  # the workers load the kernels
        same = np.array_equal(local.regimes, remote.regimes) and all(
            np.array_equal(local.diagnostics[name], remote.diagnostics[name], equal_nan=True)
            for name in local.diagnostics)
        times = race({"in process": run, "cluster": lambda: run(executor)}, args.repeat)
    chunks = -(-POINTS // args.chunk)
    print(f"sandwich+concat, d=64, T=8, k=4: {POINTS} points, {LOOPS} loops, {chunks} chunks of {args.chunk}")
    print(f"  in process (numba threads: 2): {times['in process']:.3f} s")
    print(f"  LocalCluster, {args.workers} worker processes x 1 thread: {times['cluster']:.3f} s "
          f"({times['in process'] / times['cluster']:.2f}x the in-process speed), "
          f"{chunks / args.workers:.1f} chunks per worker")
    print(f"  per chunk, pickled: {max(measured.sent) / 1e3:.1f} kB sent (of which the spec "
          f"{len(pickle.dumps(spec))} B), {max(measured.returned) / 1e3:.1f} kB returned")
    print(f"  labels and diagnostics equal bit for bit: {'yes' if same else 'NO'}")


if __name__ == "__main__":
    main()

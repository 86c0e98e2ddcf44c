"""Analyse a looped block's recording: attention stabilisation, stages of inference, tokens.

A Huginn-like block (sandwich norm, concat injection, random start) of 4 layers is looped 128
times with its attention recorded, as a real looped model would be dumped from PyTorch
(docs/recordings.md). ``dynloop.analyze`` computes every metric of docs/background.md (Metrics on
real checkpoints); the report (six figures and a Markdown page) goes to the output folder.

Run:  python examples/analyze_recording.py [OUTDIR]
"""

import sys

import matplotlib

matplotlib.use("Agg")

import dynloop  # noqa: E402


def main(outdir="examples/output/analysis"):
    spec = dynloop.BlockSpec.from_toml("examples/configs/huginn_like.toml")
    recording = dynloop.simulate(spec, 128, record_attention=True).recording()
    result = dynloop.analyze(recording)
    print(result.summary())
    page = result.report(outdir)
    print(f"report written to {page}")


if __name__ == "__main__":
    main(*sys.argv[1:])

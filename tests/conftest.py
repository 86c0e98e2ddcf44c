"""Test configuration: make tests/oracle.py importable, keep figures off-screen, and close every figure a
test leaves open (so that figures of one test never count towards matplotlib's open-figure warning in
another)."""

import os
import sys

import matplotlib
import pytest

matplotlib.use("Agg")
sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")

"""Test configuration: make tests/oracle.py importable and keep figures off-screen."""

import os
import sys

import matplotlib

matplotlib.use("Agg")
sys.path.insert(0, os.path.dirname(__file__))

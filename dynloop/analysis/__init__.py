"""Metrics of loop recordings, from toy blocks or from real looped models: :func:`analyze`.

The modules: :mod:`~dynloop.analysis.metrics` (each metric as a numpy function),
:mod:`~dynloop.analysis.stages` (stage profiles and their communities),
:mod:`~dynloop.analysis.tokens` (the token classifier) and :mod:`~dynloop.analysis.analyze`
(:func:`analyze` and :class:`LoopAnalysis`). Recordings themselves are
:class:`dynloop.LoopRecording` (``dynloop.dynamics.recording``).
"""

from .analyze import LoopAnalysis, analyze
from .stages import StageDetection

__all__ = ["analyze", "LoopAnalysis", "StageDetection"]

"""The README's tour runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_tour_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has a python tour"
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    result = namespace["result"]
    assert result.regime.value == "cyclic" and result.distinct_stage_points == 4
    assert (tmp_path / "traj.png").exists() and (tmp_path / "regime.png").exists()
    analysis = namespace["analysis"]
    assert analysis.converged and analysis.degeneracy["distinct"] == 4 and analysis.stages.follows == "layer"
    assert (tmp_path / "out" / "analysis" / "report.md").exists()
    basin_map = namespace["basin_map"]
    assert basin_map.labels.shape == (16, 16) and (tmp_path / "basins.png").exists()
    assert len(namespace["cells"].attractors) >= 1
    assert abs(namespace["doubled"].bifurcations[0].parameter - (1 + 6 ** 0.5)) < 1e-8

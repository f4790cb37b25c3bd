"""Without Chromium, PNGs are drawn from the plotly figures with matplotlib: the same log
axes, threshold lines, colours and colour-bar titles."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from protlab.plot.cluster import family_count_figure
from protlab.plot.evaluate import confusion_figure
from protlab.plot.residues import importance_figure


def test_matplotlib_fallback_draws_log_axes_thresholds_colours_and_colour_bar_titles(tmp_path, monkeypatch):
    import matplotlib.colors
    import matplotlib.pyplot as plt

    from protlab.plot import export

    drawn = {}
    close = plt.close

    def keep(fig):  # inspect each figure before it is closed
        drawn[len(drawn)] = fig

    monkeypatch.setattr(plt, "close", keep)
    export._matplotlib_png(family_count_figure([300, 120, 9, 1], 10, 2, 2), tmp_path / "f.png", 900, 600)
    exs = [SimpleNamespace(id="p0", importance=np.linspace(0, 1, 30))]
    export._matplotlib_png(importance_figure(exs, sites={"p0": [3, 7]}), tmp_path / "i.png", 900, 600)
    confusion = pd.DataFrame([[5, 1], [0, 6]], index=["F0", "F1"], columns=[0, 1])
    export._matplotlib_png(confusion_figure(confusion), tmp_path / "c.png", 900, 600)
    family, importance, heatmap = (drawn[i] for i in range(3))
    ax = family.axes[0]
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert any(list(line.get_ydata()) == [10, 10] for line in ax.get_lines())  # the threshold line
    ax = importance.axes[0]
    line_colour = ax.get_lines()[0].get_color()
    star_colour = ax.collections[0].get_facecolor()[0]
    assert np.allclose(matplotlib.colors.to_rgba(line_colour), star_colour)
    assert "share" in heatmap.axes[1].get_ylabel()  # the colour bar's title
    assert [t.get_text() for t in heatmap.axes[0].get_yticklabels()] == ["F0", "F1"]
    for fig in drawn.values():
        close(fig)
    assert all((tmp_path / name).stat().st_size > 1000 for name in ("f.png", "i.png", "c.png"))

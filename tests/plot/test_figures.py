"""Figure details a reader relies on: clean log axes, matching colours, titled colour bars."""
from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd

from protlab.plot.cluster import family_count_figure, log_ticks
from protlab.plot.evaluate import confusion_figure
from protlab.plot.residues import importance_figure


def test_family_count_axes_have_chosen_ticks_and_room_around_the_threshold():
    for sizes, min_size in (([40] * 8, 5), ([300, 120, 80, 9, 4, 2, 1, 1], 10), (list(range(400, 0, -1)), 3)):
        fig = family_count_figure(sizes, min_size, 3, 3)
        x, y = fig.layout.xaxis, fig.layout.yaxis
        assert x.type == y.type == "log"
        for axis in (x, y):  # explicit tick values: no auto minor-digit labels, no stray edge label
            assert axis.tickmode == "array" and list(axis.ticktext) == [f"{v:g}" for v in axis.tickvals]
            low, high = (10 ** r for r in axis.range)
            assert all(low <= v <= high for v in axis.tickvals)
        assert 1 - 1e-9 >= 10 ** x.range[0] and 10 ** x.range[1] > len(sizes)  # every rank inside
        low, high = (10 ** r for r in y.range)
        assert low < min(min_size, min(sizes)) / 1.4 and high > max(sizes) * 1.4  # line and points off the edges
        line = fig.layout.shapes[0]
        assert line.y0 == line.y1 == min_size and math.log10(low) < math.log10(min_size) < math.log10(high)
        label = next(a for a in fig.layout.annotations if f"{min_size} proteins" in a.text)
        assert label.yref == "y" and label.y == math.log10(min_size)  # a log axis places annotations by exponent
        assert fig.layout.showlegend


def test_log_ticks_are_one_two_five():
    assert log_ticks(3, 60) == [5.0, 10.0, 20.0, 50.0]
    assert log_ticks(1, 1000)[:4] == [1.0, 2.0, 5.0, 10.0]
    assert log_ticks(3.1, 19.2) == [5.0, 7.0, 10.0, 15.0]  # about one decade: finer steps


def test_site_stars_share_their_protein_line_colour():
    exs = [SimpleNamespace(id=f"p{i}", importance=np.linspace(0, 1, 30)) for i in range(12)]
    fig = importance_figure(exs, sites={ex.id: [3, 7] for ex in exs})
    lines = {t.name: t.line.color for t in fig.data if t.mode == "lines"}
    stars = {t.name.removesuffix(" site"): t.marker.color for t in fig.data if t.mode == "markers"}
    assert len(lines) == 12 and stars == lines
    assert len(set(lines.values())) == 12  # distinct proteins, distinct colours
    assert all(t.legendgroup == t.name.removesuffix(" site") for t in fig.data)


def test_confusion_colour_bar_is_titled():
    confusion = pd.DataFrame([[5, 1], [0, 6]], index=["F0", "F1"], columns=[0, 1])
    bar = confusion_figure(confusion).data[0].colorbar
    assert "share" in bar.title.text and bar.tickformat == ".0%"


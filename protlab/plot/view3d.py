"""3D inspection of critical residues: py3Dmol views, standalone HTML, ipywidgets.

* :func:`build_view` draws one :class:`~protlab.residues.explain.Explanation` with py3Dmol:
  cartoon coloured by residue importance (a site model's site probability; grey → yellow →
  red), the best clusters that survive at a chosen iteration as sticks + spheres in distinct
  colours, and labels on the top-k residues (:func:`residue_table` lists exactly those).
* :func:`view_html` / :func:`export_view` make a standalone HTML page with its colour key and
  3Dmol.js inlined (``python -m protlab.plot.assets`` installs it; without it the page falls
  back to the CDN, which needs internet, and a warning says so); :func:`view_stem` names a
  protein's page among the run's figures.
* :func:`inspect` is the notebook widget: protein and chain selectors ("all chains" first, then
  every chain), iteration (1..T, as the colour key counts) and top-k sliders and the residue
  table, ranked 1..k, that follows the selection; :func:`static_views` gives the same views as
  plain HTML, which an executed notebook keeps. Both put a ``caveat`` (e.g. a toy-trained
  model explaining a real protein) in every heading.

Structures read from a file are drawn with all their atoms (biotite, model 1, every explained
chain: all protein chains of a complex); generated ones (toy) have Cα + side-chain centroid
pseudo-atoms only and are drawn as a Cα trace (:mod:`protlab.plot.structure_atoms` gives the
atoms and places the labels). The importance along the sequence is a plotly figure of
:mod:`protlab.plot.residues`.
"""
from __future__ import annotations

import html as html_lib
import logging
import re
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from protlab.core.atomic import atomic_write_text
from protlab.core.errors import InputError
from protlab.core.extras import require
from protlab.plot.assets import find_3dmol_js
from protlab.plot.structure_atoms import label_positions, structure_pdb

log = logging.getLogger(__name__)
CLUSTER_COLOURS = ["#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#e377c2", "#8c564b", "#bcbd22",
                   "#7f7f7f", "#393b79"]
IMPORTANCE_COLOURS = ["#d9d9d9", "#fee391", "#fec44f", "#fe9929", "#ec7014", "#cc4c02", "#a50f15", "#67000d"]
ALL_CHAINS = "all chains"  # the chain selector's first option (a value no chain id can take: it has a space)
TABLE_CAPTION = ("iteration: the last clustering iteration (1..T, as the slider counts) at which a surviving cluster "
                 "holds the residue; cluster: that cluster's rank among the survivors there (1 = best); "
                 "–: in no surviving cluster")
_warned_cdn = False


def _serials(atoms: dict, residues) -> list[int]:
    return (np.flatnonzero(np.isin(atoms["residue"], np.asarray(list(residues), dtype=int))) + 1).tolist()


# ------------------------------------------------------------------------------ views
def surviving_clusters(explanation, iteration: int, *, n_clusters: int = 5) -> pd.DataFrame:
    """The best ``n_clusters`` clusters kept at ``iteration`` (by score)."""
    cl = explanation.clusters
    return cl[cl["iteration"] == iteration].sort_values("score", ascending=False).head(n_clusters)


TABLE_COLUMNS = ("rank", "chain", "residue_number", "residue", "score", "cluster", "iteration")


def residue_table(explanation, *, top_k: int = 10, chain: str | None = None) -> pd.DataFrame:
    """Exactly the top-k residues the view labels, ranked 1..k by importance (of ``chain``
    alone when given), with the columns the inspector shows and the 0-based ``index``.

    ``iteration`` and ``cluster`` count from 1 here, as the iteration slider and the colour
    key do, and are missing (NA) for a residue in no surviving cluster (see ``TABLE_CAPTION``)."""
    table = explanation.table()
    if chain is not None:
        table = table[table["chain"] == chain]
    table = table.head(top_k).reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    for column in ("cluster", "iteration"):
        table[column] = pd.array(np.asarray(table[column]) + 1, dtype="Int64")
        table.loc[table[column] <= 0, column] = pd.NA
    return table[[*TABLE_COLUMNS, "index"]]


def styled_table(explanation, *, top_k: int = 10, chain: str | None = None):
    """:func:`residue_table` for display: no index column, scores to 3 decimals, "–" for no
    cluster, and ``TABLE_CAPTION`` under it."""
    return (residue_table(explanation, top_k=top_k, chain=chain).drop(columns="index").style.hide(axis="index")
            .format({"score": "{:.3f}"}).format(na_rep="–", subset=["cluster", "iteration"])
            .set_caption(TABLE_CAPTION)
            .set_table_styles([{"selector": "caption", "props": "caption-side: bottom; text-align: left; "
                                                                 "font-size: 11px; max-width: 30em"},
                               {"selector": "", "props": "font-size: 12px"}]))

def _new_view(structure, width: int, height: int, *, base_colour: str):
    """``(view, atoms, cartoon)``: a py3Dmol view of the structure, its cartoon in ``base_colour``
    (a Cα trace's cartoon for structures without full atoms)."""
    import py3Dmol

    pdb, atoms = structure_pdb(structure)
    view = py3Dmol.view(width=width, height=height)
    view.addModel(pdb, "pdb")
    cartoon = {} if atoms["full"] else {"style": "trace", "thickness": 0.6}
    view.setStyle({}, {"cartoon": {**cartoon, "color": base_colour}})
    return view, atoms, cartoon


def _add_labels(view, structure, residues) -> None:
    """Labels (name, number, and chain when there are several) on ``residues``, placed apart."""
    labels = structure.residue_labels()
    chains = structure.residue_chains()
    several = len(set(chains)) > 1
    for i, xyz in zip(residues, label_positions(structure, residues)):
        view.addLabel(f"{structure.res_names[i]}{labels[i]}" + (f":{chains[i]}" if several else ""), {
            "position": {"x": round(float(xyz[0]), 3), "y": round(float(xyz[1]), 3), "z": round(float(xyz[2]), 3)},
            "fontSize": 10, "fontColor": "black", "backgroundColor": "white", "backgroundOpacity": 0.7,
            "inFront": True})


def _ramp_html() -> str:
    """The importance colour ramp, as the colour keys show it."""
    return (f"<span style='display:inline-block;width:120px;height:10px;vertical-align:middle;"
            f"background:linear-gradient(to right, {', '.join(IMPORTANCE_COLOURS)})'></span>")


def _standalone_page(view, name: str, title: str, legend: str) -> str:
    """The view as a whole HTML page under ``title`` and ``legend`` (3Dmol.js inlined when
    installed). py3Dmol names the viewer after the clock; a name from ``name`` keeps exports
    reproducible."""
    page = view.write_html().replace(view.uniqueid, "protlab_" + re.sub(r"\W", "_", str(name)))
    title = html_lib.escape(title)
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{title}</title></head>\n"
            f"<body style='margin:0;font-family:sans-serif'>\n<h3 style='margin:6px'>{title}</h3>\n{legend}\n"
            f"{_inline_3dmol(page)}\n</body></html>\n")


def build_view(explanation, *, iteration: int | None = None, top_k: int = 10, n_clusters: int = 5,
               max_drawn: int = 8, width: int = 720, height: int = 540, chain: str | None = None):
    """A py3Dmol view of one explanation (see module docstring): every chain drawn.

    ``iteration``: whose surviving clusters are drawn as sticks (default: the last);
    ``n_clusters`` of them, best first, each with at most ``max_drawn`` of its most
    important members (late clusters cover large regions). ``chain``: zoom on that chain and
    label its top-k residues (default: the whole structure's)."""
    structure = explanation.structure
    T = int(explanation.clusters["iteration"].max()) + 1 if len(explanation.clusters) else 1
    iteration = T - 1 if iteration is None else int(np.clip(iteration, 0, T - 1))
    view, atoms, cartoon = _new_view(structure, width, height, base_colour=IMPORTANCE_COLOURS[0])
    bins = np.minimum((explanation.importance * len(IMPORTANCE_COLOURS)).astype(int), len(IMPORTANCE_COLOURS) - 1)
    for b in range(1, len(IMPORTANCE_COLOURS)):
        serials = _serials(atoms, np.flatnonzero(bins == b))
        if serials:
            view.setStyle({"serial": serials}, {"cartoon": {**cartoon, "color": IMPORTANCE_COLOURS[b]}})
    for colour, (_, row) in zip(CLUSTER_COLOURS, surviving_clusters(explanation, iteration,
                                                                     n_clusters=n_clusters).iterrows()):
        members = np.asarray(row["members"], dtype=int)
        members = members[np.argsort(-explanation.importance[members], kind="stable")[:max_drawn]]
        serials = _serials(atoms, members)
        if serials:
            view.addStyle({"serial": serials}, {"stick": {"color": colour, "radius": 0.25},
                                                "sphere": {"color": colour, "scale": 0.3}})
    _add_labels(view, structure, residue_table(explanation, top_k=top_k, chain=chain)["index"].tolist())
    view.zoomTo({"chain": chain} if chain is not None else {})
    return view


def _inline_3dmol(page: str) -> str:
    global _warned_cdn
    js = find_3dmol_js()
    if js is None:
        if not _warned_cdn:
            log.warning("3Dmol.js is not installed (python -m protlab.plot.assets): exported views load it from "
                        "the CDN and need internet")
            _warned_cdn = True
        return page
    script = js.read_text(encoding="utf-8").replace("</script", "<\\/script")
    return f"<script>{script}</script>\n<script>var $3Dmolpromise = Promise.resolve();</script>\n{page}"


def residue_values_html(structure, values, *, title: str, low: str, high: str, width: int = 720,
                        height: int = 540, top_k: int = 10) -> str:
    """A standalone HTML page of ``structure`` with its cartoon coloured by ``values`` (one per
    residue, NaN drawn grey, higher = darker) and the ``top_k`` highest residues labelled;
    ``low`` / ``high`` name the ramp's ends in the colour key."""
    values = np.asarray(values, dtype=float)
    view, atoms, cartoon = _new_view(structure, width, height, base_colour="#f0f0f0")
    finite = np.isfinite(values)
    if finite.any():
        lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
        scaled = np.where(finite, (values - lo) / (hi - lo) if hi > lo else 0.5, np.nan)
        bins = np.minimum((np.nan_to_num(scaled) * len(IMPORTANCE_COLOURS)).astype(int), len(IMPORTANCE_COLOURS) - 1)
        for b, colour in enumerate(IMPORTANCE_COLOURS):
            serials = _serials(atoms, np.flatnonzero(finite & (bins == b)))
            if serials:
                view.setStyle({"serial": serials}, {"cartoon": {**cartoon, "color": colour}})
        top = np.argsort(-np.where(finite, values, -np.inf), kind="stable")[:min(top_k, int(finite.sum()))]
        _add_labels(view, structure, top.tolist())
    view.zoomTo()
    legend = (f"<div class='protlab-legend' style='margin:4px 6px;font-size:12px'>{html_lib.escape(low)} "
              f"{_ramp_html()} {html_lib.escape(high)}; grey: no value; labels: the top-{top_k} residues</div>")
    return _standalone_page(view, structure.id, title, legend)


def legend_html(explanation, *, iteration: int | None = None, n_clusters: int = 5, top_k: int = 10,
                chain: str | None = None) -> str:
    """The colour key of :func:`build_view`: the importance ramp, the drawn clusters, the labels."""
    T = int(explanation.clusters["iteration"].max()) + 1 if len(explanation.clusters) else 1
    iteration = T - 1 if iteration is None else int(np.clip(iteration, 0, T - 1))
    drawn = len(surviving_clusters(explanation, iteration, n_clusters=n_clusters))
    swatches = " ".join(f"<span style='display:inline-block;width:11px;height:11px;background:{c};"
                        f"margin:0 2px 0 8px'></span>{i + 1}" for i, c in enumerate(CLUSTER_COLOURS[:drawn]))
    return (f"<div class='protlab-legend' style='margin:4px 6px;font-size:12px;line-height:1.6'>"
            f"<b>cartoon</b>: {'site probability' if explanation.classes == ['site'] else 'residue importance'}, low "
            f"{_ramp_html()} high"
            f" &nbsp; <b>sticks</b>: the {drawn} best clusters surviving at iteration {iteration + 1} of {T}"
            f"{swatches or ' (none)'} &nbsp; <b>labels</b>: the top-{top_k} residues"
            f"{f' of chain {html_lib.escape(chain)}' if chain is not None else ''}</div>")


def view_title(explanation, caveat: str | None = None) -> str:
    """The heading of a protein's view: its id, and the caveat when there is one."""
    return f"critical residues of {explanation.id}" + (f" ({caveat})" if caveat else "")


def view_html(explanation, *, title: str | None = None, **options) -> str:
    """A standalone HTML page of :func:`build_view` with its colour key (3Dmol.js inlined
    when installed); ``title`` (default :func:`view_title`) heads it."""
    view = build_view(explanation, **options)
    legend = legend_html(explanation, **{k: v for k, v in options.items()
                                         if k in ("iteration", "n_clusters", "top_k", "chain")})
    return _standalone_page(view, explanation.id, title or view_title(explanation), legend)


def export_view(explanation, path: str | Path, **options) -> Path:
    """Write :func:`view_html` atomically to ``path``."""
    return atomic_write_text(path, view_html(explanation, **options))


def view_stem(protein_id: str, *, prefix: str = "residues_3d_") -> str:
    """The file stem of a protein's view: ``<prefix><id>`` with unsafe characters as ``_``."""
    return prefix + "".join(c if c.isalnum() or c in "-_." else "_" for c in str(protein_id))


def export_views(explanations: Sequence, directory: str | Path, *, prefix: str = "residues_3d_",
                 **options) -> list[Path]:
    """One standalone HTML view per protein, ``directory/<prefix><id>.html``."""
    directory = Path(directory)
    return [export_view(ex, directory / f"{view_stem(ex.id, prefix=prefix)}.html", **options) for ex in explanations]


# ------------------------------------------------------------------------------ widgets
def page_iframe(page: str, width: int, height: int) -> str:
    """An iframe showing the standalone HTML ``page`` (a notebook or widget shows it as it is)."""
    # room for the page's heading and two lines of colour key above the viewer
    return (f'<iframe srcdoc="{html_lib.escape(page, quote=True)}" width="{width + 20}" '
            f'height="{height + 110}" style="border:none;flex:none"></iframe>')


def _caveat_html(caveat: str | None) -> str:
    return (f"<div style='color:#a50f15;font-weight:bold;margin:4px 0'>{html_lib.escape(caveat)}</div>"
            if caveat else "")


def chain_options(explanation) -> list[str]:
    """The chain selector's options: "all chains" then every chain, or the one chain alone."""
    chains = list(dict.fromkeys(explanation.structure.residue_chains()))
    return [ALL_CHAINS, *chains] if len(chains) > 1 else chains


def _chain(value: str | None) -> str | None:
    return None if value in (None, ALL_CHAINS) else value


def inspect(explanations: Sequence, *, top_k: int = 10, n_clusters: int = 5, width: int = 640, height: int = 480,
            caveat: str | None = None):
    """Interactive inspector: protein and chain selectors, iteration slider (1..T), top-k
    slider, residue table. ``caveat`` (e.g. the stage result's ``results["caveat"]``) is shown
    above the controls and in the view's heading.

    The 3D view is a standalone page in an iframe, so it works offline in JupyterLab too. The
    table wraps below the view where the notebook is narrower than both.
    """
    widgets = require("ipywidgets", "notebooks", "inspect() (the notebook widget)")

    explanations = list(explanations)
    if not explanations:
        raise InputError("inspect() needs at least one explanation")
    by_id = {ex.id: ex for ex in explanations}
    T = max(int(ex.clusters["iteration"].max()) + 1 if len(ex.clusters) else 1 for ex in explanations)
    heading = widgets.HTML(_caveat_html(caveat))
    protein = widgets.Dropdown(options=list(by_id), description="protein")
    chain = widgets.Dropdown(description="chain")
    iteration = widgets.IntSlider(value=T, min=1, max=T, description="iteration")
    k = widgets.IntSlider(value=top_k, min=1, max=50, description="top-k")
    view_out = widgets.HTML()
    table_out = widgets.Output(layout={"max_height": f"{height + 110}px", "overflow": "auto", "flex": "1 1 320px"})

    def chains(*_):
        options = chain_options(by_id[protein.value])
        chain.options = [(option, option) for option in options]
        chain.value = options[0]

    def refresh(*_):
        ex = by_id[protein.value]
        page = view_html(ex, iteration=iteration.value - 1, top_k=k.value, n_clusters=n_clusters,
                         width=width, height=height, chain=_chain(chain.value), title=view_title(ex, caveat))
        view_out.value = page_iframe(page, width, height)
        table_out.clear_output(wait=True)
        with table_out:
            from IPython.display import display

            display(styled_table(ex, top_k=k.value, chain=_chain(chain.value)))

    chains()
    protein.observe(chains, names="value")
    for w in (protein, chain, iteration, k):
        w.observe(refresh, names="value")
    refresh()
    box = widgets.VBox([heading, widgets.HBox([protein, chain]), widgets.HBox([iteration, k]),
                        widgets.HBox([view_out, table_out], layout={"flex_flow": "row wrap"})])
    box.refresh = refresh  # for tests / programmatic use
    box.controls = {"protein": protein, "chain": chain, "iteration": iteration, "top_k": k, "view": view_out,
                    "table": table_out, "heading": heading}
    return box


def static_views(explanations: Sequence, *, top_k: int = 10, width: int = 640, height: int = 480,
                 caveat: str | None = None):
    """The views as plain HTML output (one iframe each, with its legend and its top-k table):
    what an executed notebook still shows when reopened, where widgets have no state."""
    HTML = require("IPython.display", "notebooks", "static_views()").HTML

    parts = [_caveat_html(caveat)]
    for ex in explanations:
        page = view_html(ex, top_k=top_k, width=width, height=height, title=view_title(ex, caveat))
        table = styled_table(ex, top_k=top_k).to_html()
        parts.append(f"<div style='display:flex;flex-wrap:wrap;gap:12px;align-items:flex-start'>"
                     f"{page_iframe(page, width, height)}<div style='max-height:{height + 110}px;overflow:auto'>"
                     f"{table}</div></div>")
    return HTML("\n".join(parts))

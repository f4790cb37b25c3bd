"""3D views: standalone HTML with 3Dmol.js inlined, drawn by headless Chromium; the widget."""
from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest
import torch

from protlab.curate.structures import read_structure
from protlab.plot import view3d
from protlab.plot.assets import find_3dmol_js
from protlab.plot.export import find_chromium
from protlab.plot.residues import importance_figure
from protlab.plot.structure_atoms import structure_pdb
from protlab.residues.explain import explain_structures
from protlab.residues.inputs import toy_inputs
from protlab.residues.network import ResidueNet, ResidueNetConfig

CHROMIUM = find_chromium()


@pytest.fixture(scope="module")
def explanations():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = ResidueNet(ResidueNetConfig(n_classes=2, hidden=16, class_names=["a", "b"])).eval()
    inputs = toy_inputs(n_families=1, members_per_family=2, length_range=(60, 70))
    return explain_structures(model, inputs.structures), inputs


def test_view_html_is_standalone(explanations, tmp_path):
    ex = explanations[0][0]
    path = view3d.export_view(ex, tmp_path / "v.html", top_k=4)
    page = path.read_text()
    assert calls(page, "addModel") == 1 and calls(page, "addLabel") == 4 and '"stick"' in page
    assert view3d.export_view(ex, tmp_path / "again.html", top_k=4).read_text() == page  # reproducible
    if find_3dmol_js() is not None:
        assert "$3Dmolpromise = Promise.resolve()" in page and len(page) > 300_000  # library inlined
    pdb, atoms = structure_pdb(ex.structure)
    assert pdb.count("\nATOM") + 1 == len(atoms["name"]) and not atoms["full"]  # toy: Cα + centroid trace


def test_view_stem_names_each_protein_safely(explanations, tmp_path):
    assert view3d.view_stem("1abc.A/x y") == "residues_3d_1abc.A_x_y"
    exs, _ = explanations
    paths = view3d.export_views(exs, tmp_path)
    assert [p.name for p in paths] == [view3d.view_stem(ex.id) + ".html" for ex in exs]


def test_full_atom_structure_keeps_chain_atoms_only(shared_data):
    s = read_structure(shared_data / "structures" / "pdb" / "1k6p.pdb", chain="A")
    _, atoms = structure_pdb(s)
    assert atoms["full"] and "HOH" not in set(atoms["res_name"].tolist())
    assert set(atoms["residue"].tolist()) == set(range(len(s)))


def calls(page: str, method: str) -> int:
    """How often the page's viewer calls ``method`` (the inlined library also names it)."""
    return len(re.findall(rf"viewer_protlab_\w+\.{method}\(", page))


def _coloured_pixels(png) -> int:
    from PIL import Image

    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    body = img[60:]  # below the page title
    return int(((body.max(-1) - body.min(-1)) > 40).sum())  # saturated = cartoon/sticks, not text or white


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
@pytest.mark.skipif(find_3dmol_js() is None, reason="3Dmol.js not installed (python -m protlab.plot.assets)")
def test_headless_chromium_draws_the_3d_canvas(explanations, tmp_path):
    ex = explanations[0][0]
    page = view3d.export_view(ex, tmp_path / "view.html", width=500, height=400)
    no_model = re.sub(r"viewer_protlab_\w+\.(addModel|addLabel|setStyle|addStyle)\(.*\n", "", page.read_text())
    legend_only = tmp_path / "legend_only.html"  # the page without its model: the colour key alone
    legend_only.write_text(no_model)
    blank = tmp_path / "blank.html"  # and without the key: background only
    blank.write_text(re.sub(r"<div class='protlab-legend'.*?</div>", "", no_model, flags=re.S))
    text = page.read_text()
    assert "residue importance" in text and "best clusters surviving at iteration" in text
    shots = {}
    for name, html in (("view", page), ("legend_only", legend_only), ("blank", blank)):
        png = tmp_path / f"{name}.png"
        cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / ('profile_' + name)}", "--use-angle=swiftshader",
               "--enable-unsafe-swiftshader", "--virtual-time-budget=5000", f"--screenshot={png}",
               "--window-size=600,520", html.as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert png.is_file(), proc.stderr[-2000:]
        shots[name] = _coloured_pixels(png)
    assert shots["view"] > 2000, shots       # the cartoon and cluster sticks were drawn
    assert shots["blank"] < 100, shots       # same page without a model or key: background only
    assert shots["legend_only"] >= 100 + shots["blank"], shots  # the colour key itself is drawn


def test_inspect_widget_follows_selection(explanations):
    exs, _ = explanations
    box = view3d.inspect(exs, top_k=5)
    c = box.controls
    assert (c["iteration"].min, c["iteration"].max, c["iteration"].value) == (1, 4, 4) and "iframe" in c["view"].value
    first = c["view"].value
    c["protein"].value = exs[1].id
    assert c["view"].value != first
    c["iteration"].value = 1
    c["top_k"].value = 3
    table = view3d.residue_table(exs[1], top_k=3)
    assert table["rank"].tolist() == [1, 2, 3] and table["index"].tolist() == exs[1].top(3).tolist()
    assert calls(c["view"].value, "addLabel") == 3  # exactly the residues the table lists
    assert [o[0] for o in c["chain"].options] == ["A"]  # one chain: nothing to choose


@pytest.fixture(scope="module")
def complex_explanation(shared_data):
    """A four-chain complex explained by an untrained site model."""
    from protlab.curate.structures import read_complex

    torch.manual_seed(0)
    s = read_complex(shared_data / "structures" / "ligand_sites" / "structures" / "1G9V_RQ3_protein.pdb")
    model = ResidueNet(ResidueNetConfig(n_classes=1, task="residue", hidden=16)).eval()
    return explain_structures(model, [s])[0]


def test_every_chain_is_drawn_and_can_be_selected(complex_explanation):
    ex = complex_explanation
    pdb, atoms = structure_pdb(ex.structure)
    assert {line[21] for line in pdb.splitlines() if line.startswith("ATOM")} == {"A", "B", "C", "D"}
    assert set(atoms["residue"].tolist()) == set(range(len(ex.structure)))
    box = view3d.inspect([ex], top_k=4)
    c = box.controls
    assert [o[0] for o in c["chain"].options] == [view3d.ALL_CHAINS, "A", "B", "C", "D"]
    c["chain"].value = "C"
    assert '{"chain": "C"}' in c["view"].value.replace("&quot;", '"') and "of chain C" in c["view"].value
    table = view3d.residue_table(ex, top_k=4, chain="C")
    assert set(table["chain"]) == {"C"} and table["rank"].tolist() == [1, 2, 3, 4]
    page = view3d.view_html(ex, top_k=4, chain="C")
    labels = re.findall(r'addLabel\("(\w+?)(-?\d+\w?):(\w)"', page)
    assert len(labels) == 4 and {lab[2] for lab in labels} == {"C"}


def test_static_views_survive_without_widget_state(explanations):
    exs, _ = explanations
    html = view3d.static_views(exs, top_k=3).data
    assert html.count("<iframe") == len(exs) and html.count("<table") == len(exs)
    assert "residue importance" in html  # the legend travels inside each view


def test_importance_figure_marks_sites(explanations):
    exs, inputs = explanations
    fig = importance_figure(exs, sites=inputs.sites)
    assert len(fig.data) == 2 * len(exs)
    assert list(fig.data[1].x) == [i + 1 for i in inputs.sites[exs[0].id]]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
@pytest.mark.skipif(find_3dmol_js() is None, reason="3Dmol.js not installed (python -m protlab.plot.assets)")
def test_headless_chromium_reads_every_chain_and_the_legend(complex_explanation, tmp_path):
    """The browser's own 3Dmol model of an exported four-chain view holds all four chains."""
    ex = complex_explanation
    page = view3d.export_view(ex, tmp_path / "complex.html", width=500, height=400).read_text()
    viewer = re.search(r"(viewer_protlab_\w+)\.addModel\(", page).group(1)
    probe = (f"<script>setTimeout(function() {{ var atoms = {viewer}.getModel().selectedAtoms({{}});"
             "var chains = {}; atoms.forEach(function(a) { chains[a.chain] = 1; });"
             "document.title = 'chains:' + Object.keys(chains).sort().join(',') + ';atoms:' + atoms.length"
             "+ ';legend:' + document.querySelectorAll('.protlab-legend').length; }, 500);</script></body>")
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", probe))
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           f"--user-data-dir={tmp_path / 'profile'}", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
           "--virtual-time-budget=5000", "--dump-dom", probed.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    title = re.search(r"<title>(.*?)</title>", proc.stdout)
    assert title, proc.stderr[-2000:]
    _, atoms = structure_pdb(ex.structure)
    assert title.group(1) == f"chains:A,B,C,D;atoms:{len(atoms['name'])};legend:1"

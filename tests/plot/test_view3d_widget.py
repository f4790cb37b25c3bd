"""The 3D inspector on a two-chain file (1k6p, HIV-1 protease dimer) read without a sites table."""
from __future__ import annotations

import html
import re

import numpy as np
import pytest
import torch

from protlab.plot import view3d
from protlab.plot.structure_atoms import label_positions, structure_pdb
from protlab.residues.explain import explain_structures
from protlab.residues.inputs import read_structure_inputs
from protlab.residues.network import ResidueNet, ResidueNetConfig
from protlab.residues.stage import TOY_CAVEAT


@pytest.fixture(scope="module")
def dimer(shared_data):
    """1k6p explained by an untrained classifier, as a toy-trained model would explain it."""
    inputs = read_structure_inputs(str(shared_data / "structures" / "pdb" / "1k6p.pdb"))
    torch.manual_seed(0)
    model = ResidueNet(ResidueNetConfig(n_classes=2, hidden=16, class_names=["a", "b"])).eval()
    return explain_structures(model, inputs.structures)[0]


def page_of(widget_html: str) -> str:
    return html.unescape(widget_html)


def test_a_file_without_chain_is_read_with_every_protein_chain(dimer):
    assert list(dict.fromkeys(dimer.structure.residue_chains())) == ["A", "B"]
    pdb, _ = structure_pdb(dimer.structure)
    assert {line[21] for line in pdb.splitlines() if line.startswith("ATOM")} == {"A", "B"}


def test_chain_selector_shows_all_chains_then_each_chain(dimer):
    box = view3d.inspect([dimer], top_k=5)
    c = box.controls
    assert [label for label, _ in c["chain"].options] == [view3d.ALL_CHAINS, "A", "B"]
    assert c["chain"].value == view3d.ALL_CHAINS and c["chain"].value is not None  # shown, not blank
    page = page_of(c["view"].value)
    assert "zoomTo({})" in page and "of chain" not in page  # the whole dimer, both chains' top-k
    c["chain"].value = "B"
    page = page_of(c["view"].value)
    assert 'zoomTo({"chain": "B"})' in page and "top-5 residues of chain B" in page
    c["chain"].value = view3d.ALL_CHAINS
    assert "zoomTo({})" in page_of(c["view"].value)


def test_toy_caveat_heads_the_widget_and_the_static_views(dimer):
    box = view3d.inspect([dimer], top_k=5, caveat=TOY_CAVEAT)
    c = box.controls
    assert TOY_CAVEAT in c["heading"].value
    heading = re.search(r"<h3[^>]*>(.*?)</h3>", page_of(c["view"].value)).group(1)
    assert heading == f"critical residues of 1k6p ({TOY_CAVEAT})"
    static = view3d.static_views([dimer], top_k=5, caveat=TOY_CAVEAT).data
    assert static.count(TOY_CAVEAT) >= 2  # above the views and in the view's own heading
    assert TOY_CAVEAT not in view3d.inspect([dimer], top_k=5).controls["heading"].value


def test_iteration_heading_counts_as_the_slider(dimer):
    box = view3d.inspect([dimer], top_k=5)
    slider = box.controls["iteration"]
    T = int(dimer.clusters["iteration"].max()) + 1
    assert (slider.min, slider.max, slider.value) == (1, T, T)
    for value in range(1, T + 1):
        slider.value = value
        assert f"surviving at iteration {value} of {T}" in page_of(box.controls["view"].value)


def test_residue_table_counts_from_one_and_explains_no_cluster(dimer):
    table = view3d.residue_table(dimer, top_k=len(dimer.importance))
    for column in ("cluster", "iteration"):
        values = table[column].dropna()
        assert (values >= 1).all()
    raw = dimer.table().set_index("index")
    none = raw.loc[table["index"], "iteration"].to_numpy() < 0
    assert none.any() and table["iteration"].isna().to_numpy().tolist() == none.tolist()
    assert (table["iteration"].dropna().to_numpy() == raw.loc[table["index"][~none], "iteration"].to_numpy() + 1).all()
    rendered = view3d.styled_table(dimer, top_k=len(dimer.importance)).to_html()
    assert view3d.TABLE_CAPTION in rendered and "–" in rendered and ">-1<" not in rendered


def test_table_wraps_below_the_view_instead_of_being_cut(dimer):
    box = view3d.inspect([dimer], top_k=10)
    row = box.children[-1]
    assert row.layout.flex_flow == "row wrap"
    table = box.controls["table"]
    assert table.layout.overflow == "auto" and table.layout.max_width in (None, "", "none")
    static = view3d.static_views([dimer], top_k=10).data
    assert "flex-wrap:wrap" in static


def test_labels_are_spread_apart(dimer):
    top = view3d.residue_table(dimer, top_k=10)["index"].tolist()
    pos = label_positions(dimer.structure, top)
    gaps = np.linalg.norm(pos[:, None] - pos[None], axis=-1)[np.triu_indices(len(top), 1)]
    assert gaps.min() >= 7.5  # min_gap 8 Å, to within the relaxation's tolerance
    page = view3d.view_html(dimer, top_k=10)
    drawn = [tuple(map(float, m)) for m in re.findall(
        r'addLabel\("[^"]*",\{"position":\{"x":([-\d.]+),"y":([-\d.]+),"z":([-\d.]+)\}', page.replace(" ", ""))]
    assert np.allclose(drawn, pos, atol=1e-3)

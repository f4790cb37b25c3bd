"""The explorer page: its data block, its size at 10^5 proteins, the page in headless Chromium,
and the page of a run directory made by the stages themselves."""
from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import time
import urllib.parse

import numpy as np
import pandas as pd
import pytest

import protlab
from protlab.core.mmseqs import mmseqs_available
from protlab.core.rundir import RunDir
from protlab.demo import QUICK_PARAMS
from protlab.plot import explorer, explorer_data
from protlab.plot.assets import _plotly_js, find_3dmol_js
from protlab.plot.export import find_chromium

CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
CRAFTED = "</script><b>x"
AMINO = np.frombuffer(b"ACDEFGHIKLMNPQRSTVWY", np.uint8)


def synthetic(n: int, n_attributed: int, *, n_map: int | None = None, seed: int = 0):
    """Random proteins (100-200 residues), clusters, labels, map and long-form attribution of
    the first ``n_attributed``; protein 1 has the id ``CRAFTED``."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(100, 201, n)
    letters = AMINO[rng.integers(0, 20, int(lengths.sum()))].tobytes().decode()
    starts = np.concatenate([[0], np.cumsum(lengths)])
    ids = np.array([f"P{i:06d}" for i in range(n)], dtype=object)
    ids[1] = CRAFTED
    proteins = pd.DataFrame({"id": ids, "sequence": [letters[starts[i]:starts[i + 1]] for i in range(n)],
                             "label": [f"fam{i % 7}" for i in range(n)]})
    clusters = pd.DataFrame({"id": ids, "cluster": rng.integers(0, max(2, n // 40), n),
                             "confidence": rng.random(n).astype(np.float32), "method": "families"})
    rows = np.arange(n_attributed)
    length = lengths[rows]
    protein = np.repeat(rows, length)
    position = np.arange(int(length.sum())) - np.repeat(np.cumsum(length) - length, length) + 1
    residue = np.frombuffer(letters.encode(), "S1")[np.repeat(starts[rows], length) + position - 1].astype(str)
    attribution = pd.DataFrame({"id": ids[protein], "position": position, "residue": residue,
                                "attribution": rng.normal(size=len(protein)).astype(np.float32)})
    m = n if n_map is None else n_map
    on_map = np.sort(rng.choice(n, size=m, replace=False))
    coordinates = pd.DataFrame({"id": ids[on_map], "x": rng.normal(size=m), "y": rng.normal(size=m)})
    return proteins, clusters, attribution, coordinates


@pytest.fixture(scope="module")
def small():
    proteins, clusters, attribution, coordinates = synthetic(300, 40, n_map=200)
    page = explorer.explorer_html(proteins, clusters=clusters, attribution=attribution, coordinates=coordinates)
    return page, proteins, clusters, attribution, coordinates


# ------------------------------------------------------------------------------ the page's data
def test_page_is_self_contained_and_holds_every_protein(small):
    page, proteins, clusters, attribution, coordinates = small
    assert not re.search(r"<(script|link|img|iframe|source)\b[^>]*\b(src|href)\s*=", page, re.I)
    own = re.sub(r'(<script type="application/octet-stream"[^>]*>)[^<]*', r"\1",  # base64: no markup
                 page.replace(_plotly_js()[0].decode("utf-8").replace("</script", "<\\/script"), ""))
    assert len(own) < 60_000 and not re.search(r"https?:|//[a-z]", own, re.I)  # the page's own part loads nothing
    assert page.count("</script>") == len(re.findall(r"<script\b", page)) == 3  # data, plotly.js, the app
    assert CRAFTED not in page and "<b>x" not in page  # the crafted id cannot close a script or add markup
    data = explorer_data.read_explorer(page)
    assert data["ids"] == proteins["id"].tolist()  # every protein, also the 100 not on the map
    arrays = data["arrays"]
    assert arrays["sequences"].tobytes().decode() == "".join(proteins["sequence"])
    assert arrays["length"].tolist() == proteins["sequence"].str.len().tolist()
    assert arrays["cluster"].tolist() == clusters["cluster"].tolist()
    np.testing.assert_allclose(arrays["confidence"] / 65534, clusters["confidence"], atol=1e-4)
    assert sorted(arrays["map_protein"].tolist()) == sorted(
        proteins.index[proteins["id"].isin(coordinates["id"])].tolist())
    assert data["labels"] == [f"fam{i}" for i in range(7)]  # by count, then name
    assert [data["labels"][k] for k in arrays["label"]] == proteins["label"].tolist()


def test_attribution_is_stored_as_int8_with_one_scale_per_protein(small):
    _, proteins, _, attribution, _ = small
    arrays = explorer_data.read_explorer(small[0])["arrays"]
    assert arrays["attr_protein"].tolist() == list(range(40))
    assert arrays["attr_length"].tolist() == proteins["sequence"].str.len()[:40].tolist()
    values = arrays["attr_values"].astype(float) * np.repeat(arrays["attr_scale"], arrays["attr_length"])
    expected = attribution["attribution"].to_numpy(float)
    step = np.repeat(arrays["attr_scale"], arrays["attr_length"])
    assert np.all(np.abs(values - expected) <= step / 2 + 1e-6)  # rounding to the nearest of 255 steps
    assert explorer_data.read_explorer(small[0])["attr_residues"] == {}  # letters are the sequence's: not stored


def test_missing_positions_and_other_letters_are_kept():
    proteins = pd.DataFrame({"id": ["a", "b"], "sequence": ["ACDE", "WW"]})
    attribution = pd.DataFrame({"id": ["a", "a", "b", "ghost"], "position": [1, 3, 2, 1],
                                "residue": ["A", "D", "Y", "A"], "attribution": [0.5, -1.0, 2.0, 9.0]})
    data = explorer_data.read_explorer(explorer.explorer_html(proteins, attribution=attribution))
    arrays = data["arrays"]
    assert arrays["attr_length"].tolist() == [3, 2]  # up to the highest position given
    assert arrays["attr_values"].tolist() == [64, -128, -127, -128, 127]  # -128: no value at that position
    assert data["attr_residues"] == {"1": "-Y"}  # b's attribution was of another letter at position 2


def test_cluster_summary_with_purity():
    proteins = pd.DataFrame({"id": list("abcdefg"), "sequence": ["A" * k for k in (10, 20, 30, 40, 50, 60, 70)]})
    clusters = pd.DataFrame({"id": list("abcdefg"), "cluster": [0, 0, 0, 0, 5, 5, 5],
                             "confidence": [0.2, 0.4, 0.6, 0.8, 1.0, 1.0, 0.5]})
    labels = {"a": "x", "b": "x", "c": "y", "e": "z", "f": "y", "g": "y"}  # d has none
    data = explorer_data.read_explorer(explorer.explorer_html(proteins, clusters=clusters, labels=labels))
    assert data["summary"] == [[0, 4, 0.5, 25.0, round(2 / 3, 4), "x", 3],
                               [5, 3, round(2.5 / 3, 4), 60.0, round(2 / 3, 4), "y", 3]]
    unlabelled = explorer_data.read_explorer(explorer.explorer_html(proteins, clusters=clusters))
    assert unlabelled["labels"] == [] and unlabelled["summary"][0][4:6] == [None, None]


def test_labels_given_win_over_the_label_column():
    proteins = pd.DataFrame({"id": ["a", "b"], "sequence": ["AC", "DE"], "label": ["old", "old"]})
    data = explorer_data.read_explorer(explorer.explorer_html(proteins, labels=pd.Series({"a": "new"})))
    assert data["labels"] == ["new"] and data["arrays"]["label"].tolist() == [0, -1]


def test_repeated_ids_are_refused():
    with pytest.raises(protlab.core.errors.InputError, match="ids repeat"):
        explorer.explorer_html(pd.DataFrame({"id": ["a", "a"], "sequence": ["A", "C"]}))


def test_page_of_100000_proteins_stays_under_30_mb():
    """10^5 proteins of random sequence (100-200 residues, the hardest to compress), 20 000
    with attribution, 20 000 on the map."""
    proteins, clusters, attribution, coordinates = synthetic(100_000, 20_000, n_map=20_000)
    start = time.perf_counter()
    page = explorer.explorer_html(proteins, clusters=clusters, attribution=attribution, coordinates=coordinates)
    size = len(page.encode("utf-8"))
    print(f"explorer page of 10^5 proteins: {size / 1e6:.1f} MB in {time.perf_counter() - start:.1f} s")
    assert size < 30e6
    data = explorer_data.read_explorer(page)
    assert len(data["ids"]) == 100_000 and len(data["arrays"]["attr_protein"]) == 20_000


# ------------------------------------------------------------------------------ in the browser
PROBE_HEAD = """<script>window.__errors = [];
window.addEventListener("error", function (e) {
  window.__errors.push("error: " + (e.message || (e.target && (e.target.src || e.target.href)) || e)); }, true);
window.addEventListener("unhandledrejection", function (e) { window.__errors.push("rejection: " + e.reason); });
var __error = console.error;
console.error = function () { window.__errors.push("console: " + Array.prototype.join.call(arguments, " "));
  __error.apply(console, arguments); };
</script>"""
PROBE_TAIL = """<script>
function __rows() { return Array.prototype.map.call(document.querySelectorAll("#proteins tbody tr"),
  function (tr) { return tr.cells[0].textContent; }); }
function __rect(id) { var r = document.getElementById(id).getBoundingClientRect();
  return [r.left, r.top, r.right, r.bottom]; }
function __report() {
  var x = window.protlabExplorer, out = {state: document.documentElement.dataset.state, errors: window.__errors,
    selected: __rows(), bars: document.querySelectorAll("#strip .barlayer .point").length,
    strip: __rect("strip"), structure: __rect("structure"), note: document.getElementById("strip-note").textContent,
    structure_note: document.getElementById("structure-note").textContent,
    bold: document.querySelectorAll("#proteins b, #protein-title b").length, csv: x.csv(), fasta: x.fasta()};
  x.search(@SEARCH@);
  out.searched = __rows();
  var pre = document.createElement("pre"); pre.id = "__report"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
}
(window.protlabExplorer.ready || Promise.reject()).then(function () { setTimeout(__report, 300); },
  function () { setTimeout(__report, 300); });
</script></body>"""


def chromium(args: list[str], tmp_path, name: str) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--host-resolver-rules=MAP * ~NOTFOUND",  # offline: any request to another host fails
           f"--user-data-dir={tmp_path / ('profile_' + name)}", "--use-angle=swiftshader",
           "--enable-unsafe-swiftshader", "--virtual-time-budget=15000", "--window-size=1400,1100", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


def probe(page: str, tmp_path, fragment: str, *, search: str = "") -> dict:
    """Load ``page#fragment`` in headless Chromium with error capture; after the page is ready,
    what its table, strip and notes show, then the table after ``search``."""
    probed = page.replace("<head>", "<head>" + PROBE_HEAD, 1)
    cut = probed.rindex("</body>")
    probed = probed[:cut] + PROBE_TAIL.replace("@SEARCH@", json.dumps(search)) + probed[cut + len("</body>"):]
    path = tmp_path / "probed.html"
    path.write_text(probed, encoding="utf-8")
    proc = chromium(["--dump-dom", path.as_uri() + fragment], tmp_path, "probe")
    found = re.search(r'<pre id="__report">(.*?)</pre>', proc.stdout, re.S)
    assert found, proc.stderr[-3000:]
    report = json.loads(html.unescape(found.group(1)))
    report["dom"] = proc.stdout
    return report


def fragment(**params) -> str:
    return "#" + "&".join(f"{k}={urllib.parse.quote(v if isinstance(v, str) else json.dumps(v), safe='')}"
                          for k, v in params.items())


def strip_pixels(png, rect) -> int:
    """Coloured (saturated) pixels inside ``rect`` of a screenshot: bars, not text or white."""
    from PIL import Image

    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    left, top, right, bottom = (int(round(v)) for v in rect)
    area = img[max(top, 0):bottom, max(left, 0):right]
    return int(((area.max(-1) - area.min(-1)) > 60).sum())


@needs_chromium
def test_chromium_selection_search_and_attribution(small, tmp_path):
    page, proteins, _, _, coordinates = small
    off_map = sorted(set(proteins["id"]) - set(coordinates["id"]))
    chosen = [CRAFTED, "P000003", off_map[0]]
    report = probe(page, tmp_path, fragment(select=chosen, show="P000003"), search="p0002")
    assert report["state"] == "ready" and report["errors"] == [], report["errors"]
    assert report["selected"] == chosen  # exactly the ids selected, in order, the crafted one as text
    assert report["bold"] == 0 and "<b>x" not in report["dom"] and "&lt;/script&gt;&lt;b&gt;x" in report["dom"]
    length = len(proteins["sequence"][3])
    assert report["bars"] == length  # one bar per residue of P000003
    assert report["searched"] == [f"P000{i}" for i in range(200, 300)]  # on the map or not
    rows = report["csv"].splitlines()
    assert rows[0] == "id,cluster,label,confidence,length" and len(rows) == 4
    assert rows[1].startswith(CRAFTED + ",") and rows[2].startswith("P000003,")
    records = re.findall(r"^>(.*) cluster=.*\n((?:[^>\n]*\n)*)", report["fasta"], re.M)
    assert [r[0] for r in records] == chosen
    assert [r[1].replace("\n", "") for r in records] == proteins.set_index("id").loc[chosen, "sequence"].tolist()
    none = probe(page, tmp_path, fragment(show="P000299"))  # not among the 40 attributed
    assert none["bars"] == 0 and none["note"] == "no residue attribution for this protein"

    shots = {}
    path = tmp_path / "page.html"
    path.write_text(page, encoding="utf-8")
    for name, frag in (("shown", fragment(show="P000003")), ("none", "")):
        png = tmp_path / f"{name}.png"
        proc = chromium([f"--screenshot={png}", path.as_uri() + frag], tmp_path, name)
        assert png.is_file(), proc.stderr[-2000:]
        shots[name] = strip_pixels(png, report["strip"])
    assert shots["shown"] > 1500, shots  # the bars are drawn
    assert shots["none"] < 50, shots     # nothing there before a protein is shown


@needs_chromium
@pytest.mark.skipif(find_3dmol_js() is None, reason="3Dmol.js not installed (python -m protlab.plot.assets)")
def test_chromium_draws_the_structure_coloured_by_attribution(shared_data, tmp_path):
    from protlab.curate.structures import read_structure

    path = shared_data / "structures" / "pdb" / "1aki.pdb"
    sequence = read_structure(path).sequence
    proteins = pd.DataFrame({"id": ["lysozyme", "other"], "sequence": [sequence, "ACDEFGHIKL"]})
    attribution = pd.DataFrame({"id": "lysozyme", "position": np.arange(1, len(sequence) + 1),
                                "residue": list(sequence), "attribution": np.sin(np.arange(len(sequence)) / 8)})
    page = explorer.explorer_html(proteins, attribution=attribution, structures={"lysozyme": path, "other": path},
                                  coordinates=pd.DataFrame({"id": ["lysozyme", "other"], "x": [0, 1], "y": [0, 1]}))
    data = explorer_data.read_explorer(page)
    assert [s["protein"] for s in data["structures"]] == [0] and "not drawn" in data["structure_notes"]["1"]
    report = probe(page, tmp_path, fragment(show="lysozyme"))
    assert report["errors"] == [] and report["bars"] == len(sequence)
    assert report["structure_note"].startswith("structure 1aki.pdb (100% identical")
    page_path = tmp_path / "structure.html"
    page_path.write_text(page, encoding="utf-8")
    pngs = {}
    for name, frag in (("shown", fragment(show="lysozyme")), ("other", fragment(show="other"))):
        pngs[name] = tmp_path / f"{name}.png"
        chromium([f"--screenshot={pngs[name]}", page_path.as_uri() + frag], tmp_path, "3d_" + name)
    assert strip_pixels(pngs["shown"], report["structure"]) > 2000  # red and blue cartoon
    assert strip_pixels(pngs["other"], report["structure"]) < 50     # no structure for that one


# ------------------------------------------------------------------------------ a run directory
@pytest.fixture(scope="module")
def toy_run(make_toy_run, one_torch_thread):
    """01, 02 and 04 (families with attribution where MMseqs2 is installed, else k-means)."""
    run_dir = make_toy_run()
    options = QUICK_PARAMS["04_cluster"] if mmseqs_available() else {"method": "kmeans", "n_clusters": 4}
    protlab.cluster.run(run_dir, map_max_points=0, **options)
    return run_dir


def test_write_explorer_on_a_run_of_the_stages(toy_run):
    run = RunDir(toy_run)
    path = explorer.write_explorer(toy_run, max_map_points=30, seed=1)
    assert path == explorer.explorer_path(toy_run) == run.path("figures") / "explorer.html"
    data = explorer_data.read_explorer(path)
    proteins = run.load_proteins()
    clusters = pd.read_parquet(run.path("clusters"))
    assert data["ids"] == proteins["id"].tolist()
    assert len(data["arrays"]["map_protein"]) == 30 and data["map_method"] == "UMAP"
    assert any("subsample of 30 of 48" in note for note in data["notes"])
    assert sum(row[1] for row in data["summary"]) == len(clusters) == 48
    assert data["labels"] and all(row[4] is not None for row in data["summary"])  # the toy's labels
    if run.path("attribution").is_file():
        attributed = set(pd.read_parquet(run.path("attribution"))["id"])
        assert {data["ids"][i] for i in data["arrays"]["attr_protein"]} == attributed and attributed
    same = explorer_data.read_explorer(explorer.write_explorer(toy_run, max_map_points=30, seed=1))
    np.testing.assert_array_equal(same["arrays"]["map_xy"], data["arrays"]["map_xy"])  # seeded


def test_a_large_run_s_page_holds_a_sample_and_counts_every_protein(toy_run, tmp_path):
    """Above ``max_page_proteins`` the page holds a seeded sample (the map's proteins among them)
    while its cluster summary still counts every protein; 05's labelled copy keeps the cap."""
    run_dir = tmp_path / "run"
    shutil.copytree(toy_run, run_dir)
    RunDir(run_dir).path("attribution").unlink(missing_ok=True)  # attributed proteins would all be kept
    whole = explorer_data.read_explorer(explorer.write_explorer(run_dir, max_map_points=10, seed=1))
    data = explorer_data.read_explorer(explorer.write_explorer(run_dir, max_map_points=10, max_page_proteins=20,
                                                               seed=1))
    assert len(data["ids"]) == 20 and set(data["ids"]) < set(whole["ids"])
    on_map = {whole["ids"][i] for i in whole["arrays"]["map_protein"]}
    assert {data["ids"][i] for i in data["arrays"]["map_protein"]} == on_map and on_map <= set(data["ids"])
    assert data["summary"] == whole["summary"] and sum(row[1] for row in data["summary"]) == 48
    assert any("sample of 20 of 48 proteins" in note for note in data["notes"])
    labelled = explorer.labelled_explorer(run_dir, labels={})
    assert len(explorer_data.read_explorer(labelled)["ids"]) == 20


def test_05_copies_the_page_with_its_labels_and_keeps_the_map(toy_run, tmp_path):
    first_path = explorer.write_explorer(toy_run, max_map_points=30, seed=1)
    first_bytes = first_path.read_bytes()
    first = explorer_data.read_explorer(first_path)
    proteins = RunDir(toy_run).load_proteins()
    labels = tmp_path / "labels.tsv"
    pd.DataFrame({"id": proteins["id"], "label": "L" + proteins["label"].astype(str)}).to_csv(labels, sep="\t",
                                                                                             index=False)
    result = protlab.evaluate.run(toy_run, labels=str(labels), baselines=[])
    assert "figures/explorer_labelled.html" in result.record.outputs
    assert "figures/explorer.html" not in result.record.outputs and first_path.read_bytes() == first_bytes  # 04's
    again = explorer_data.read_explorer(explorer.explorer_path(toy_run, explorer.LABELLED_STEM))
    assert set(again["labels"]) == {"L" + str(v) for v in proteins["label"].unique()}  # 05's labels
    np.testing.assert_array_equal(again["arrays"]["map_xy"], first["arrays"]["map_xy"])
    assert again["map_method"] == first["map_method"] and again["embeddings_sha256"] == first["embeddings_sha256"]


def test_a_damaged_page_is_left_to_04_and_05_still_runs(toy_run, caplog):
    path = explorer.write_explorer(toy_run, max_map_points=0)
    path.write_text("<html>cut short")
    assert explorer.labelled_explorer(toy_run, labels={}) is None
    assert "not copied with labels" in caplog.text
    explorer.write_explorer(toy_run, max_map_points=0)


def test_show_explorer_in_a_notebook(tmp_path, toy_run):
    missing = explorer.show_explorer(tmp_path).data
    assert "No explorer page" in missing and "write_explorer" in missing
    explorer.write_explorer(toy_run, max_map_points=0)
    shown = explorer.show_explorer(toy_run).data
    assert "<iframe srcdoc=" in shown and "protlab-explorer-data" in shown

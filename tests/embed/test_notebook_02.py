"""02_embed.ipynb executed by papermill with tiny parameters, asserting on what it writes."""
from __future__ import annotations

import ast
import json

import numpy as np
import pytest

from protlab.notebooks import run_notebook
import protlab
from protlab.core.rundir import RunDir

pytestmark = pytest.mark.slow


def toy_run_dir(tmp_path, n_families=3, members=8):
    run_dir = tmp_path / "run"
    result = protlab.curate.run(run_dir, n_families=n_families, members_per_family=members, seed=1,
                                split_method="kmer", split_identity=0.9)
    return run_dir, result.proteins


def test_embed_notebook_kmer_default(tmp_path):
    run_dir, proteins = toy_run_dir(tmp_path)
    out = run_notebook("02_embed", {"run_dir": str(run_dir), "kmer_dim": 16}, output_dir=tmp_path / "executed")
    ids, emb, meta = RunDir(run_dir).load_embeddings()
    assert ids == list(proteins["id"]) and emb.shape == (24, 16)
    assert meta["encoder"] == "kmer3" and meta["dim"] == 16 and meta["layer"] is None
    for suffix in ("html", "png"):
        assert (run_dir / "figures" / f"embeddings_umap.{suffix}").stat().st_size > 1000
    text = out.read_text()
    assert "'agreement'" in text  # the neighbour/label table was recorded
    agreement = _recorded_agreement(out)
    assert agreement["top1"] > 0.9  # toy families are well separated by 3-mers
    record = json.loads((run_dir / "embed.json").read_text())
    assert record["results"]["neighbour_label_agreement"] == agreement
    assert record["inputs"]["proteins.parquet"]["sha256"] and record["params"]["kmer_dim"] == 16


def test_embed_notebook_esm_checkpoint_with_cache(tmp_path):
    from protlab.esm.load import new_esm, save_esm

    run_dir, proteins = toy_run_dir(tmp_path, n_families=2, members=4)
    ckpt = save_esm(*new_esm({"num_layers": 2, "embed_dim": 16, "attention_heads": 2}), tmp_path / "enc.pt")
    params = {"run_dir": str(run_dir), "encoder": str(ckpt), "repr_layer": 1, "toks_per_batch": 512,
              "device": "cpu", "cache_dir": str(tmp_path / "cache")}
    run_notebook("02_embed", params, output_dir=tmp_path / "executed")
    ids, emb, meta = RunDir(run_dir).load_embeddings()
    assert emb.shape == (8, 16) and meta["layer"] == 1 and meta["encoder"] == "esm:enc.pt"
    assert len(list((tmp_path / "cache" / meta["cache_key"]).glob("shard-*.npz"))) >= 1
    assert (run_dir / "figures" / "embeddings_umap.png").exists()


def _recorded_agreement(path):
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.strip() == "result.agreement":
            data = cell.outputs[0]["data"]["text/plain"]
            return ast.literal_eval(data)
    raise AssertionError("agreement cell not found")


def test_umap_figure_subsamples_and_handles_tiny_inputs():
    from protlab.core.errors import InputError
    from protlab.plot.embed import project_2d, umap_figure

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(8, 5)).astype(np.float32)
    coords, method = project_2d(emb)
    assert method == "pca" and coords.shape == (8, 2)
    assert project_2d(emb[:1])[0].shape == (1, 2)
    fig = umap_figure(emb, labels=["a"] * 4 + [None] * 4, ids=[f"p{i}" for i in range(8)], max_points=5)
    assert "5 of 8 shown" in fig.layout.title.text
    assert sum(len(t.x) for t in fig.data) == 5
    with pytest.raises(InputError, match="NaN"):
        project_2d(np.full((4, 3), np.nan))

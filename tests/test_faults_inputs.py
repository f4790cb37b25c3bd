"""Folders a stage must not write refused before any work, damaged or
mismatched artifacts refused naming the file, degenerate results said rather than scored."""
from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import protlab
from protlab.cluster.stage import stale_input
from protlab.core.errors import InputError
from protlab.core.paths import writable_dir
from protlab.core.rundir import RunDir
from protlab.curate.filters import load_source
from protlab.embed import stage as embed_stage
from protlab.embed.kmer import KmerEncoder
from protlab.residues.label_training import labelled_structures
from protlab.residues.label_table import read_label_table

REPO = Path(protlab.__file__).resolve().parent.parent
FAST_CURATE = {"n_families": 2, "members_per_family": 3, "split_method": "kmer", "split_identity": 0.9}


def cli(stage: str, *args: str, cwd: str | Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"protlab.{stage}", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def refused(proc: subprocess.CompletedProcess, *words: str) -> str:
    """The command's ``error:`` line, checked: exit status 2 and every word in it."""
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert proc.returncode == 2 and errors, proc.stderr[-2000:]
    assert all(word in errors[0] for word in words), errors[0]
    return errors[0]


@pytest.fixture(scope="module")
def clustered(tmp_path_factory):
    """A toy run (3 families x 10) through 01, 02 (16-dim k-mer), 04 pca_kmeans, then 04 kmeans (chosen)."""
    run_dir = tmp_path_factory.mktemp("faults")
    protlab.curate.run(run_dir, n_families=3, members_per_family=10, split_method="kmer", split_identity=0.9)
    protlab.embed.run(run_dir, kmer_dim=16, umap_max_points=0)
    protlab.cluster.run(run_dir, method="pca_kmeans", map_max_points=0)
    protlab.cluster.run(run_dir, method="kmeans", map_max_points=0)
    return run_dir


@pytest.fixture()
def run(clustered, tmp_path):
    return RunDir(shutil.copytree(clustered, tmp_path / "run"))


def edit_parquet(path: Path, change) -> None:
    change(pd.read_parquet(path)).to_parquet(path, index=False)


# ------------------------------------------------------------------ folders a stage writes into
def test_run_dir_that_is_a_file_is_refused_before_any_work(tmp_path):  # row 1
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine\n")
    line = refused(cli("curate", "--run-dir", str(a_file), *_args(FAST_CURATE)), "run_dir=", str(a_file),
                   "is a file, not a folder")
    assert "Traceback" not in line and a_file.read_text() == "mine\n"
    with pytest.raises(InputError, match=r"run_dir=.*notes.txt is a file, so the folder .*sub cannot be created"):
        protlab.embed.run(a_file / "sub")


def test_run_dir_that_cannot_be_created_is_refused(tmp_path, monkeypatch):  # row 2
    parent = tmp_path / "noperm"
    parent.mkdir()
    if os.geteuid() != 0:  # root writes anywhere: the permission is simulated below
        parent.chmod(0o500)
        try:
            with pytest.raises(InputError, match=r"run_dir=.*noperm is not writable, so the folder .*sub cannot"):
                protlab.curate.run(parent / "sub", **FAST_CURATE)
        finally:
            parent.chmod(0o700)
    monkeypatch.setattr("protlab.core.paths.os.access", lambda path, mode: Path(path) != parent)
    with pytest.raises(InputError, match=r"run_dir=.*noperm is not writable, so the folder .*sub cannot be created "
                                         r"\(permission denied\)"):
        protlab.curate.run(parent / "sub", **FAST_CURATE)
    with pytest.raises(InputError, match=r"run_dir=.*noperm is not writable \(permission denied\)"):
        protlab.cluster.run(parent)
    assert not (parent / "sub").exists()


def test_cache_dir_that_is_a_file_is_refused(tmp_path):  # row 3
    a_file = tmp_path / "cache.bin"
    a_file.write_bytes(b"\0")
    refused(cli("embed", "--run-dir", str(tmp_path / "run"), "--encoder", "tiny", "--cache-dir", str(a_file)),
            "cache_dir=", str(a_file), "is a file")
    with pytest.raises(InputError, match=r"cache_dir=.*cache.bin is a file"):
        protlab.residues.run(tmp_path / "run", cache_dir=str(a_file))
    assert not (tmp_path / "run").exists()


def _args(params: dict) -> list[str]:
    return [item for name, value in params.items() for item in ("--" + name.replace("_", "-"), str(value))]


@pytest.fixture()
def checkout(tmp_path):
    """A git checkout with tracked notebooks/ and figures/, and a git-ignored runs/."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    for name, text in {"notebooks/01.ipynb": "{}", "figures/curate_lengths.html": "<p>tracked</p>",
                       ".gitignore": "runs/\n"}.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "tracked"]):
        subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True,
                       capture_output=True)
    return repo


def test_run_dir_empty_or_holding_tracked_files_is_refused(checkout):  # row 4
    refused(cli("curate", "--run-dir", "", *_args(FAST_CURATE), cwd=checkout), "run_dir=''", "empty")
    refused(cli("curate", "--run-dir", ".", *_args(FAST_CURATE), cwd=checkout), "run_dir='.'", "files git tracks",
            "figures/curate_lengths.html")
    for folder in (checkout, checkout / "notebooks", checkout / "figures"):
        with pytest.raises(ValueError, match="holds files git tracks"):
            writable_dir(folder)
    assert (checkout / "figures" / "curate_lengths.html").read_text() == "<p>tracked</p>"
    assert not (checkout / "proteins.parquet").exists() and not (checkout / "curate.json").exists()
    writable_dir(checkout / "runs" / "demo")  # ignored by git: a run directory may live there
    writable_dir(checkout / "notebooks" / "new_run")  # a new folder overwrites nothing


@pytest.mark.skipif(not (REPO / ".git").exists(), reason="not a git checkout")
def test_this_repository_and_its_notebooks_are_no_run_directory():
    for folder in (REPO, REPO / "notebooks"):
        with pytest.raises(InputError, match=r"run_dir=.*holds files git tracks"):
            protlab.evaluate.run(folder)
    writable_dir(REPO / "runs" / "faults_check")


# ------------------------------------------------------------------ truncated tables
def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_proteins_table_is_named(run):  # row 5
    _truncate(run.path("proteins"))
    for stage in (protlab.embed, protlab.evaluate):
        with pytest.raises(InputError, match=r"proteins.parquet is unreadable or cut short .*rerun 01_curate"):
            stage.run(run.root, **({"umap_max_points": 0} if stage is protlab.embed else {"baselines": []}))


def test_truncated_clusters_table_is_named(run):  # row 6
    _truncate(run.path("clusters"))
    refused(cli("evaluate", "--run-dir", str(run.root), "--baselines", "[]"), "clusters.parquet",
            "unreadable or cut short", "rerun 04_cluster")


# ------------------------------------------------------------------ clusterings that are no clustering
@pytest.mark.parametrize("change,says", [
    (lambda f: f.assign(cluster=f["cluster"].where(f.index != 0, -1)), r"1 row\(s\) have no integer cluster id >= 0 "
                                                                       r"\(e.g. -1 for id"),
    (lambda f: f.assign(cluster=f["cluster"].astype(float).where(f.index != 0, np.nan)),
     r"1 row\(s\) have no integer cluster id >= 0 \(e.g. nan"),
    (lambda f: f.assign(cluster=f["cluster"].astype(float) + 0.5), r"30 row\(s\) have no integer cluster id"),
    (lambda f: f.assign(cluster=f["cluster"].astype(str)), "column 'cluster' holds .* not integer cluster ids"),
    (lambda f: f.drop(columns="cluster"), r"it has no column \['cluster'\]"),
    (lambda f: f.iloc[1:], "it lacks 1 of the 30 proteins"),
    (lambda f: f.assign(id=f["id"].where(f.index != 1, f["id"].iloc[0])), r"1 id\(s\) appear more than once"),
    (lambda f: pd.concat([f, f.iloc[:1]]), r"1 id\(s\) appear more than once"),
    (lambda f: f.assign(probabilities=[[0.5]] + list(f["probabilities"].iloc[1:])), "column 'probabilities'"),
], ids=["negative", "nan", "fraction", "strings", "no-column", "row-deleted", "id-replaced", "id-repeated",
        "ragged-probabilities"])
def test_chosen_clustering_that_is_no_clustering_is_refused(run, change, says):  # rows 7-9, 11-12
    edit_parquet(run.path("clusters"), change)
    with pytest.raises(InputError, match=r"clusters.parquet: " + says + r".*rerun 04_cluster"):
        protlab.evaluate.run(run.root, baselines=[])


def test_integral_float_clusters_are_read_as_integers(run):
    edit_parquet(run.path("clusters"), lambda f: f.assign(cluster=f["cluster"].astype(float)))
    assert protlab.cluster.read_clustering(run.root)["cluster"].dtype == np.int64


def test_damaged_other_clusterings_are_listed_not_scored(run):  # rows 10-12 beside a sound chosen one
    edit_parquet(run.clustering("pca_kmeans"), lambda f: f.iloc[1:])
    result = protlab.evaluate.run(run.root, baselines=[])
    assert set(result.table.index) == {"kmeans"}
    assert "pca_kmeans.parquet: it lacks 1 of the 30 proteins" in result.metrics["skipped_stale"]["pca_kmeans"]
    assert result.results["skipped"] == result.metrics["skipped_stale"] and "not scored: pca_kmeans" in result.headline
    run.clustering("pca_kmeans", ".json").write_text("garbage{")  # row 10
    with pytest.raises(InputError, match=r"pca_kmeans.json is unreadable or cut short \(JSONDecodeError"):
        stale_input(run, "pca_kmeans")
    proc = cli("evaluate", "--run-dir", str(run.root), "--baselines", "[]")
    assert proc.returncode == 0 and "not scored: pca_kmeans:" in proc.stdout and "pca_kmeans.json is unreadable" in \
        proc.stdout, proc.stderr[-2000:]
    redone = protlab.evaluate.run(run.root, baselines=["pca_kmeans"])  # a damaged baseline is made again
    assert set(redone.table.index) == {"kmeans", "pca_kmeans"} and redone.metrics["skipped_stale"] == {}
    run.clustering("kmeans", ".json").write_text("[1, 2]")  # the chosen clustering's record
    with pytest.raises(InputError, match=r"kmeans.json holds a JSON list, not an object"):
        protlab.evaluate.run(run.root, baselines=[])


# ------------------------------------------------------------------ a clustering of other embeddings
def test_chosen_clustering_of_other_embeddings_is_refused(run):
    protlab.embed.run(run.root, kmer_dim=8, umap_max_points=0)
    with pytest.raises(InputError, match=r"clusters.parquet was made from another embeddings.npy .*rerun 04_cluster"):
        protlab.evaluate.run(run.root, baselines=["kmeans", "pca_kmeans"])
    assert not run.path("metrics").exists()
    refused(cli("evaluate", "--run-dir", str(run.root)), "clusters.parquet", "another embeddings.npy")


# ------------------------------------------------------------------ labels covering too few proteins
def test_labels_covering_too_few_proteins_are_refused(run):
    ids = run.load_proteins()["id"].tolist()
    one = run.root / "one.tsv"
    one.write_text(f"id\tlabel\n{ids[0]}\tA\n")
    with pytest.raises(InputError, match=r"one.tsv: its labels cover 1 of 30 proteins in 1 family; scores need "
                                         r"labels on at least 25% of the proteins, of at least 2 families"):
        protlab.evaluate.run(run.root, labels=str(one), baselines=[])
    few = run.root / "few.tsv"
    few.write_text("id\tlabel\n" + "".join(f"{i}\t{'AB'[n % 2]}\n" for n, i in enumerate(ids[:5])))
    with pytest.raises(InputError, match="cover 5 of 30 proteins in 2 families"):
        protlab.evaluate.run(run.root, labels=str(few), baselines=[])
    enough = run.root / "enough.tsv"
    enough.write_text("id\tlabel\n" + "".join(f"{i}\t{'AB'[n % 2]}\n" for n, i in enumerate(ids[:8])))
    assert protlab.evaluate.run(run.root, labels=str(enough), baselines=[]).metrics["n_unlabelled"] == 22
    proteins = run.load_proteins()
    run.save_proteins(proteins.assign(label=[proteins["label"].iloc[0]] * 3 + [None] * 27))
    with pytest.raises(InputError, match=r"proteins.parquet: its labels cover 3 of 30 proteins in 1 family"):
        protlab.evaluate.run(run.root, baselines=[])


# ------------------------------------------------------------------ 06 label rows naming no structure
THREE = {"A": "ALA", "G": "GLY", "L": "LEU", "K": "LYS", "E": "GLU", "V": "VAL", "S": "SER", "D": "ASP", "W": "TRP"}


def write_chain(path: Path, sequence: str) -> None:
    """A Cα trace on a helix (3.8 Å between neighbours)."""
    lines = [f"ATOM  {i:5d}  CA  {THREE[aa]} A{i:4d}    {1.5 * i:8.3f}{2.3 * math.cos(1.745 * i):8.3f}"
             f"{2.3 * math.sin(1.745 * i):8.3f}  1.00  0.00           C\n" for i, aa in enumerate(sequence, 1)]
    path.write_text("".join(lines) + "END\n")


@pytest.fixture()
def structures(tmp_path):
    folder = tmp_path / "structures"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for n in range(6):
        write_chain(folder / f"s{n}.pdb", "".join(rng.choice(list(THREE), 24)))
    return folder


def test_label_rows_naming_no_structure_are_counted_and_one_class_is_refused(structures, tmp_path):
    table = tmp_path / "labels.tsv"
    table.write_text("file\tlabel\n" + "".join(f"s{n}.pdb\tA\n" for n in range(6)) + "missing.pdb\tB\n")
    found, labels, skipped, unnamed = labelled_structures(str(structures), read_label_table(table))
    assert len(found) == 6 and unnamed == ["missing"] and skipped == {}
    split = tmp_path / "split.tsv"
    split.write_text("id\tsplit\n" + "".join(f"s{n}\t{'test' if n >= 4 else 'train'}\n" for n in range(6)))
    with pytest.raises(InputError, match=r"carry 1 label\(s\) \['A'\] of .*labels.tsv: a model of one class always "
                                         r"predicts it.*1 table rows name no file"):
        protlab.residues.run(tmp_path / "run", structures=str(structures), labels=str(table), split=str(split),
                             epochs=1, hidden=8, max_views=1)
    table.write_text("file\tlabel\n" + "".join(f"s{n}.pdb\t{'AB'[n % 2]}\n" for n in range(6)) + "missing.pdb\tB\n")
    result = protlab.residues.run(tmp_path / "run", structures=str(structures), labels=str(table), split=str(split),
                                  epochs=1, hidden=8, max_views=1)
    report = result.results["labels"]
    assert report["skipped"] == 1 and report["skipped_rows"] == 1 and report["classes"] == 2
    assert any("1 rows" in entry for entry in result.results["skipped"])


# ------------------------------------------------------------------ k-mer embeddings the data limits
def test_sequences_without_a_kmer_are_refused():
    with pytest.raises(InputError, match="no 3-mers in the input"):
        KmerEncoder(dim=8).embed(["M", "K"])
    with pytest.raises(InputError, match=r"1 of 4 sequences are shorter than 3 residues \(rows \[0\], e.g. 'M'\)"):
        KmerEncoder(dim=8).embed(["M", "ACDEFGHIK", "LMNPQRSTV", "WYACDEFGH"])


def test_capped_kmer_dim_is_said(run, capsys):
    result = protlab.embed.run(run.root, kmer_dim=100, umap_max_points=0)
    said = "kmer_dim 100 capped to 29 by the data (30 proteins)"
    assert said in capsys.readouterr().out and result.results["kmer_dim_capped"] == said
    assert result.record.settings["kmer_dim"] == 29 and result.record.params["kmer_dim"] == 100
    meta = run.load_embeddings()[2]
    assert meta["dim"] == 29 and meta["requested_dim"] == 100 and meta["dim_capped_by"] == "30 proteins"
    assert said in embed_stage.summary_line(result.results, {})
    assert "kmer_dim_capped" not in protlab.embed.run(run.root, kmer_dim=16, umap_max_points=0).results


# ------------------------------------------------------------------ messages
def test_missing_table_column_names_what_01_reads(tmp_path):
    table = tmp_path / "p.tsv"
    table.write_text("id\tseq\tfamily\nA1\tMKVLAAGIRS\tF1\n")
    with pytest.raises(InputError) as caught:
        protlab.curate.run(tmp_path / "run", source=str(table))
    message = str(caught.value)
    assert str(table) in message and "01_curate reads the columns 'id' and 'sequence'" in message
    assert "pass sequence_column" not in message and "['id', 'seq', 'family']" in message
    table.write_text("id\tsequence\tfamily\nA1\tMKVLAAGIRS\tF1\n")
    assert load_source(str(table), label_field="family")[0]["label"].tolist() == ["F1"]  # 01's label_field
    with pytest.raises(InputError, match="no label column 'fam'.*label_field in 01_curate"):
        load_source(str(table), label_field="fam")


def test_unknown_baseline_names_the_allowed_ones(tmp_path):
    refused(cli("evaluate", "--run-dir", str(tmp_path / "run"), "--baselines", "[bogus]"), "baselines=['bogus']",
            "a list of 'kmeans', 'pca_kmeans'")
    with pytest.raises(InputError, match="baselines=5 is not allowed: use a list of 'kmeans', 'pca_kmeans'"):
        protlab.evaluate.run(tmp_path / "run", baselines=5)
    assert not (tmp_path / "run").exists()

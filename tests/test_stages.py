"""Each stage validates every parameter before any work and records what it did."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

import protlab
from protlab.core.fingerprint import fingerprint
from protlab.core.errors import InputError

BAD_VALUES = [  # (stage, parameter, value): each must raise InputError naming the parameter
    ("curate", "label_regex", "("),
    ("curate", "max_records", "5"),
    ("curate", "max_records", 0),
    ("curate", "min_length", -1),
    ("curate", "split_fractions", [0.5, 0.5]),
    ("curate", "split_fractions", [0.8, 0.1, 0.2]),
    ("curate", "split_identity", 0),
    ("curate", "nonstandard", "ignore"),
    ("curate", "dedup", "yes"),
    ("curate", "n_families", 2.5),
    ("embed", "kmer_dim", 0),
    ("embed", "device", "tpu"),
    ("embed", "toks_per_batch", 2),
    ("embed", "umap_max_points", "many"),
    ("cluster", "n_clusters", 2.7),
    ("cluster", "n_clusters", 1),
    ("cluster", "method", "dbscan"),
    ("cluster", "neighbors", "blast"),
    ("cluster", "k", 0),
    ("cluster", "epochs", True),
    ("cluster", "entropy_weight", float("nan")),
    ("evaluate", "baselines", ["scan"]),
    ("evaluate", "baselines", ["families"]),
    ("cluster", "family_config", {"longr": 2}),
    ("cluster", "family_config", {"merge_hits": 0}),
    ("evaluate", "baselines", "kmeans"),
    ("evaluate", "seed", -1),
]


@pytest.mark.parametrize("stage,name,value", BAD_VALUES)
def test_bad_value_is_an_input_error_naming_the_parameter(tmp_path, stage, name, value):
    with pytest.raises(InputError, match=re.escape(f"{name}=")):
        getattr(protlab, stage).run(tmp_path / "run", **{name: value})
    assert not (tmp_path / "run").exists()  # nothing was started


def test_values_are_normalised():
    params = protlab.cluster.STAGE.validate({"n_clusters": 30.0, "entropy_weight": 5})
    assert params["n_clusters"] == 30 and isinstance(params["n_clusters"], int)
    assert params["entropy_weight"] == 5.0 and isinstance(params["entropy_weight"], float)
    assert protlab.curate.STAGE.validate({"split_fractions": (0.7, 0.2, 0.1)})["split_fractions"] == [0.7, 0.2, 0.1]
    with pytest.raises(InputError, match="max_length=10 is below min_length=20"):
        protlab.curate.run("unused", max_length=10)


def test_command_line_values_are_parsed_by_kind():
    stage = protlab.curate.STAGE
    assert stage.by_name["max_records"].parse_text("None") is None
    assert stage.by_name["max_records"].parse_text("5") == 5
    assert stage.by_name["dedup"].parse_text("false") is False
    assert stage.by_name["split_fractions"].parse_text("[0.7, 0.2, 0.1]") == [0.7, 0.2, 0.1]
    assert stage.by_name["label_field"].parse_text("1") == 1  # a header token index
    assert stage.by_name["label_field"].parse_text("OX") == "OX"


def test_stages_chain_and_record_inputs_outputs_and_timings(tmp_path, monkeypatch):
    import protlab.evaluate.stage as evaluate_stage

    run_dir = tmp_path / "run"
    curated = protlab.curate.run(run_dir, n_families=4, members_per_family=12, split_method="kmer",
                                 split_identity=0.9)
    assert len(curated.proteins) == 48 and set(curated.figures) == {"lengths", "family_sizes", "composition"}
    embedded = protlab.embed.run(run_dir, kmer_dim=16, umap_max_points=20)
    clustered = protlab.cluster.run(run_dir, method="kmeans")
    assert set(clustered.figures) == {"cluster_sizes", "map"}  # the map is coloured by discovered cluster
    assert {t.name for t in clustered.figures["map"].data} == {f"cluster {c}" for c in range(4)}
    assert (run_dir / "figures" / "cluster_map_kmeans.png").is_file()
    scored = []
    score = evaluate_stage.evaluate_clusters
    monkeypatch.setattr(evaluate_stage, "evaluate_clusters", lambda *a: scored.append(1) or score(*a))
    evaluated = protlab.evaluate.run(run_dir, baselines=["pca_kmeans"])
    assert evaluated.metrics["method"] == "kmeans" and evaluated.metrics["nmi"] > 0.8
    assert set(evaluated.table.index) == {"kmeans", "pca_kmeans"}
    # the chosen clustering is clusters/kmeans: its row is reused, not scored a second time
    assert len(scored) == 2 and evaluated.metrics["acc"] == evaluated.table.loc["kmeans", "acc"]
    records = {s: json.loads((run_dir / f"{s}.json").read_text()) for s in ("curate", "embed", "cluster", "evaluate")}
    for stage, record in records.items():
        assert record["stage"] == stage and record["protlab_version"] == protlab.__version__
        assert record["params"] == getattr(protlab, stage).STAGE.validate(record["params"])
        assert record["timings"]["total"] > 0 and record["outputs"]
    proteins_hash = records["embed"]["inputs"]["proteins.parquet"]["sha256"]
    assert records["cluster"]["inputs"]["proteins.parquet"]["sha256"] == proteins_hash
    assert records["cluster"]["inputs"]["embeddings.npy"]["sha256"] == \
        fingerprint(run_dir / "embeddings.npy")
    assert "clusters.parquet" in records["cluster"]["outputs"] and "clusters/kmeans.parquet" in records["cluster"]["outputs"]
    assert records["cluster"]["results"]["n_clusters"] == 4 and clustered.labels.max() == 3
    assert "baselines/pca_kmeans.parquet" in records["evaluate"]["outputs"]  # 05's own folder
    assert records["evaluate"]["results"]["nmi"] == pytest.approx(evaluated.metrics["nmi"])
    assert embedded.embeddings.shape == (48, 16)
    assert embedded.figures.keys() == {"umap"}
    assert protlab.embed.run(run_dir, kmer_dim=16, umap_max_points=0).figures == {}  # 0: no map
    unmapped = protlab.cluster.run(run_dir, method="kmeans", map_max_points=0)
    assert set(unmapped.figures) == {"cluster_sizes"}


def test_curate_defaults_keep_long_proteins(tmp_path):
    rng = np.random.default_rng(0)
    fasta = tmp_path / "long.fasta"
    seqs = ["".join(rng.choice(list("ACDEFGHIKLMNPQRSTVWY"), size=n)) for n in (120, 1500, 3000)]
    fasta.write_text("".join(f">p{i} PF0000{i}\n{s}\n" for i, s in enumerate(seqs)))
    result = protlab.curate.run(tmp_path / "run", source=str(fasta), split_method="kmer", split_identity=0.9)
    assert sorted(result.proteins["length"]) == [120, 1500, 3000]  # 02 windows them, 03 crops them
    bounded = protlab.curate.run(tmp_path / "run2", source=str(fasta), split_method="kmer", split_identity=0.9,
                                 max_length=1000)
    assert bounded.report["dropped"]["too_long"] == 2 and bounded.results["dropped"] == {"too_long": 2}


def test_protclip_sampling_marks_pairs_and_deletes_nothing(tmp_path, shared_data):
    from protlab.pretrain.data import load_pairs

    from protlab.curate.formats import read_proteins

    source = tmp_path / "entries.dat"  # every readable real entry in one flat file
    texts = []
    for path in sorted((shared_data / "uniprot" / "flatfile").glob("*")):
        try:
            read_proteins(path, format="uniprot")
        except protlab.ProtlabError:
            continue
        texts.append(path.read_text().rstrip("\n") + "\n")
    source.write_text("".join(texts))
    result = protlab.curate.run(tmp_path / "run", source=str(source), split_method="kmer", split_identity=0.9)
    selection = result.report["protclip_sampling"]
    assert result.format == "uniprot" and selection["rows_kept"] == len(result.proteins) == result.report["kept"]
    selected = result.proteins["protclip_selected"]
    assert selection["kept"] == int(selected.sum()) and 0 < selected.sum() < len(selected)
    pairs = load_pairs(tmp_path / "run")  # 03 trains on the selected pairs only
    assert set(pairs["id"]) == set(result.proteins.loc[selected, "id"].astype(str))


def test_numpy_scalars_infinity_and_seed_bounds():
    spec = protlab.cluster.STAGE
    checked = spec.validate({"seed": np.int64(3), "entropy_weight": np.float32(2.5), "n_clusters": np.float64(4.0)})
    assert checked["seed"] == 3 and type(checked["seed"]) is int and checked["entropy_weight"] == 2.5
    assert protlab.curate.STAGE.validate({"dedup": np.bool_(False)})["dedup"] is False
    for name, value in (("entropy_weight", float("inf")), ("seed", 2**32), ("k", float("nan"))):
        with pytest.raises(InputError, match=f"{name}="):
            spec.validate({name: value})


def test_command_line_lists_and_path_like_strings():
    evaluate = protlab.evaluate.STAGE.by_name["baselines"]
    assert evaluate.parse_text("kmeans,pca_kmeans") == ["kmeans", "pca_kmeans"]
    assert evaluate.parse_text('["kmeans"]') == ["kmeans"]
    assert protlab.curate.STAGE.by_name["split_fractions"].parse_text("0.8,0.1,0.1") == [0.8, 0.1, 0.1]
    assert protlab.residues.STAGE.by_name["structures"].parse_text("2024") == "2024"  # a folder named 2024


def test_stage_results_copy_and_pickle(tmp_path):
    import copy
    import pickle

    result = protlab.curate.run(tmp_path, n_families=2, members_per_family=3, split_method="kmer", split_identity=0.9)
    assert copy.copy(result).proteins is result.proteins
    assert pickle.loads(pickle.dumps(result.values["report"])) == result.report
    assert copy.deepcopy(result).report == result.report


def test_each_command_line_ends_with_what_the_stage_found():
    """The summary line of every stage, from the results its record holds."""
    from protlab.cluster.stage import summary_line as cluster_line
    from protlab.curate.stage import summary_line as curate_line
    from protlab.evaluate.stage import summary_line as evaluate_line
    from protlab.pretrain.stage import summary_line as pretrain_line
    from protlab.residues.stage import summary_line as residues_line

    curate = curate_line({"proteins": 40, "input": 48, "format": "fasta", "dropped": {"duplicate": 8}, "labels": 4,
                          "splits": {"train": 32, "valid": 4, "test": 4}}, {"total": 3.2})
    assert curate == ("kept 40 of 48 fasta records (dropped 8: {'duplicate': 8}); 4 labels; "
                      "splits test 4, train 32, valid 4; 3 s")
    assert "no labels (05 then needs labels=...)" in curate_line({"proteins": 5, "input": 5, "labels": 0}, {})
    cluster = cluster_line({"method": "families", "n_clusters": 3, "n_clusters_estimated": 3,
                            "agreement_heads_families": 0.95, "cluster_sizes": [5, 10, 15]}, {"total": 12})
    assert cluster == ("3 clusters (families) of 30 proteins; homology graph's estimate 3 families; SCAN heads agree "
                       "with the families on 95.0%; sizes 5-15; 12 s")
    scores = evaluate_line({"method": "families", "per_method": {"families": {"nmi": 0.9, "ari": 0.8, "acc": 0.85},
                                                                 "kmeans": {"nmi": 0.5, "ari": 0.4, "acc": 0.45}},
                            "nmi": 0.9, "agreement_heads_families": 0.97}, {})
    assert "families     NMI 0.900  ARI 0.800  ACC 0.850" in scores and "kmeans       NMI 0.500" in scores
    assert "agree with the families on 97.0%" in scores
    assert "zero-shot not scored" in pretrain_line({"steps": 20, "final_loss": 1.0, "mrr": 0.3, "split": "valid",
                                                    "n_pairs": 7, "zero_shot_acc": None}, {})
    residues = residues_line({"n_structures": 4, "n_with_sites": 2, "model_trained_on": "labels",
                              "labels": {"accuracy": 0.5, "skipped": 3}, "skipped": ["a", "rows"]}, {"total": 1})
    assert "accuracy 0.500" in residues and "3 skipped" in residues

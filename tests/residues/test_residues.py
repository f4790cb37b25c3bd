"""Critical-residue tables, metrics, the conservation baseline, SITE records, bad input and
the stage itself (``protlab.residues.run``, its parameters, record and command line)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import protlab.residues as residues
from protlab.core.errors import InputError, ProtlabError
from protlab.core.rundir import RunDir
from protlab.curate.records import Structure
from protlab.curate.structures import read_structure
from protlab.demo import QUICK_PARAMS
from protlab.residues.network import ResidueNet, ResidueNetConfig, load_network
from protlab.residues.stage import STAGE
from protlab.residues.workflows import Explaining, FileTraining, ToyTraining, workflow_options

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO = Path(__file__).resolve().parents[2]
QUICK = QUICK_PARAMS["06_critical_residues"]


def tiny_model(n_classes=2) -> ResidueNet:
    torch.manual_seed(0)
    return ResidueNet(ResidueNetConfig(n_classes=n_classes, hidden=16,
                                           class_names=[f"c{i}" for i in range(n_classes)])).eval()


def test_precision_at_k_and_random_expectation():
    scores = np.array([0.9, 0.1, 0.8, 0.7, 0.0, 0.2])
    assert residues.precision_at_k(scores, [0, 2, 5], 2) == 1.0
    assert residues.precision_at_k(scores, [0, 2, 5], 3) == pytest.approx(2 / 3)
    assert residues.precision_at_k(scores, [1, 4], 2) == 0.0
    assert residues.random_precision_at_k(6, [0, 2, 5], 3) == 0.5
    with pytest.raises(InputError):
        residues.precision_at_k(scores, [0], 0)


def test_fmax_on_known_predictions():
    targets = np.array([[1, 0, 1], [0, 1, 0]])
    assert residues.fmax(targets.astype(float), targets) == pytest.approx(1.0)
    probs = np.array([[0.9, 0.8, 0.2], [0.1, 0.7, 0.6]])
    # at t in (0.6, 0.7]: predictions {0,1} and {1}: precision (0.5 + 1)/2, recall (0.5 + 1)/2 -> F = 0.75
    assert residues.fmax(probs, targets) == pytest.approx(0.75)


def test_conservation_with_alignment_and_alignment_free():
    seqs = ["ACDE", "ACDF", "WCDG"]
    align = {"a": np.array([0, 1, 2, 3]), "b": np.array([0, 1, 2, 3]), "c": np.array([0, 1, 2, -1])}
    out = residues.conservation_scores(seqs, [0, 0, 0], alignment=align, ids=["a", "b", "c"])
    assert out[0][1] == pytest.approx(1.0) and out[0][2] == pytest.approx(1.0)  # fully conserved columns
    assert out[0][0] < 1.0 and out[2][3] == 0.0                                 # mixed column; unaligned
    free = residues.conservation_scores(["AACDEK", "GACDEW", "TTTTTT"], ["x", "x", "y"])
    assert free[0][2] == 1.0 and free[0][0] == 0.0  # 'ACD' shared with the other family member
    assert (free[2] == 1.0).all()                   # alone in its family: compared with itself


def test_critical_residue_table_and_toy_metrics():
    inputs = residues.toy_inputs(n_families=2, members_per_family=3, length_range=(50, 60))
    m = tiny_model()
    table = residues.critical_residues(m, inputs.structures[0])
    assert list(table.columns) == ["rank", "chain", "residue_number", "residue", "score", "cluster", "iteration",
                                   "index"]
    assert len(table) == len(inputs.structures[0])
    assert table["score"].is_monotonic_decreasing and table["score"].iloc[0] == pytest.approx(1.0)
    assert residues.critical_residues(m, inputs.structures[0], top_k=5).shape[0] == 5
    ex = residues.explain_structures(m, inputs.structures)
    ids = [e.id for e in ex]
    metrics = residues.site_metrics(ex, [inputs.sites[i] for i in ids], baseline=[inputs.baseline[i] for i in ids])
    assert metrics["n_proteins"] == 6
    site = inputs.sites[ids[0]]
    assert metrics["random_precision_at_k"] == pytest.approx(
        np.mean([len(inputs.sites[i]) / len(e.importance) for i, e in zip(ids, ex)]))
    # the toy's site residues are invariant in their family: conservation ranks them at the top
    assert metrics["baseline_precision_at_k"] > 0.3
    assert all(0 <= r["precision_at_k"] <= 1 for r in metrics["per_protein"]) and len(site) >= 3


def test_held_out_restricts_toy_inputs_to_unseen_proteins(tmp_path):
    kw = dict(n_families=2, members_per_family=5, length_range=(50, 60))
    model, _ = residues.train_toy_model(tmp_path, epochs=1, hidden=16, progress=False, **kw)
    loaded = load_network(tmp_path / "checkpoints" / "residue_cluster.pt")
    assert loaded.meta["held_out"] == model.meta["held_out"] and len(model.meta["held_out"]) == 2
    inputs = residues.toy_inputs(**kw)
    kept = residues.held_out(inputs, loaded)
    assert [s.id for s in kept.structures] == [s.id for s in inputs.structures if s.id in model.meta["held_out"]]
    assert set(kept.sites) == set(kept.baseline) == set(kept.labels) == set(model.meta["held_out"])
    loaded.meta = {}                                   # a model without the record: inputs unchanged
    assert residues.held_out(inputs, loaded) is inputs


def test_training_learns_toy_families():
    inputs = residues.toy_inputs(n_families=3, members_per_family=5, length_range=(50, 60), families_per_superfamily=1)
    labels = [inputs.labels[s.id] for s in inputs.structures]
    result = residues.train_residue_model(inputs.structures, labels, epochs=10, batch_size=4, hidden=32, lr=5e-3,
                                          progress=False)
    assert result.history[-1]["train_accuracy"] >= 0.9
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.classes == sorted(set(labels)) and result.model.config.class_names == result.classes


def test_multilabel_training_reports_fmax():
    inputs = residues.toy_inputs(n_families=2, members_per_family=3, length_range=(50, 60))
    labels = [["1.1.1.1", "2.7.11.1"] if inputs.labels[s.id].startswith("F00") else ["3.4.21.4"]
              for s in inputs.structures]
    result = residues.train_residue_model(inputs.structures, labels, task="multi", epochs=2, hidden=16,
                                          progress=False)
    assert result.classes == ["1.1.1.1", "2.7.11.1", "3.4.21.4"]
    assert 0.0 <= result.history[-1]["train_fmax"] <= 1.0


def test_site_records_table_keeps_protein_residues_only(shared_data):
    table = residues.read_site_table(shared_data / "structures" / "site_records.tsv")
    raw = pd.read_csv(shared_data / "structures" / "site_records.tsv", sep="\t", dtype=str)
    assert (raw["resname"] == "HOH").any()
    s = read_structure(shared_data / "structures" / "pdb" / "1k6p.pdb", chain="A")
    idx = residues.site_residues(s, table)
    labels = s.residue_labels()
    assert {"20", "21", "83"} <= {labels[i] for i in idx}       # LYS20, GLU21, ASN83 of site AC1
    waters = raw[(raw["resname"] == "HOH") & (raw["file"].str.lower().str.startswith("1k6p"))]
    assert not {("A", n) for n in waters["resnum"]} & table["1k6p"]


def test_site_tables_in_every_format(shared_data, tmp_path):
    """The ligand-site TSV, and the Catalytic Site Atlas CSV read as it is."""
    ligand = residues.read_site_table(shared_data / "structures" / "ligand_sites" / "binding_sites_primary.tsv")
    assert ("A", "36") in ligand["1g9v_rq3_protein"] and ligand["1g9v"] == ligand["1g9v_rq3_protein"]
    csa = residues.read_site_table(shared_data / "annotations" / "mcsa_literature_pdb_residues.csv")
    assert {("A", "46"), ("A", "100")} <= csa["12as"]
    bad = tmp_path / "bad.tsv"
    bad.write_text("file\tchain\nx.pdb\tA\n")
    with pytest.raises(InputError, match="not a site table"):
        residues.read_site_table(bad)
    bad.write_text("pdb_id\tchain\tres_num\tins_code\n1abc\tA\t12\t\n1abc\tA\tx7\t\n")
    with pytest.raises(InputError, match=r"bad.tsv: row 2: residue number 'x7'"):
        residues.read_site_table(bad)
    with pytest.raises(InputError, match="sites=.*not a file"):
        residues.read_site_table(tmp_path / "absent.tsv")


@pytest.mark.parametrize("case", ["no_protein_chain", "missing_chain", "single_residue", "nan"])
def test_bad_structures_give_clear_errors(tmp_path, case):
    m = tiny_model()
    atom = "ATOM  {n:5d}  CA  ALA A{r:4d}    {x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00           C\n"
    if case == "no_protein_chain":
        path = tmp_path / "water.pdb"
        path.write_text("HETATM    1  O   HOH A   1       0.000   0.000   0.000  1.00  0.00           O\nEND\n")
        with pytest.raises(ProtlabError, match="protein"):
            residues.critical_residues(m, read_structure(path))
    elif case == "missing_chain":
        path = tmp_path / "three.pdb"
        path.write_text("".join(atom.format(n=i, r=i, x=3.8 * i, y=0, z=0) for i in range(1, 4)) + "END\n")
        with pytest.raises(ProtlabError, match="chain 'Q'"):
            read_structure(path, chain="Q")
    elif case == "single_residue":
        path = tmp_path / "one.pdb"
        path.write_text(atom.format(n=1, r=1, x=0, y=0, z=0) + "END\n")
        with pytest.raises(InputError, match="at least 3"):
            residues.critical_residues(m, read_structure(path))
    else:
        ca = np.array([[0, 0, 0], [3.8, 0, 0], [np.nan, 1, 0], [7, 3, 0]], dtype=np.float32)
        s = Structure(id="nan", chain="A", res_ids=np.arange(1, 5), ins_codes=np.array(["", "", "A", ""]),
                      res_names=np.array(["ALA"] * 4), sequence="AAAA", ca=ca, centroid=ca)
        with pytest.raises(InputError, match="NaN.*residues 3A"):
            residues.critical_residues(m, s)


def test_nmr_ensemble_uses_model_one(shared_data):
    s = read_structure(shared_data / "structures" / "pdb" / "1LCD.pdb")
    assert any("model 1" in n for n in s.notes)
    table = residues.critical_residues(tiny_model(), s)
    assert len(table) == len(s) and table["score"].max() == pytest.approx(1.0)


def test_fine_tune_on_new_classes_reuses_the_encoder():
    inputs = residues.toy_inputs(n_families=2, members_per_family=2, length_range=(50, 60))
    init = tiny_model(2)
    new_labels = ["x", "y", "z", "x"]
    result = residues.train_residue_model(inputs.structures, new_labels, epochs=0, init=init, hidden=16,
                                          progress=False)
    assert result.classes == ["x", "y", "z"] and result.model.config.n_classes == 3
    assert torch.equal(result.model.aa_embed.weight, init.aa_embed.weight)
    assert torch.equal(result.model.layers[2].w1.weight, init.layers[2].w1.weight)


def test_pfam_domain_structures_carry_family_labels(shared_data):
    structures, labels = residues.pfam_domain_inputs(shared_data / "structures" / "pfam_domains")
    assert len(structures) == 20 and len(set(labels)) == 20 and all(lab.startswith("PF") for lab in labels)
    assert all(len(s) >= 40 and s.chain == "A" for s in structures)


def test_directory_input_skips_files_without_protein(tmp_path):
    atom = "ATOM  {n:5d}  CA  ALA A{r:4d}    {x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00           C\n"
    (tmp_path / "good.pdb").write_text("".join(atom.format(n=i, r=i, x=3.8 * i, y=(i % 2) * 1.5, z=0)
                                               for i in range(1, 8)) + "END\n")
    (tmp_path / "water.pdb").write_text("HETATM    1  O   HOH A   1       0.000   0.000   0.000  1.00  0.00           O\n")
    (tmp_path / "one.pdb").write_text(atom.format(n=1, r=1, x=0, y=0, z=0) + "END\n")  # reads, but 1 residue
    inputs = residues.read_structure_inputs(tmp_path)
    assert [s.id for s in inputs.structures] == ["good"]
    assert sorted(inputs.skipped) == [str(tmp_path / "one.pdb"), str(tmp_path / "water.pdb")]
    assert "1 residue(s)" in inputs.skipped[str(tmp_path / "one.pdb")]
    with pytest.raises(InputError, match="1 residue"):  # a single file is an error, not a skip
        residues.read_structure_inputs(tmp_path / "one.pdb")
    (tmp_path / "good.pdb").unlink()
    with pytest.raises(InputError, match="no usable protein structure.*water.pdb"):
        residues.read_structure_inputs(tmp_path)


def test_evaluate_network_reports_accuracy():
    inputs = residues.toy_inputs(n_families=2, members_per_family=2, length_range=(50, 60))
    graphs = residues.featurize(inputs.structures)
    m = tiny_model()
    out = residues.evaluate_network(m, graphs, torch.tensor([0, 0, 1, 1]))
    assert set(out) == {"accuracy"} and 0.0 <= out["accuracy"] <= 1.0
    assert residues.evaluate_network(m, [], torch.tensor([])) == {}


# ------------------------------------------------------------------------------ the stage
def test_no_residues_module_names_a_path_outside_the_repository():
    for path in (REPO / "protlab" / "residues").glob("*.py"):
        text = path.read_text()
        assert '"shared"' not in text and "../shared" not in text and "parent.parent.parent" not in text, path


def test_run_rejects_an_unknown_parameter_naming_it(tmp_path):
    with pytest.raises(InputError, match=r"unknown parameter 'epoch'.*did you mean 'epochs'"):
        residues.run(tmp_path, epoch=2)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("name, value", [
    ("epochs", 0), ("score", "x"), ("top_k", 0), ("val_fraction", 1.5), ("val_fraction", 1.0),
    ("length_range", [140, 80]), ("length_range", [50]), ("length_range", "80-140"), ("n_families", 1),
    ("families_per_superfamily", 9), ("max_views", 0), ("cpu_threads", 0), ("residue_dropout", -0.1),
    ("hidden", 2.5), ("seed", -1), ("structures", "no/such/dir"), ("structures", []),
    ("checkpoint", "no/such/model.pt"), ("sites", "no/such/sites.tsv"), ("split", "no/such/split.tsv"),
    ("test_fraction", 0.0), ("chain", 3),
])
def test_bad_values_raise_before_any_work(tmp_path, name, value):
    with pytest.raises(InputError, match=rf"^{name}="):
        residues.run(tmp_path / "run", **{name: value})
    assert not (tmp_path / "run").exists()


def test_sites_with_the_toy_universe_is_an_error(tmp_path):
    sites = tmp_path / "sites.tsv"
    sites.write_text("file\tresname\tchain\tresnum\ticode\n")
    with pytest.raises(InputError, match="sites"):
        residues.run(tmp_path / "run", sites=str(sites))
    assert not (tmp_path / "run").exists()
    with pytest.raises(InputError, match="sites"):
        residues.read_structure_inputs("toy", sites=sites)


def test_stage_defaults_match_the_notebook():
    import ast

    from protlab.notebooks import notebook_parameters

    defaults = {name: ast.literal_eval(text) for name, text in notebook_parameters("06_critical_residues").items()}
    assert defaults == {"run_dir": "runs/demo", **STAGE.defaults()}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """The demo's quick settings: trains a tiny model on the toy universe."""
    run_dir = tmp_path_factory.mktemp("res_quick")
    return run_dir, residues.run(run_dir, **QUICK)


def test_quick_toy_run_writes_its_record(quick_run):
    run_dir, result = quick_run
    run = RunDir(run_dir)
    record = json.loads((run_dir / "residues.json").read_text())
    assert record["stage"] == "residues" and record["notebook"] == "06_critical_residues"
    assert record["params"] == {**STAGE.defaults(), **QUICK}
    assert record["inputs"] == {}                            # toy universe, trained here: nothing read
    outputs = set(record["outputs"])
    for key in ("residue_network", "critical_residues", "residue_metrics"):
        assert str(run.path(key).relative_to(run_dir)) in outputs
    assert {"figures/residue_importance.html", "figures/residue_importance.png"} <= outputs
    views = sorted(p for p in outputs if p.startswith("figures/residues_3d_") and p.endswith(".html"))
    assert len(views) == QUICK["max_views"] and all((run_dir / v).stat().st_size > 10_000 for v in views)
    for suffix in (".pdb", ".pml", ".cxc"):  # the scores for PyMOL / ChimeraX beside each view
        assert {v.replace(".html", suffix) for v in views} <= outputs
    assert {"toy", "explain", "write", "figures", "total"} <= set(record["timings"])
    assert record["results"]["mode"] == "toy"
    res = record["results"]
    assert res["n_structures"] == len(result.explanations) == 2    # 20 % of 3 x 4 toy proteins held out
    for key in ("precision_at_k", "random_precision_at_k", "baseline_precision_at_k"):
        assert 0.0 <= res[key] <= 1.0 and res[key] == result.metrics[key]
    assert res["training"]["epoch"] == QUICK["epochs"] == len(result.history)
    assert set(result.figures) == {"importance", "training"} and len(result.figures["importance"].data) >= 2
    assert {"figures/residue_training.html", "residues/training.csv"} <= outputs  # the training curves
    assert result.inputs.source == "toy" and isinstance(result.model, ResidueNet)
    table = pd.read_parquet(run.path("critical_residues"))
    assert set(table["id"]) == {ex.id for ex in result.explanations}
    assert load_network(run.path("residue_network")).meta["held_out"] == [ex.id for ex in result.explanations]


def test_saved_model_run_records_its_checkpoint(quick_run, tmp_path):
    run_dir, first = quick_run
    checkpoint = str(RunDir(run_dir).path("residue_network"))
    with pytest.raises(InputError, match=r"^epochs=2 is not used with mode='explain'"):  # training options
        residues.run(tmp_path, **QUICK, checkpoint=checkpoint)  # of a saved model are never silently ignored
    universe = {k: v for k, v in QUICK.items() if k not in ("epochs", "hidden")}  # the toy it was trained on
    result = residues.run(tmp_path, **universe, checkpoint=checkpoint)
    record = json.loads((tmp_path / "residues.json").read_text())
    assert record["results"]["mode"] == "explain"
    assert list(record["inputs"]) == [checkpoint] and len(record["inputs"][checkpoint]["sha256"]) == 64
    assert not RunDir(tmp_path).path("residue_network").exists() and result.history == []
    assert [ex.id for ex in result.explanations] == [ex.id for ex in first.explanations]  # same held-out proteins
    assert "training" not in record["results"]


def test_site_metrics_come_from_the_sites_parameter(quick_run, shared_data, tmp_path):
    checkpoint = str(RunDir(quick_run[0]).path("residue_network"))
    pdb = shared_data / "structures" / "pdb" / "1k6p.pdb"
    sites = shared_data / "structures" / "site_records.tsv"
    with pytest.raises(InputError, match=r"was trained on the toy universe.*toy_model=True"):  # not silently
        residues.run(tmp_path, structures=str(pdb), checkpoint=checkpoint, sites=str(sites), top_k=5)
    with pytest.raises(InputError, match=r"checkpoint=None would train one on the toy universe"):
        residues.run(tmp_path, structures=str(pdb))
    assert not (tmp_path / "checkpoints").exists()  # refused before any training
    result = residues.run(tmp_path, structures=str(pdb), checkpoint=checkpoint, sites=str(sites), top_k=5,
                          toy_model=True)
    assert result.results["model_trained_on"] == "toy" and "TOY-TRAINED MODEL" in result.results["caveat"]
    assert "TOY-TRAINED MODEL" in (tmp_path / "figures" / "residues_3d_1k6p.html").read_text()
    metrics = json.loads(RunDir(tmp_path).path("residue_metrics").read_text())
    assert metrics["n_proteins"] == 1 and metrics["per_protein"][0]["id"] == "1k6p"
    assert "baseline_precision_at_k" not in metrics and metrics["source"] == str(pdb)
    record = json.loads((tmp_path / "residues.json").read_text())
    assert {checkpoint, str(pdb), str(sites)} == set(record["inputs"])
    assert record["results"]["precision_at_k"] == result.metrics["precision_at_k"] == metrics["precision_at_k"]
    # without a site table the file's own SITE records (the same 24 residues) and ligand contacts are the site
    again = residues.run(tmp_path, structures=str(pdb), checkpoint=checkpoint, top_k=5, toy_model=True)
    assert again.results["n_with_sites"] == 1 and again.metrics["n_proteins"] == 1
    assert set(result.inputs.sites["1k6p"]) < set(again.inputs.sites["1k6p"])
    # a structure with neither: no site metrics, and the earlier file is not left behind
    plain = residues.run(tmp_path, structures=str(shared_data / "structures" / "pdb" / "1aki.pdb"),
                         checkpoint=checkpoint, top_k=5, toy_model=True)
    assert plain.metrics is None and not RunDir(tmp_path).path("residue_metrics").exists()
    assert "precision_at_k" not in plain.results and plain.results["n_with_sites"] == 0


def test_command_line_help_lists_every_parameter():
    proc = subprocess.run([sys.executable, "-m", "protlab.residues", "--help"], capture_output=True, text=True,
                          cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    help_text = " ".join(proc.stdout.split())
    for p in STAGE.params:
        assert "--" + p.name.replace("_", "-") in help_text
    assert "--sites" in help_text and "--labels" in help_text
    assert "default: 'occlusion'" in help_text and "--run-dir" in help_text


def test_command_line_bad_value_exits_2_naming_it(tmp_path, capsys):
    assert STAGE.main(residues.run, ["--run-dir", str(tmp_path / "run"), "--epochs", "0"]) == 2
    assert "epochs=0" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_smallest_training_schedule_runs(tmp_path):
    """One epoch of one batch (the LR schedule's shortest): trains, records, no division by zero."""
    result = residues.run(tmp_path, epochs=1, n_families=2, members_per_family=2, length_range=[50, 60],
                                  hidden=8, batch_size=64, max_views=1)
    assert len(result.history) == 1 and np.isfinite(result.history[0]["loss"])


def test_sites_from_the_files_own_records_and_ligand_contacts(tmp_path, shared_data):
    from protlab.curate.structures import read_structure
    from protlab.residues.file_sites import file_site_indices, ligand_contact_residues, site_record_residues

    def atom(serial, name, res, chain, num, x, y, z, het=False, element="C"):
        return (f"{'HETATM' if het else 'ATOM  '}{serial:5d} {name:<4} {res:>3} {chain}{num:4d}    "
                f"{x:8.3f}{y:8.3f}{z:8.3f}  1.00  0.00          {element:>2}\n")

    lines = []
    for i in range(1, 6):  # five alanines 3.8 Å apart along x
        lines += [atom(2 * i - 1, "CA", "ALA", "A", i, 3.8 * i, 0, 0), atom(2 * i, "CB", "ALA", "A", i, 3.8 * i, 1.5, 0)]
    lig = [atom(20 + j, f"C{j}", "LIG", "B", 900, 7.6 + 0.3 * j, 4.0, 0, het=True) for j in range(6)]  # near 2
    gol = [atom(30 + j, f"C{j}", "GOL", "B", 901, 15.2 + 0.2 * j, 4.0, 0, het=True) for j in range(6)]  # near 4
    ion = [atom(40, "CL", "CL", "B", 902, 19.0, 3.0, 0, het=True, element="CL")]  # near 5
    small = [atom(50 + j, f"C{j}", "FRG", "B", 903, 3.8, -3.5 + 0.2 * j, 0, het=True) for j in range(3)]  # near 1
    (tmp_path / "mini.pdb").write_text("".join(lines + lig + gol + ion + small) + "END\n")
    mini = read_structure(tmp_path / "mini.pdb")
    assert ligand_contact_residues(mini) == {("A", "2"), ("A", "3")} and file_site_indices(mini) == [1, 2]
    # a real entry's SITE records are the ones the curated site table lists for it
    real = read_structure(shared_data / "structures" / "pdb" / "1k6p.pdb")
    table = residues.read_site_table(shared_data / "structures" / "site_records.tsv")
    keys = real.residue_keys()
    assert site_record_residues(real) == {keys[i] for i in residues.site_residues(real, table)}
    assert len(ligand_contact_residues(read_structure(shared_data / "structures" / "pdb" / "1GBT.cif"))) == 14


def test_mode_picks_the_workflow_and_refuses_what_it_does_not_read(tmp_path, shared_data):
    defaults = residues.STAGE.defaults()
    pdb = str(shared_data / "structures" / "pdb" / "1k6p.pdb")
    sites = str(shared_data / "structures" / "site_records.tsv")

    def pick(**params):
        return workflow_options({**defaults, **params}, defaults)

    mode, toy = pick()
    assert mode == "toy" and isinstance(toy, ToyTraining) and toy.epochs == 60
    mode, on_sites = pick(structures=pdb, sites=sites)
    assert mode == "sites" and isinstance(on_sites, FileTraining) and on_sites.table == sites
    assert on_sites.epochs == 30 and on_sites.test_fraction == defaults["test_fraction"]
    assert pick(structures=pdb, checkpoint=pdb)[0] == "explain"
    assert isinstance(pick(structures=pdb, checkpoint=pdb)[1], Explaining)
    assert pick(structures=pdb, toy_model=True)[0] == "toy"
    with pytest.raises(InputError, match=r"^split='s.tsv' is not used with mode='toy': it splits the structures"):
        pick(split="s.tsv")
    with pytest.raises(InputError, match=r"^bf16=True is not used with mode='explain'.*or choose another mode"):
        pick(mode="explain", checkpoint=pdb, bf16=True)
    with pytest.raises(InputError, match=r"mode='labels' learns a labels table of structure files"):
        pick(mode="labels", structures=pdb)
    with pytest.raises(InputError, match=r"mode='explain' explains with a saved model: give checkpoint=PATH"):
        pick(mode="explain")
    with pytest.raises(InputError, match=r"chain='A': training on sites reads every protein chain"):
        pick(structures=pdb, sites=sites, chain="A")
    with pytest.raises(InputError, match="sites and labels both given"):
        pick(structures=pdb, sites=sites, labels=sites)
    with pytest.raises(InputError, match=r"^mode=.*'auto', 'toy', 'sites', 'labels', 'explain'"):
        residues.run(tmp_path / "run", mode="cluster")


def test_a_labels_table_with_a_checkpoint_says_which_workflow_learns_it(shared_data):
    defaults = residues.STAGE.defaults()
    pdb = str(shared_data / "structures" / "pdb" / "1k6p.pdb")
    with pytest.raises(InputError, match=r"^labels='l.tsv' is not used with mode='explain': a labels table is learnt "
                                         r"by the labels workflow"):
        workflow_options({**defaults, "structures": pdb, "checkpoint": pdb, "labels": "l.tsv"}, defaults)

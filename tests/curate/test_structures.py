"""Structures through biotite: every real structure, chains, insertion codes, modified
residues, alternate locations, models, missing Cα, gzip, and bad input."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from protlab.curate.formats import read_proteins
from protlab.curate.structures import read_structure, read_structures
from protlab.core.errors import InputError, ParseError

NON_PROTEIN = {"4gxy.pdb"}  # an RNA riboswitch: no amino acids at all


def structure_files(shared: Path) -> list[Path]:
    folder = shared / "structures"
    return sorted((folder / "pdb").iterdir()) + sorted((folder / "pfam_domains").glob("*.pdb"))


def test_every_real_structure_loads(shared_data):
    files = structure_files(shared_data)
    assert len(files) == 53
    for path in files:
        if path.name in NON_PROTEIN:
            with pytest.raises(InputError, match="no protein chain"):
                read_structure(path)
            continue
        structure = read_structure(path)
        n = len(structure)
        assert n >= 20, path
        assert structure.ca.shape == (n, 3) and structure.centroid.shape == (n, 3)
        assert structure.ca.dtype == np.float32 and np.isfinite(structure.ca).all()
        assert len(structure.res_ids) == len(structure.ins_codes) == len(structure.res_names) == n
        assert set(structure.sequence) <= set("ACDEFGHIKLMNPQRSTVWYXBZUO"), path
        # consecutive residues of a chain are 3.8 Å apart (most of them: chain breaks exist)
        steps = np.linalg.norm(np.diff(structure.ca, axis=0), axis=1)
        assert abs(float(np.median(steps)) - 3.8) < 0.1, path
        assert structure.source == str(path)


def test_pfam_domain_structures_have_their_chain(shared_data):
    structures = read_structures(shared_data / "structures" / "pfam_domains")
    assert len(structures) == 20
    assert {s.chain for s in structures} == {"A"}
    assert structures[0].id == "PF00013_1WVN_A"


def test_lysozyme_sequence_and_glycine_centroid(shared_data):
    lysozyme = read_structure(shared_data / "structures" / "pdb" / "1aki.pdb")
    assert lysozyme.id == "1aki" and lysozyme.chain == "A" and len(lysozyme) == 129
    assert lysozyme.sequence.startswith("KVFGRCELAAAMKRHGLDNY")
    glycine = lysozyme.res_names == "GLY"
    assert glycine.any() and np.allclose(lysozyme.centroid[glycine], lysozyme.ca[glycine])
    others = ~glycine & (lysozyme.res_names != "ALA")
    distance = np.linalg.norm(lysozyme.centroid[others] - lysozyme.ca[others], axis=1)
    assert (distance > 1.0).all() and (distance < 7.0).all()


def test_chain_selection_and_unknown_chain(shared_data):
    path = shared_data / "structures" / "pdb" / "3SGB.pdb"
    assert read_structure(path).chain == "E"
    inhibitor = read_structure(path, chain="I")
    assert inhibitor.chain == "I" and inhibitor.sequence.startswith("DCSEYPKPACTLEYRPLCGSDNKTY")
    with pytest.raises(InputError) as caught:
        read_structure(path, chain="Z")
    assert str(path) in str(caught.value) and "E, I" in str(caught.value)


def test_insertion_codes_are_kept(shared_data):
    trypsin = read_structure(shared_data / "structures" / "pdb" / "1GBT.cif")
    labels = trypsin.residue_labels()
    assert [label for label in labels if not label[-1].isdigit()] == ["65A", "184A", "188A", "221A"]
    assert labels.index("184A") == labels.index("184") + 1


def test_modified_residues_map_to_their_parent(shared_data):
    mse = read_structure(shared_data / "structures" / "pdb" / "1A8O.pdb")
    is_mse = mse.res_names == "MSE"
    assert is_mse.sum() >= 4
    assert all(mse.sequence[i] == "M" for i in np.flatnonzero(is_mse))
    assert any("MSE->M" in note for note in mse.notes)
    hyp = read_structure(shared_data / "structures" / "pdb" / "1AS5.cif")
    assert all(hyp.sequence[i] == "P" for i in np.flatnonzero(hyp.res_names == "HYP"))


def test_alternate_locations_keep_one_position(shared_data):
    structure = read_structure(shared_data / "structures" / "pdb" / "3o5r.pdb")
    assert any("alternate locations" in note for note in structure.notes)
    labels = structure.residue_labels()
    assert len(labels) == len(set(labels))  # one entry per residue, not one per location
    assert not any("alternate" in note for note in
                   read_structure(shared_data / "structures" / "pdb" / "1aki.pdb").notes)


def test_models_default_to_the_first(shared_data):
    path = shared_data / "structures" / "pdb" / "1LCD.pdb"
    first, second = read_structure(path), read_structure(path, model=2)
    assert any("3 models" in note for note in first.notes)
    assert first.sequence == second.sequence and not np.allclose(first.ca, second.ca)
    assert np.allclose(read_structure(path, model=1).ca, first.ca)
    with pytest.raises(InputError, match="model=4 does not exist"):
        read_structure(path, model=4)


def test_residue_without_ca_is_dropped_with_a_note(shared_data):
    structure = read_structure(shared_data / "structures" / "pfam_domains" / "PF00041_1TEN_A.pdb")
    assert structure.residue_labels()[0] == "803"
    assert any("ARG802" in note and "without a CA" in note for note in structure.notes)


def test_gzipped_pdb_and_cif(shared_data, tmp_path):
    for name in ("1aki.pdb", "1GBT.cif"):
        source = shared_data / "structures" / "pdb" / name
        packed = tmp_path / f"{name}.gz"
        packed.write_bytes(gzip.compress(source.read_bytes()))
        plain, unpacked = read_structure(source), read_structure(packed)
        assert unpacked.sequence == plain.sequence and np.allclose(unpacked.ca, plain.ca)
        assert unpacked.id == plain.id


def test_read_structures_from_a_list(shared_data):
    folder = shared_data / "structures" / "pdb"
    structures = read_structures([folder / "1aki.pdb", folder / "1GBT.cif"])
    assert [s.id for s in structures] == ["1aki", "1GBT"]


ATOM = ("ATOM  {n:5d}  {atom:<3}{alt}{res} A{resid:4d}    {x:8.3f}{y:8.3f}{z:8.3f}{occ:6.2f}  0.00"
        "           {el}\n")


def atom_line(n, atom, resid, x, y=0.0, z=0.0, *, res="ALA", alt=" ", occ=1.0, el="C") -> str:
    return ATOM.format(n=n, atom=atom, alt=alt, res=res, resid=resid, x=x, y=y, z=z, occ=occ, el=el)


def tiny_pdb(coords_of_ca, *, res="ALA") -> str:
    lines = []
    for i, (x, y, z) in enumerate(coords_of_ca, 1):
        lines.append(atom_line(2 * i - 1, "N", i, x - 1.2, y, z, res=res, el="N"))
        lines.append(atom_line(2 * i, "CA", i, x, y, z, res=res))
    return "".join(lines) + "END\n"


def test_tiny_synthetic_pdb_and_nan_coordinates(tmp_path):
    good = tmp_path / "tiny.pdb"
    good.write_text(tiny_pdb([(0, 0, 0), (3.8, 0, 0), (7.6, 0, 0)]))
    structure = read_structure(good)
    assert structure.sequence == "AAA" and np.allclose(structure.ca[:, 0], [0, 3.8, 7.6], atol=1e-3)
    nan = tmp_path / "nan.pdb"
    nan.write_text(good.read_text().replace("   3.800", "     nan", 1))
    with pytest.raises(InputError, match="NaN"):
        read_structure(nan)


def test_alternate_location_with_the_highest_occupancy_wins(tmp_path):
    path = tmp_path / "alt.pdb"
    path.write_text(
        atom_line(1, "N", 1, -1.2, el="N") + atom_line(2, "CA", 1, 0.0)
        + atom_line(3, "N", 2, 2.6, alt="A", occ=0.3, el="N") + atom_line(4, "CA", 2, 3.8, alt="A", occ=0.3)
        + atom_line(5, "N", 2, 3.3, alt="B", occ=0.7, el="N") + atom_line(6, "CA", 2, 4.5, alt="B", occ=0.7)
        + "END\n")
    structure = read_structure(path)
    assert structure.residue_labels() == ["1", "2"]
    assert structure.ca[:, 0].tolist() == pytest.approx([0.0, 4.5])
    assert any("alternate locations" in note for note in structure.notes)


def test_bad_structure_input(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_structure(tmp_path / "missing.pdb")
    empty = tmp_path / "empty.pdb"
    empty.write_text("")
    with pytest.raises(ParseError, match="empty"):
        read_structure(empty)
    garbage = tmp_path / "garbage.cif"
    garbage.write_text("this is not\nan mmCIF file\n")
    with pytest.raises(ParseError) as caught:
        read_structure(garbage)
    assert str(garbage) in str(caught.value)
    water = tmp_path / "water.pdb"
    water.write_text("HETATM    1  O   HOH A   1       0.000   0.000   0.000  1.00  0.00           O\nEND\n")
    with pytest.raises(InputError, match="no protein chain"):
        read_structure(water)
    with pytest.raises(InputError, match="no structure files"):
        read_structures(_empty_dir(tmp_path))


def _empty_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "empty_dir"
    folder.mkdir()
    return folder


def test_read_proteins_from_mmcif(shared_data):
    frame = read_proteins(shared_data / "structures" / "pdb" / "1GBT.cif")
    assert frame.iloc[0]["id"] == "1GBT_A" and frame.iloc[0]["sequence"].startswith("IVGGYTCGANTVPY")

"""Protein chains from PDB and mmCIF files (``.pdb``, ``.ent``, ``.cif``, ``.mmcif``, each
optionally ``.gz``), parsed by biotite.

:func:`read_structure` returns one chain as a :class:`~protlab.curate.records.Structure`:

* **Chain**: ``chain`` is the author chain id; by default the first chain holding amino acids.
  A chain id that is not there, or a file without any protein chain, raises
  :class:`~protlab.core.errors.InputError` listing the chains.
* **Residues**: only amino-acid residues (by the Chemical Component Dictionary), so water,
  ligands and ions are excluded, but modified residues recorded as HETATM (MSE, SEP, ...) are
  kept. Author residue numbers and insertion codes are kept (``residue_labels()`` gives
  ``"52A"``). Residues without a Cα atom are dropped, with a note in ``Structure.notes``.
* **Sequence**: one letter per residue; modified residues map to their parent through the CCD
  (MSE→M, SEP→S, ...), anything unknown is ``X``.
* **Coordinates**: Cα, and the side-chain centroid (mean of the heavy atoms other than N, CA, C,
  O, OXT; the Cα for glycine or when the side chain is missing).
* **Alternate locations**: per residue, the location (A, B, ...) with the highest summed
  occupancy is kept, the alphabetically first on ties (biotite ``altloc="occupancy"``), so
  each residue has one position; noted when present.
* **Models**: NMR ensembles and other multi-model files give model ``model`` (1 by default);
  noted when the file has several. A model that does not exist raises InputError.
* NaN coordinates raise InputError; a file biotite cannot parse raises
  :class:`~protlab.core.errors.ParseError` naming it.
"""
from __future__ import annotations

import io
import re
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import numpy as np

from protlab.core.alphabet import STANDARD_THREE
from protlab.core.errors import InputError, ParseError, ProtlabError
from protlab.curate.records import Structure
from protlab.curate.textio import _format_from_content, open_text

STRUCTURE_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif")
_BACKBONE = frozenset(("N", "CA", "C", "O", "OXT"))
_HYDROGENS = frozenset(("H", "D"))
PDB_ID = re.compile(r"[0-9][A-Za-z0-9]{3}")


def read_structure(path: str | Path, *, chain: str | None = None, model: int = 1) -> Structure:
    """Read one protein chain (see the module docstring for every rule)."""
    path = Path(path)
    atoms, n_models, has_altlocs = load_atoms(path, model)
    notes: list[str] = []
    if n_models > 1:
        notes.append(f"{n_models} models in the file (e.g. an NMR ensemble): used model {model}")
    if has_altlocs:
        notes.append("alternate locations present: kept the highest-occupancy location per atom")
    if len(atoms) and np.isnan(atoms.coord).any():
        raise InputError(f"{path}: NaN atom coordinates; fix or remove those atoms")
    protein = atoms[_amino_acid_mask(atoms)]
    chains = list(dict.fromkeys(protein.chain_id.tolist()))
    if not chains:
        all_chains = sorted(set(atoms.chain_id.tolist()))
        raise InputError(f"{path}: no protein chain (no amino-acid residues) in model {model}; "
                         f"chains present: {all_chains or 'none'}")
    if chain is None:
        chain = chains[0]
    elif chain not in chains:
        raise InputError(f"{path}: no protein chain {chain!r}; available protein chains: "
                         f"{', '.join(chains)}")
    residues = protein[protein.chain_id == chain]
    return _chain_structure(path, chain, residues, notes)


def read_complex(path: str | Path, *, model: int = 1) -> Structure:
    """Every protein chain of a file as one structure (residues in file order, chain by chain);
    ``chain`` lists the chains ("A,B") and ``chain_ids`` gives each residue's chain."""
    path = Path(path)
    atoms, _, _ = load_atoms(path, model)
    protein = atoms[_amino_acid_mask(atoms)]
    chains = list(dict.fromkeys(protein.chain_id.tolist()))
    if not chains:
        raise InputError(f"{path}: no protein chain (no amino-acid residues) in model {model}")
    parts, notes = [], []
    for chain in chains:
        try:
            parts.append(_chain_structure(path, chain, protein[protein.chain_id == chain], notes))
        except InputError as err:  # a chain of residues without Cα: the other chains still count
            notes.append(str(err))
    if not parts:
        raise InputError(f"{path}: no protein chain has residues with a CA atom")
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
    return Structure(id=structure_id(path), chain=",".join(p.chain for p in parts), res_ids=cat("res_ids"),
                     ins_codes=cat("ins_codes"), res_names=cat("res_names"),
                     sequence="".join(p.sequence for p in parts), ca=cat("ca"), centroid=cat("centroid"),
                     source=str(path), notes=list(dict.fromkeys(notes)),
                     chain_ids=np.concatenate([[p.chain] * len(p) for p in parts]).astype(str))


def structure_paths(source: str | Path | Iterable[str | Path]) -> list[Path]:
    """The paths :func:`read_structures` reads: a file, every structure file in a directory
    (sorted; an error when there is none), or a list of files."""
    if not isinstance(source, (str, Path)):
        return [Path(p) for p in source]
    source = Path(source)
    if not source.is_dir():
        return [source]
    paths = sorted(p for p in source.iterdir() if p.is_file() and _is_structure_file(p))
    if not paths:
        raise InputError(f"{source}: no structure files ({', '.join(STRUCTURE_SUFFIXES)}, "
                         "optionally .gz) in this directory")
    return paths


def read_structures(source: str | Path | Iterable[str | Path], **options) -> list[Structure]:
    """Read a file, every structure file in a directory (sorted), or a list of files."""
    return [read_structure(p, **options) for p in structure_paths(source)]


def structure_id(path: str | Path) -> str:
    name = Path(path).name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    return Path(name).stem


def pdb_id(name: str) -> str:
    """The PDB id a structure's name holds (the first 4-character token starting with a digit,
    e.g. ``PF00013_1WVN_A`` → ``1WVN``), else its first token."""
    tokens = [t for t in re.split(r"[_\-.]", name) if t]
    return next((t for t in tokens if PDB_ID.fullmatch(t)), tokens[0] if tokens else name)


def _is_structure_file(path: Path) -> bool:
    name = path.name.lower().removesuffix(".gz")
    return name.endswith(STRUCTURE_SUFFIXES)


def _structure_kind(path: Path, text: str) -> str:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".cif", ".mmcif")):
        return "mmcif"
    if name.endswith((".pdb", ".ent")):
        return "pdb"
    kind = _format_from_content(text)
    if kind in ("pdb", "mmcif"):
        return kind
    raise InputError(f"{path}: not a PDB or mmCIF file (use .pdb/.ent/.cif/.mmcif, optionally .gz)")


def load_atoms(path: Path, model: int):
    """(AtomArray of ``model``, number of models, whether alternate locations occur)."""
    with open_text(path) as handle:
        text = handle.read()
    if not text.strip():
        raise ParseError(path, "file is empty; nothing to read")
    kind = _structure_kind(path, text)
    lines = text.splitlines()
    last = next((i for i in range(len(lines), 0, -1) if lines[i - 1].strip()), 1)
    if kind == "pdb":  # an ATOM/HETATM line without its coordinates: the file was cut there
        for number, line in enumerate(lines, 1):
            if line.startswith(("ATOM  ", "HETATM")) and len(line.rstrip()) < 54:
                raise ParseError(path, f"{line[:6].strip()} record cut short before its coordinates "
                                       "(truncated file?)", line=number)
    ends = f"the file ends at line {last} ({lines[last - 1][:40].strip()!r}): truncated?" if lines else ""

    from biotite.structure.io import pdb, pdbx

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if kind == "pdb":
                parsed = pdb.PDBFile.read(io.StringIO(text))
                n_models = parsed.get_model_count()
                _check_model(path, model, n_models)
                atoms = parsed.get_structure(model=model, altloc="occupancy")
                has_altlocs = any(len(line) > 16 and line[16] != " " for line in parsed.lines
                                  if line.startswith(("ATOM", "HETATM")))
            else:
                parsed = pdbx.CIFFile.read(io.StringIO(text))
                n_models = pdbx.get_model_count(parsed)
                _check_model(path, model, n_models)
                atoms = pdbx.get_structure(parsed, model=model, altloc="occupancy",
                                           use_author_fields=True)
                alt = parsed.block["atom_site"]["label_alt_id"].as_array(str)
                has_altlocs = bool(np.any((alt != ".") & (alt != "?") & (alt != "")))
    except ParseError as err:
        if "no atoms" in err.reason and ends:
            raise ParseError(path, f"{err.reason}; {ends}", line=last) from None
        raise
    except ProtlabError:
        raise
    except Exception as err:  # biotite's errors for files it cannot parse
        raise ParseError(path, f"cannot parse as {kind}: {type(err).__name__}: {err}; {ends}", line=last) from None
    return atoms, n_models, has_altlocs


def _check_model(path: Path, model: int, n_models: int) -> None:
    if n_models == 0:
        raise ParseError(path, "no atoms (no ATOM/HETATM records or atom_site rows)")
    if not 1 <= model <= n_models:
        raise InputError(f"{path}: model={model} does not exist; the file has {n_models} "
                         f"model(s), numbered from 1")


def _amino_acid_mask(atoms) -> np.ndarray:
    names = atoms.res_name
    unique = np.unique(names)
    keep = {name for name in unique.tolist() if _is_amino_acid(name)}
    return np.isin(names, list(keep)) if keep else np.zeros(len(atoms), dtype=bool)


def _is_amino_acid(res_name: str) -> bool:
    return res_name in _amino_acid_names()


@lru_cache(maxsize=1)
def _amino_acid_names() -> frozenset[str]:
    from biotite.structure import info

    return frozenset(info.amino_acid_names())


@lru_cache(maxsize=None)
def _one_letter(res_name: str) -> str:
    from biotite.structure import info

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            code = info.one_letter_code(res_name)
        except Exception:
            code = None
    return code.upper() if code and len(code) == 1 and code.isalpha() else "X"


def _chain_structure(path: Path, chain: str, atoms, notes: list[str]) -> Structure:
    from biotite.structure import get_residue_starts

    starts = get_residue_starts(atoms)
    ends = np.append(starts[1:], len(atoms))
    res_ids, ins_codes, res_names, letters, ca, centroid = [], [], [], [], [], []
    missing_ca: list[str] = []
    modified: dict[str, str] = {}
    names = atoms.atom_name
    is_ca = names == "CA"
    is_side = ~np.isin(names, list(_BACKBONE)) & ~np.isin(atoms.element, list(_HYDROGENS))
    for start, end in zip(starts.tolist(), ends.tolist()):
        res_name = str(atoms.res_name[start])
        label = f"{atoms.res_id[start]}{atoms.ins_code[start]}"
        ca_rows = np.flatnonzero(is_ca[start:end])
        if ca_rows.size == 0:
            missing_ca.append(f"{res_name}{label}")
            continue
        ca_xyz = atoms.coord[start + ca_rows[0]]
        side = start + np.flatnonzero(is_side[start:end])
        res_ids.append(int(atoms.res_id[start]))
        ins_codes.append(str(atoms.ins_code[start]))
        res_names.append(res_name)
        letter = _one_letter(res_name)
        if res_name not in STANDARD_THREE:
            modified[res_name] = letter
        letters.append(letter)
        ca.append(ca_xyz)
        centroid.append(atoms.coord[side].mean(axis=0) if side.size else ca_xyz)
    if missing_ca:
        shown = ", ".join(missing_ca[:10]) + (" ..." if len(missing_ca) > 10 else "")
        notes.append(f"dropped {len(missing_ca)} residue(s) without a CA atom: {shown}")
    if modified:
        notes.append("non-standard residues mapped: " +
                     ", ".join(f"{name}->{letter}" for name, letter in sorted(modified.items())))
    if not letters:
        raise InputError(f"{path}: chain {chain!r} has no residue with a CA atom")
    return Structure(
        id=structure_id(path), chain=chain, res_ids=np.asarray(res_ids, dtype=int),
        ins_codes=np.asarray(ins_codes, dtype=str), res_names=np.asarray(res_names, dtype=str),
        sequence="".join(letters), ca=np.asarray(ca, dtype=np.float32),
        centroid=np.asarray(centroid, dtype=np.float32), source=str(path), notes=notes)




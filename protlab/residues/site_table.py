"""Known site residues from a table: which residues of which structure are functional sites.

:func:`read_site_table` accepts, recognised by their columns:

* ligand-binding residues as in ``binding_sites_primary.tsv`` (``pdb_id`` and/or ``file``,
  ``chain``, ``res_num``, ``ins_code``);
* SITE records as protlab writes them (``file``, ``resname``, ``chain``, ``resnum``, ``icode``);
* the Catalytic Site Atlas CSV (``PDB ID``, ``CHAIN ID``, ``RESIDUE NUMBER``).

Each becomes ``{structure key: {(chain, residue number + insertion code), …}}``; a structure
matches by its file name (without suffixes) or its 4-character PDB id, case-insensitive.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from protlab.core.alphabet import MODIFIED_THREE, STANDARD_THREE
from protlab.core.errors import InputError
from protlab.curate.records import Structure
from protlab.curate.structures import pdb_id, structure_id

# (structure columns, chain, number, insertion code): first match wins
FORMATS = {
    "binding sites": (("file", "pdb_id"), "chain", "res_num", "ins_code"),
    "SITE records": (("file",), "chain", "resnum", "icode"),
    "Catalytic Site Atlas": (("PDB ID",), "CHAIN ID", "RESIDUE NUMBER", None),
}
SiteTable = dict[str, set[tuple[str, str]]]
_AMINO = STANDARD_THREE | MODIFIED_THREE


def _key(value: str) -> str:
    return structure_id(str(value)).lower()


def read_site_table(path: str | Path) -> SiteTable:
    """Site residues per structure key (see the module docstring for the formats)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"sites={str(path)!r} is not a file: give a TSV/CSV of site residues")
    sep = "," if path.suffix.lower() == ".csv" else "\t"
    frame = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    for name, (ids, chain, number, icode) in FORMATS.items():
        present = [c for c in ids if c in frame.columns]
        if present and chain in frame.columns and number in frame.columns:
            break
    else:
        raise InputError(f"{path}: columns {list(frame.columns)} are not a site table; expected one of: " +
                         "; ".join(f"{n}: {', '.join(dict.fromkeys((*ids, ch, num) + ((ic,) if ic else ())))}"
                                   for n, (ids, ch, num, ic) in FORMATS.items()))
    names = next((c for c in ("resname", "res_name", "RESIDUE TYPE") if c in frame.columns), None)
    if names is not None:  # SITE records also name waters and ligands: keep amino acids
        frame = frame[frame[names].str.upper().isin(_AMINO)].reset_index(drop=True)
    numbers = frame[number].str.strip()
    bad = ~numbers.str.fullmatch(r"-?\d+")
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise InputError(f"{path}: row {row + 1}: residue number {frame[number].iloc[row]!r} in column "
                         f"{number!r} is not an integer")
    labels = numbers + (frame[icode].str.strip() if icode and icode in frame.columns else "")
    table: SiteTable = {}
    for column in present:  # index each row under every structure name it gives
        for key, chain_id, label in zip(frame[column].map(_key), frame[chain].str.strip(), labels):
            table.setdefault(key, set()).add((chain_id, label))
    if not table:
        raise InputError(f"{path}: no site residues ({name} format, no rows)")
    return table


def site_residues(structure: Structure, table: SiteTable) -> list[int] | None:
    """0-based indices of ``structure``'s residues in ``table``; None when the table does not
    name the structure (by file name, or by the PDB id its name holds)."""
    names = [structure.id.lower()]
    if structure.source:
        names.append(_key(structure.source))
    names.append(pdb_id(structure.id).lower())
    for name in names:
        if name in table:
            wanted = table[name]
            return [i for i, key in enumerate(structure.residue_keys()) if key in wanted]
    return None

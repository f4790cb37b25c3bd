"""A protein's residue attribution on its structure: a 3D page and files for molecular viewers."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from protlab.core.atomic import atomic_write_text
from protlab.core.errors import InputError
from protlab.core.rundir import RunDir
from protlab.plot.structure_export import write_structure_exports
from protlab.plot.view3d import residue_values_html, view_stem
from protlab.variants.structure import map_structure

LABEL = "residue attribution of 04's clustering network"


def export_attribution(run_dir: str | Path, protein_id: str, structure: str | Path, *,
                       chain: str | None = None) -> dict[str, Path]:
    """``figures/attribution_<id>.html`` (the structure coloured by the protein's attribution)
    and beside it a PDB with the attribution as B-factors and PyMOL / ChimeraX scripts. The
    structure's chain (named, or the best-aligning one) must be this protein (see
    :func:`protlab.variants.structure.map_structure`)."""
    run = RunDir(run_dir)
    table = run.read_parquet(run.require("attribution"), "attribution")
    rows = table[table["id"].astype(str) == str(protein_id)].sort_values("position")
    if rows.empty:
        raise InputError(f"{run.path('attribution')} has no residue of protein {protein_id!r} "
                         f"(it holds {table['id'].nunique()} proteins)")
    sequence = "".join(rows["residue"].astype(str))
    mapped = map_structure(structure, sequence, chain=chain)
    values = mapped.on_structure(rows["attribution"].to_numpy(dtype=float))
    stem = run.figure(view_stem(protein_id, prefix="attribution_"))
    page = residue_values_html(mapped.structure, values, low="against its cluster", high="for its cluster",
                               title=f"{LABEL}: {protein_id} (chain {mapped.structure.chain}, "
                                     f"{int(np.isfinite(values).sum())} residues mapped)")
    return {"html": atomic_write_text(stem.with_suffix(".html"), page),
            **write_structure_exports(mapped.structure, values, stem, label=LABEL)}

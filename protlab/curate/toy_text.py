"""Toy family vocabularies and the noisy UniProt-style text descriptions of their members."""
from __future__ import annotations

import numpy as np

from protlab.curate.sampling import build_text
from protlab.curate.toy_types import ToyFamily

# Family vocabularies: (protein names, function sentence, location, similarity family).
_VOCAB = [
    (("Serine hydrolase", "Esterase", "Carboxylesterase"),
     "Hydrolyzes ester bonds of short-chain lipids using a catalytic serine.",
     "Cytoplasm", "serine hydrolase"),
    (("Protein kinase", "Serine/threonine-protein kinase", "Phosphotransferase"),
     "Catalyzes phosphorylation of substrate proteins on serine and threonine residues.",
     "Nucleus", "protein kinase"),
    (("ABC transporter ATP-binding protein", "Transport ATPase", "ATP-binding cassette protein"),
     "Couples ATP hydrolysis to the import of sugars across the membrane.",
     "Cell membrane", "ABC transporter"),
    (("Zinc finger protein", "Zinc-binding transcription factor", "C2H2 zinc finger"),
     "Binds DNA in a zinc-dependent manner and activates transcription.",
     "Nucleus", "krueppel C2H2-type zinc-finger protein"),
    (("Alcohol dehydrogenase", "Oxidoreductase", "NAD-dependent dehydrogenase"),
     "Oxidizes primary alcohols to aldehydes using NAD as cofactor.",
     "Mitochondrion", "zinc-containing alcohol dehydrogenase"),
    (("Methyltransferase", "SAM-dependent methyltransferase", "O-methyltransferase"),
     "Transfers a methyl group from S-adenosyl-L-methionine to small-molecule acceptors.",
     "Cytoplasm", "class I-like SAM-binding methyltransferase superfamily"),
    (("Trypsin-like protease", "Serine protease", "Endopeptidase"),
     "Cleaves peptide bonds after basic residues in secreted substrates.",
     "Secreted", "peptidase S1"),
    (("Heat shock protein", "Molecular chaperone", "Chaperonin"),
     "Assists folding of newly synthesized polypeptides and prevents aggregation.",
     "Cytoplasm", "heat shock protein 70"),
    (("Lipid-binding protein", "Fatty acid-binding protein", "Lipocalin"),
     "Binds long-chain fatty acids and transports them to the nucleus.",
     "Secreted", "calycin superfamily"),
    (("Potassium channel", "Voltage-gated ion channel", "K+ channel subunit"),
     "Mediates voltage-dependent potassium ion permeability of excitable membranes.",
     "Cell membrane", "potassium channel"),
    (("Glycosyltransferase", "Glucosyltransferase", "UDP-glycosyltransferase"),
     "Transfers glucose from UDP-glucose to acceptor molecules.",
     "Endoplasmic reticulum membrane", "glycosyltransferase 2"),
    (("Ferredoxin", "Iron-sulfur protein", "2Fe-2S ferredoxin"),
     "Transfers electrons in photosynthetic and metabolic redox reactions.",
     "Plastid, chloroplast", "2Fe2S plant-type ferredoxin"),
]
_SHORT_NAMES = ("hydrolase", "kinase", "abc_atpase", "zinc_finger", "dehydrogenase", "methyltransferase",
                "protease", "chaperone", "lipocalin", "k_channel", "glycosyltransferase", "ferredoxin")
_LOCATIONS = sorted({v[2] for v in _VOCAB})
_FUNCTION_PREFIX = ("", "", "Probably ", "Putative: ")
_EXISTENCE_P = (0.3, 0.3, 0.2, 0.1, 0.1)   # protein existence levels 1..5
_DROP_P = {"protein_name": 0.03, "function": 0.25, "subcellular_location": 0.25, "similarity": 0.15}
_CONFUSION_P = 0.05                          # description borrowed from another family


def _make_family_names(index: int) -> tuple[str, dict]:
    names, function, location, similarity = _VOCAB[index % len(_VOCAB)]
    round_ = index // len(_VOCAB)
    short = _SHORT_NAMES[index % len(_VOCAB)]
    name = f"F{index:02d}_{short}" if round_ == 0 else f"F{index:02d}_{short}{round_ + 1}"
    vocab = {"names": names, "function": function, "location": location,
             "similarity": similarity + (f" subfamily {round_ + 1}" if round_ else "")}
    return name, vocab


def _make_text(fam: ToyFamily, families: list[ToyFamily], rng: np.random.Generator) -> dict:
    source = fam
    if len(families) > 1 and rng.random() < _CONFUSION_P:
        others = [f for f in families if f.index != fam.index]
        source = others[int(rng.integers(len(others)))]
    vocab = source.vocabulary
    name = vocab["names"][int(rng.integers(len(vocab["names"])))]
    if rng.random() < 0.2:
        name = f"{name} {int(rng.integers(1, 10))}"
    prefix = _FUNCTION_PREFIX[int(rng.integers(len(_FUNCTION_PREFIX)))]
    function = prefix + (vocab["function"][0].lower() + vocab["function"][1:] if prefix else vocab["function"])
    location = vocab["location"] if rng.random() > 0.1 else _LOCATIONS[int(rng.integers(len(_LOCATIONS)))]
    similarity = f"Belongs to the {vocab['similarity']} family."
    fields = {"protein_name": name, "function": function, "subcellular_location": location,
              "similarity": similarity}
    for key, p in _DROP_P.items():
        if rng.random() < p:
            fields[key] = None
    existence = int(rng.choice(5, p=_EXISTENCE_P)) + 1
    return {**fields, "text": build_text(fields), "existence": existence}

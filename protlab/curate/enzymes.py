"""Protein–text pairs from enzyme tables: each enzyme's text from its EC numbers.

Inputs are two tables: an enzyme table with the columns
``Entry``, ``EC number`` (one or several EC numbers joined by ``;``) and ``Sequence``
(CLEAN's ``split10`` / ``new-392``), and ProtST's EC descriptions (``EC_number``, ENZYME
``name``, ``alter_name`` and ``comment``, and the class / subclass / sub-subclass names
``hier1`` .. ``hier3``). An EC number's text is its description where the table has it (name,
other names, comment), else the names of its level-3 class (``Lyases. Carbon-oxygen lyases.
Hydro-lyases.``) taken from any described EC of that class, else nothing. An enzyme's text
joins the distinct texts of its EC numbers, in the order listed; its label is its first EC
number, cut to ``label_level`` (4: the full number, 3: its sub-subclass).

:func:`enzyme_pairs` returns the pairs as a table with the columns 01 reads (``id``,
``sequence``, ``label``, ``text``), plus ``ec`` (every EC number) and ``text_source``;
:func:`write_pairs` writes it as a TSV for ``python -m protlab.curate --source pairs.tsv``;
``python -m protlab.curate.enzymes TABLE DESCRIPTIONS OUT.tsv`` does both.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from protlab.core.atomic import atomic_path
from protlab.core.errors import InputError

TABLE_COLUMNS = ("Entry", "EC number", "Sequence")
DESCRIPTION_COLUMNS = ("EC_number", "name", "alter_name", "comment", "hier1", "hier2", "hier3")


def _read(path: str | Path, columns: tuple[str, ...]) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist")
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: no column(s) {missing}; the columns are {list(frame.columns)}")
    return frame


def _sentences(*parts: str) -> str:
    """Non-blank parts, each ending with a full stop, joined by spaces."""
    parts = [" ".join(p.split()) for p in parts]
    return " ".join(p if p.endswith(".") else p + "." for p in parts if p)


def level(ec: str, depth: int) -> str:
    """``"3.5.2.6"`` → ``"3.5.2"`` at depth 3 (the number itself at 4)."""
    return ".".join(ec.split(".")[:depth])


def ec_texts(descriptions: str | Path) -> tuple[dict[str, str], dict[str, str]]:
    """``(by_ec, by_class)``: the description of every described EC number and the names of
    every level-3 class that has one."""
    table = _read(descriptions, DESCRIPTION_COLUMNS)
    by_ec, by_class = {}, {}
    for row in table.itertuples(index=False):
        ec = row.EC_number.strip()
        by_ec[ec] = _sentences(row.name, row.alter_name, row.comment)
        by_class.setdefault(level(ec, 3), _sentences(row.hier1, row.hier2, row.hier3))
    return by_ec, by_class


def ec_text(ec: str, by_ec: dict[str, str], by_class: dict[str, str]) -> tuple[str | None, str | None]:
    """``(text, source)`` of one EC number; source ``"description"``, ``"class"`` or None."""
    if by_ec.get(ec):
        return by_ec[ec], "description"
    if by_class.get(level(ec, 3)):
        return by_class[level(ec, 3)], "class"
    return None, None


def enzyme_pairs(table: str | Path, descriptions: str | Path, *, label_level: int = 4,
                 keep_untexted: bool = False) -> pd.DataFrame:
    """The enzymes of ``table`` with texts from ``descriptions`` (module docstring).

    Enzymes none of whose EC numbers has a text are left out unless ``keep_untexted``
    (their ``text`` is then None). ``frame.attrs["coverage"]`` holds the share of enzymes
    with a text, and with a description.
    """
    if label_level not in (1, 2, 3, 4):
        raise InputError(f"label_level={label_level!r}: an EC level, 1 to 4")
    by_ec, by_class = ec_texts(descriptions)
    enzymes = _read(table, TABLE_COLUMNS)
    rows = []
    columns = zip(enzymes["Entry"], enzymes["EC number"], enzymes["Sequence"])
    for number, (entry, ec_numbers, sequence) in enumerate(columns, 2):  # line 1 is the header
        entry, sequence = entry.strip(), sequence.strip()
        ecs = [e.strip() for e in ec_numbers.split(";") if e.strip()]
        if not entry or not sequence or not ecs:
            blank = "Entry" if not entry else "Sequence" if not sequence else "EC number"
            raise InputError(f"{table}, line {number}: empty {blank!r}" + (f" (entry {entry!r})" if entry else ""))
        found = [ec_text(ec, by_ec, by_class) for ec in ecs]
        texts = list(dict.fromkeys(t for t, _ in found if t))
        sources = [s for _, s in found if s]
        rows.append({"id": entry, "sequence": sequence, "label": level(ecs[0], label_level),
                     "text": " ".join(texts) or None, "ec": ";".join(ecs),
                     "text_source": ("description" if "description" in sources else sources[0]) if sources else None})
    pairs = pd.DataFrame(rows, columns=["id", "sequence", "label", "text", "ec", "text_source"])
    coverage = {"enzymes": len(pairs), "with_text": float(pairs["text"].notna().mean()) if len(pairs) else 0.0,
                "with_description": float((pairs["text_source"] == "description").mean()) if len(pairs) else 0.0}
    if not keep_untexted:
        pairs = pairs[pairs["text"].notna()].reset_index(drop=True)
    pairs.attrs["coverage"] = coverage
    return pairs


def write_pairs(pairs: pd.DataFrame, path: str | Path) -> Path:
    """``pairs`` as a TSV (atomically) that 01 reads with its default columns."""
    with atomic_path(path) as tmp:
        pairs.to_csv(tmp, sep="\t", index=False)
    return Path(path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m protlab.curate.enzymes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("table", help="enzymes: Entry, EC number, Sequence (TSV)")
    parser.add_argument("descriptions", help="EC descriptions: EC_number, name, alter_name, comment, hier1-3 (TSV)")
    parser.add_argument("out", help="the pairs TSV to write (id, sequence, label, text, ec, text_source)")
    parser.add_argument("--label-level", type=int, default=4, help="EC level of the label (default: 4)")
    args = parser.parse_args(argv)
    pairs = enzyme_pairs(args.table, args.descriptions, label_level=args.label_level)
    write_pairs(pairs, args.out)
    cover = pairs.attrs["coverage"]
    print(f"{len(pairs)} of {cover['enzymes']} enzymes have a text ({cover['with_text']:.1%}; "
          f"{cover['with_description']:.1%} from a description) -> {args.out}")


if __name__ == "__main__":
    main()

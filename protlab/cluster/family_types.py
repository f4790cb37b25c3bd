"""The family algorithm's constants (:class:`FamilyConfig`), its result
(:class:`FamilyPartition`) and the small label helpers its passes share."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import numpy as np
import scipy.sparse as sp

from protlab.core.errors import InputError


@dataclass(frozen=True)
class FamilyConfig:
    """The family algorithm's constants (the module docstring says where each acts). A run
    may set any of them (04's ``family_config`` parameter); ``clusters/families.json``
    records the values used."""

    shared_neighbors: int = 3        # top-k neighbours an edge's two proteins must share to keep it
    merge_ratio: float = 0.02        # hits between two pieces per member of the smaller, to merge them ...
    merge_hits: int = 3              # ... and never on fewer hits than this (a stray hit or two)
    min_family: int = 20             # smallest group counted as a family (1 % of the proteins in small sets,
                                     # at least 5) ...
    min_family_share: float = 1e-4   # ... or this share of all proteins, whichever is larger
    split_spectral_max: int = 20_000  # a family split in two by its spectral coordinate up to this size ...
    split_smoothing: int = 10        # ... above it by its embeddings smoothed over its subgraph this many steps
    longer: float = 1.25             # a community this much longer (median length) than the rest of its piece
                                     # is its own family; a protein without homology fits a family whose
                                     # median length is within this factor
    join_below: int = 1000           # groups of at most this many members are joined where one's profile ...
    join_share: float = 0.5          # ... finds this share of the other's members ...
    join_evalue: float = 1e-3        # ... at this E-value (a sparsely sampled family in groups no hit joins)
    profile_seeds: int = 5           # members per family (the best connected of its largest pieces) whose
                                     # profiles ...
    profile_iterations: int = 3      # ... (built in this many search rounds) place the proteins hits do not
                                     # lead to a family ...
    profile_evalue: float = 1.0      # ... when a profile finds them at this E-value (among those few proteins)
    part_share: float = 0.1          # fitting to fewer families: a family sending this share of its hits to
                                     # another is a part of it (the parts of one diverse family send a large
                                     # share, families of one clan a small one) and merges first

    @classmethod
    def from_dict(cls, values: dict | None) -> "FamilyConfig":
        """A config with ``values`` set; an unknown name or a non-positive value is refused by name."""
        values = dict(values or {})
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise InputError(f"family_config: unknown key(s) {unknown}; allowed: {sorted(known)}")
        out = {}
        for name, value in values.items():
            kind = type(getattr(cls(), name))
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0 or \
                    (kind is int and float(value) != int(value)):
                raise InputError(f"family_config[{name!r}]={value!r} is not allowed: use a positive "
                                 f"{'integer' if kind is int else 'number'}")
            out[name] = kind(value)
        return cls(**out)

    def as_dict(self) -> dict:
        return asdict(self)


DEFAULT = FamilyConfig()


def min_family_size(n: int, config: FamilyConfig = DEFAULT) -> int:
    return int(max(5, min(config.min_family, n // 100), round(config.min_family_share * n)))


@dataclass
class FamilyPartition:
    """``labels`` (0..n_families-1, largest family first) and how they were found."""

    labels: np.ndarray
    n_estimated: int                      # families counted before fitting to n_clusters (parts of one once)
    group_sizes: np.ndarray               # sizes of the merged groups, largest first (the evidence)
    min_size: int                         # the size a group needed to count
    info: dict = field(default_factory=dict)


def one_hot(labels: np.ndarray, m: int | None = None) -> sp.csr_matrix:
    m = int(labels.max()) + 1 if m is None else m
    return sp.csr_matrix((np.ones(len(labels), dtype=np.float64), (np.arange(len(labels)), labels)),
                         shape=(len(labels), m))


def relabel(labels: np.ndarray) -> np.ndarray:
    return np.unique(labels, return_inverse=True)[1].astype(np.int64)

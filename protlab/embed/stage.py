"""Stage 02: one vector per protein, with the chosen encoder.

``run(run_dir, **params)`` embeds every protein of ``proteins.parquet`` (k-mer TF-IDF +
SVD, or ESM-2 through :mod:`protlab.embed.encoders` with a resumable cache), writes
``embeddings.npy`` + ``embeddings.json``, measures how often nearest neighbours share a
label, draws the UMAP map and writes ``embed.json``. Under ``torchrun`` every rank embeds
a shard; rank 0 writes (``torchrun --nproc-per-node 4 -m protlab.embed --run-dir RUN
--encoder esm2_t33_650M_UR50D``).
"""
from __future__ import annotations

from pathlib import Path

from protlab.core.fingerprint import proteins_fingerprint
from protlab.core.rundir import RunDir
from protlab.core.runtime import check_device, dist_env, seed_everything
from protlab.core.stage import MAX_SEED, Param, Stage, StageRecord, StageResult, map_points, writable_dir
from protlab.embed.encoders import embed_proteins, neighbour_label_agreement
from protlab.embed.kmer import KMER_DIM
from protlab.plot.embed import UMAP_NEIGHBORS, umap_figure
from protlab.plot.export import save_figure

STAGE = Stage("embed", "02_embed", "Embed every protein of run_dir/proteins.parquet into run_dir/embeddings.npy.", (
    Param("encoder", "kmer", "'kmer', an ESM-2 name (esm2_t6_8M_UR50D, ...), a .pt / Hugging Face dir / "
          "protlab checkpoint path, or 'tiny' (random weights, for tests)", "str"),
    Param("repr_layer", None, "ESM layer to pool (None: the last; negative counts from the end)", "int", none=True),
    Param("toks_per_batch", None, "ESM padded tokens per batch (None: the device's default)", "int", low=3,
          none=True),
    Param("device", "auto", "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'", "str", check=check_device),
    Param("cache_dir", None, "ESM embedding cache (None: run_dir/cache/embeddings)", "str", none=True,
          check=writable_dir),
    Param("kmer_dim", KMER_DIM, "SVD components of the k-mer encoder", "int", low=1),
    Param("umap_neighbors", UMAP_NEIGHBORS, "UMAP neighbours of the map", "int", low=2),
    Param("umap_max_points", 5000, "the map shows a seeded subset of at most this many proteins (bounded time at "
          "any scale); 0: no map", "int", low=0, check=map_points),
    Param("seed", 0, "random seed", "int", low=0, high=MAX_SEED),
))


def summary_line(results: dict, timings: dict) -> str:
    """The command line's closing line: the embeddings' shape and encoder."""
    agreement = results.get("neighbour_label_agreement") or {}
    return (f"{results.get('n_proteins')} x {results.get('dim')} embeddings from {results.get('encoder')}"
            + (f"; {agreement['top1']:.1%} of nearest neighbours share the label" if "top1" in agreement else "")
            + (f"; {results['kmer_dim_capped']}" if results.get("kmer_dim_capped") else "")
            + f"; {timings.get('total', 0):.0f} s")


def run(run_dir: str | Path, **params) -> StageResult | None:
    params = STAGE.validate(params)
    p = params
    record = StageRecord(STAGE, run_dir, params)
    run_ = RunDir(run_dir)
    seed_everything(p["seed"])
    proteins = run_.load_proteins_checked()
    record.read(run_.path("proteins"))
    labels = proteins["label"] if "label" in proteins.columns else None
    print(f"{len(proteins)} proteins, {labels.nunique() if labels is not None else 0} labels, lengths "
          f"{proteins['sequence'].str.len().min()}-{proteins['sequence'].str.len().max()}")
    if Path(p["encoder"]).exists():
        record.read(p["encoder"])
    with record.timed("embed"):
        ids, embeddings, meta = embed_proteins(
            proteins, p["encoder"], cache_dir=p["cache_dir"] or run_.path("embedding_cache"),
            repr_layer=p["repr_layer"], toks_per_batch=p["toks_per_batch"], device=p["device"], dim=p["kmer_dim"],
            seed=p["seed"])
    if embeddings is None:  # a non-zero torchrun rank: its shard is in the cache, rank 0 writes
        return None
    if meta.get("dim_capped_by"):  # the SVD has at most proteins - 1 and distinct k-mers - 1 components
        capped = f"kmer_dim {meta['requested_dim']} capped to {meta['dim']} by the data ({meta['dim_capped_by']})"
        print(capped)
        record.resolve(kmer_dim=meta["dim"])
        record.results["kmer_dim_capped"] = capped
    record.wrote(run_.save_embeddings(ids, embeddings, **meta,
                                      proteins_sha256=proteins_fingerprint(proteins["id"].astype(str),
                                                                           proteins["sequence"])))
    record.wrote(run_.path("embeddings_meta"))
    agreement = neighbour_label_agreement(embeddings, labels, k=10) if labels is not None else None
    figures = {}
    if p["umap_max_points"]:
        with record.timed("umap"):
            figures["umap"] = umap_figure(embeddings, labels=labels, ids=ids, seed=p["seed"],
                                          n_neighbors=p["umap_neighbors"], max_points=p["umap_max_points"],
                                          title=f"Embeddings: {meta['encoder']}")
            for path in save_figure(figures["umap"], run_.figure("embeddings_umap")).values():
                record.wrote(path)
    record.resolve(cache_dir=str(p["cache_dir"] or run_.path("embedding_cache")),
                   **{key: meta[source] for key, source in (("repr_layer", "layer"), ("toks_per_batch", "toks_per_batch"),
                                                            ("device", "device")) if meta.get(source) is not None})
    record.results.update(n_proteins=len(ids), dim=int(embeddings.shape[1]), encoder=meta["encoder"],
                          neighbour_label_agreement=agreement)
    if dist_env().is_main:
        record.save()
    return StageResult(record, figures, ids=ids, embeddings=embeddings, meta=meta, agreement=agreement)


run.__doc__ = STAGE.docstring()

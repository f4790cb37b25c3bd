"""Stage 02 · embeddings (notebook ``02_embed``): one encoder interface over k-mer TF-IDF + SVD
and ESM-2 (fused attention, length-sorted batches, windows for long proteins, a resumable
on-disk cache, torchrun sharding)."""
from protlab.embed.cache import EmbeddingCache
from protlab.embed.encoders import embed_proteins, get_encoder, neighbour_label_agreement
from protlab.embed.esm_encoder import ESMEncoder
from protlab.embed.kmer import KmerEncoder
from protlab.embed.stage import STAGE, run

__all__ = ["run", "STAGE", "get_encoder", "embed_proteins", "ESMEncoder", "KmerEncoder", "EmbeddingCache",
           "neighbour_label_agreement"]

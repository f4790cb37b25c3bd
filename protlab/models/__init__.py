"""Protein encoders: ESM-2 loading/saving (protein), the k-mer baseline (kmer)."""

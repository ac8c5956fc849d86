"""make bench-compress: what int8 compression buys and costs, on the demo models, in one run.

- The demo sentiment classifier (MiniLM-L6 fine-tuned on SST-2) and its int8 form as Steward makes it
  (inference/ml/compression.py: int8 weights per output channel, activations per token), each read
  the 872 sentences of the SST-2 dev set: S is the source's median time for one sentence alone over
  the compressed version's (one torch thread, both interleaved so that they share the machine's
  drift), D the change of accuracy in points.
- Beside it, torch's own dynamic quantisation (`quantize_dynamic`: one activation scale per call) on
  the same model: its accuracy, its speed, and how many labels change between batches of 1 and 32
  (a served answer that depends on the batch it fell in).
- The demo assistant (SmolLM2-135M): perplexity on 100 held-out sentences, source against Steward's
  int8 and against `quantize_dynamic`, and greedy decoding speed.

Prints last: `compress: sentiment int8 speedup = S, accuracy delta = D points`.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, machine, write_section

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-of-sufficient-length-0123456789")
TEXTS = int(os.environ.get("BENCH_COMPRESS_TEXTS", "100"))


def sst2_dev() -> tuple[list[str], list[int]]:
    lines = (ROOT / "data" / "sst2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    pairs = [line.split("\t", 1) for line in lines]
    return [text for _, text in pairs], [int(label) for label, _ in pairs]


def torch_dynamic(model):
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    return quantize_dynamic(model, qconfig_spec={torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8,
                            inplace=False)


def batch_flips(model, tokenizer, texts: list[str]) -> int:
    import torch

    def labels(size: int) -> list[int]:
        found: list[int] = []
        with torch.inference_mode():
            for start in range(0, len(texts), size):
                batch = tokenizer(texts[start:start + size], padding=True, truncation=True, max_length=128,
                                  return_tensors="pt")
                found += model(**batch).logits.argmax(dim=1).tolist()
        return found

    return sum(a != b for a, b in zip(labels(1), labels(32), strict=True))


def main() -> None:
    import django

    django.setup()
    import torch
    from django.conf import settings
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    from inference.ml import compression
    from inference.ml.demos import ASSISTANT, SENTIMENT, build_cached

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="bench-compress-"))
    try:
        # -- the classifier
        folder, _ = build_cached(SENTIMENT, lambda *a: None, settings.BUILD_CACHE_DIR)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        source = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        compression.save(compression.compress(source), folder, work / "sentiment")
        served = compression.load(work / "sentiment", AutoModelForSequenceClassification)
        texts, labels = sst2_dev()
        ours = compression.measure_classifier(source, served, tokenizer, texts, labels, latency_rows=len(texts))
        theirs = compression.measure_classifier(source, torch_dynamic(source), tokenizer, texts, labels,
                                                latency_rows=len(texts))
        flips_ours = batch_flips(served, tokenizer, texts)
        flips_theirs = batch_flips(torch_dynamic(source), tokenizer, texts)
        print(f"sentiment, {len(texts)} SST-2 dev sentences, 1 torch thread:")
        print(f"  source         accuracy {ours['source_accuracy']:.4f}, one sentence {ours['latency_ms']['source']:.2f} ms,"
              f" {ours['rows_per_second']['source']:.0f} rows/s in batches of 32,"
              f" {compression.folder_bytes(folder) / 2**20:.1f} MiB")
        print(f"  steward int8   accuracy {ours['compressed_accuracy']:.4f} ({ours['accuracy_delta_points']:+.2f} points),"
              f" one sentence {ours['latency_ms']['compressed']:.2f} ms (x{ours['speedup']:.2f}),"
              f" {ours['rows_per_second']['compressed']:.0f} rows/s, labels agree {ours['label_agreement']:.2%},"
              f" {flips_ours} labels change between batches of 1 and 32,"
              f" {compression.folder_bytes(work / 'sentiment') / 2**20:.1f} MiB")
        print(f"  torch dynamic  accuracy {theirs['compressed_accuracy']:.4f} ({theirs['accuracy_delta_points']:+.2f} points),"
              f" one sentence {theirs['latency_ms']['compressed']:.2f} ms (x{theirs['speedup']:.2f}),"
              f" {flips_theirs} labels change between batches of 1 and 32")
        # -- the generative model
        folder, _ = build_cached(ASSISTANT, lambda *a: None, settings.BUILD_CACHE_DIR)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        source = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        compression.save(compression.compress(source), folder, work / "assistant")
        served = compression.load(work / "assistant", AutoModelForCausalLM)
        sentences = [line.strip() for line in (ROOT / "data" / "uci_sentences" / "heldout.txt").read_text(
            encoding="utf-8").splitlines() if line.strip()][:TEXTS]
        began = time.perf_counter()
        generative = compression.measure_generative(source, served, tokenizer, sentences, prompts=20)
        dynamic = compression.measure_generative(source, torch_dynamic(source), tokenizer, sentences, prompts=0)
        print(f"assistant, {len(sentences)} held-out sentences ({generative['tokens']} tokens), 1 torch thread"
              f" ({time.perf_counter() - began:.0f} s):")
        print(f"  perplexity source {generative['source_perplexity']:.2f}, steward int8"
              f" {generative['compressed_perplexity']:.2f} (x{generative['perplexity_ratio']:.2f}), torch dynamic"
              f" {dynamic['compressed_perplexity']:.2f} (x{dynamic['perplexity_ratio']:.2f})")
        print(f"  steward int8: {generative['greedy_agreement']:.1%} of the source's greedy tokens predicted alike"
              f" ({generative['prompts']} prompts x {generative['new_tokens']} tokens), greedy decoding"
              f" {generative['tokens_per_second']['compressed']:.1f} against {generative['tokens_per_second']['source']:.1f}"
              f" tokens/s (x{generative['speedup']:.2f})")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    line = (f"compress: sentiment int8 speedup = {ours['speedup']:.2f}, "
            f"accuracy delta = {ours['accuracy_delta_points']:+.2f} points")
    write_section("bench-compress", "\n".join([
        f"Machine: {machine()}; one torch thread; `make bench-compress`.",
        "",
        "| | accuracy (SST-2 dev, 872) | one sentence, median | labels changed, batch 1 vs 32 |",
        "|---|---|---|---|",
        f"| source (float32) | {ours['source_accuracy']:.4f} | {ours['latency_ms']['source']:.2f} ms | - |",
        f"| Steward int8 (per-token activations) | {ours['compressed_accuracy']:.4f} | {ours['latency_ms']['compressed']:.2f} ms | {flips_ours} |",
        f"| torch quantize_dynamic (per-call activations) | {theirs['compressed_accuracy']:.4f} | {theirs['latency_ms']['compressed']:.2f} ms | {flips_theirs} |",
        "",
        f"Assistant (SmolLM2-135M), {len(sentences)} held-out sentences: perplexity {generative['source_perplexity']:.2f} "
        f"float32, {generative['compressed_perplexity']:.2f} Steward int8 (x{generative['perplexity_ratio']:.2f}), "
        f"{dynamic['compressed_perplexity']:.2f} torch quantize_dynamic (x{dynamic['perplexity_ratio']:.2f}); "
        f"greedy agreement {generative['greedy_agreement']:.1%}; greedy decoding x{generative['speedup']:.2f}.",
        "",
        f"`{line}`",
    ]))
    print(line)


if __name__ == "__main__":
    main()

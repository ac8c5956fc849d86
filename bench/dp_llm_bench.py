"""make bench-dp-llm: private LoRA fine-tuning of the demo assistant against the same run without privacy.

The demo assistant (SmolLM2-135M-Instruct) gets LoRA adapters (rank 8 on q_proj and v_proj, the base
frozen) trained on real people's text messages (data/sms/ham.txt: TRAIN records) for EPOCHS epochs at
an expected batch of BATCH, learning rate 2e-3 (AdamW):
- dp: DP-SGD at epsilon 8 (delta 1e-4), Poisson sampling, book-keeping clipping at norm 1.0, Opacus's
  noise and accountant (inference/ml/private_lm.py: what a fine-tuning job runs);
- non-dp: the same adapters, the same number of steps of the same batch size, shuffled, no clipping, no noise.
Each arm runs in a process of its own (one torch thread), so that its peak memory is its own.
T: mean seconds a step, dp / non-dp; M: the process's peak resident memory, dp / non-dp; P: perplexity
on HELD held-out messages, dp / non-dp (the base's printed beside).

Prints last: `dp-llm: step time dp/non-dp = T, memory dp/non-dp = M, perplexity dp/non-dp = P at eps 8`.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, machine, write_section

TRAIN = int(os.environ.get("BENCH_DP_LLM_TRAIN", "160"))
HELD = int(os.environ.get("BENCH_DP_LLM_HELD", "200"))
EPOCHS = int(os.environ.get("BENCH_DP_LLM_EPOCHS", "2"))
BATCH = int(os.environ.get("BENCH_DP_LLM_BATCH", "16"))
EPSILON, DELTA, LR = 8.0, 1e-4, 2e-3


def arm(name: str) -> dict:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-of-sufficient-length-0123456789")
    import django

    django.setup()
    import torch
    from django.conf import settings
    from transformers import AutoTokenizer

    from inference.ml import dp_accounting, private_lm
    from inference.ml.demos import ASSISTANT, build_cached
    from inference.ml.language_models import load_causal_lm

    torch.set_num_threads(1)
    folder, _ = build_cached(ASSISTANT, lambda *a: None, settings.BUILD_CACHE_DIR)
    texts = [line for line in (ROOT / "data" / "sms" / "ham.txt").read_text(encoding="utf-8").splitlines() if line]
    train, held = texts[:TRAIN], texts[-HELD:]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = private_lm.with_adapters(load_causal_lm(folder), private_lm.ADAPTER_DEFAULTS)
    base = private_lm.perplexity(model, tokenizer, held) if name == "non-dp" else None
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    plan = dp_accounting.plan_run(target_epsilon=EPSILON, target_delta=DELTA, rows=len(train), epochs=EPOCHS,
                                  batch_size=BATCH, learning_rate=LR, max_grad_norm=1.0)
    began = time.perf_counter()
    if name == "dp":
        outcome = private_lm.train_private(model, tokenizer, train, plan, seed=0)
    else:
        outcome = private_lm.train_plain(model, tokenizer, train, steps=plan.steps, batch_size=BATCH,
                                         learning_rate=LR, seed=0)
    seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"arm": name, "steps": outcome.steps, "step_seconds": seconds / max(outcome.steps, 1),
            "peak_kib": peak, "loaded_kib": loaded, "epsilon": outcome.epsilon if name == "dp" else None,
            "noise_multiplier": plan.noise_multiplier, "perplexity": private_lm.perplexity(model, tokenizer, held),
            "base_perplexity": base}


def main() -> None:
    results = {}
    for name in ("non-dp", "dp"):
        done = subprocess.run([sys.executable, __file__, "--arm", name], check=True, capture_output=True, text=True,
                              env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                                   "OMP_NUM_THREADS": "1"})
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{name}: {results[name]}", flush=True)
    dp, plain = results["dp"], results["non-dp"]
    t = dp["step_seconds"] / plain["step_seconds"]
    m = dp["peak_kib"] / plain["peak_kib"]
    p = dp["perplexity"] / plain["perplexity"]
    grown = ((dp["peak_kib"] - dp["loaded_kib"]) / 1024, (plain["peak_kib"] - plain["loaded_kib"]) / 1024)
    line = f"dp-llm: step time dp/non-dp = {t:.2f}, memory dp/non-dp = {m:.2f}, perplexity dp/non-dp = {p:.2f} at eps 8"
    write_section("bench-dp-llm", "\n".join([
        f"Machine: {machine()}; one torch thread a process; `make bench-dp-llm`.",
        "",
        f"SmolLM2-135M-Instruct, LoRA rank 8 on q_proj and v_proj ({TRAIN} SMS messages, {EPOCHS} epochs, expected "
        f"batch {BATCH}, {dp['steps']} steps, AdamW at {LR:g}); DP-SGD at epsilon {dp['epsilon']:.2f} (delta {DELTA:g}, "
        f"noise multiplier {dp['noise_multiplier']:.3f}, clipping 1.0, book-keeping) against the same run without privacy.",
        "",
        "| | s a step | peak memory | grown in training | held-out perplexity |",
        "|---|---|---|---|---|",
        f"| base (no fine-tuning) | | | | {plain['base_perplexity']:.2f} |",
        f"| non-private | {plain['step_seconds']:.2f} | {plain['peak_kib'] / 1024:.0f} MiB | {grown[1]:.0f} MiB | {plain['perplexity']:.2f} |",
        f"| private (eps 8) | {dp['step_seconds']:.2f} | {dp['peak_kib'] / 1024:.0f} MiB | {grown[0]:.0f} MiB | {dp['perplexity']:.2f} |",
        "",
        f"`{line}`",
    ]))
    print(f"base perplexity {plain['base_perplexity']:.2f}; memory grown in training: dp {grown[0]:.0f} MiB, "
          f"non-dp {grown[1]:.0f} MiB")
    print(line)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--arm":
        print(json.dumps(arm(sys.argv[2])))
    else:
        main()

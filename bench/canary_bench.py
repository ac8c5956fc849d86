"""make bench-canary: what private LoRA fine-tuning lets out of single records, measured with canaries.

The demo assistant (SmolLM2-135M-Instruct) gets LoRA adapters (rank 8 on q_proj and v_proj, the base
frozen) fine-tuned on TRAIN real text messages (data/sms/ham.txt) with CANARIES secret canaries
("My account number is 281 946 307.", 10^9 possible secrets) inserted once each, for EPOCHS epochs at an
expected batch of BATCH, AdamW at LR: what a canary audit job runs (inference/ml/canaries.py `run`),
with the same code:
- private: DP-SGD at epsilon 8 (delta DELTA), Poisson sampling, book-keeping clipping at norm 1.0;
- non-private: the same adapters, steps and batch size, no clipping, no noise.
Each canary's exposure (Carlini et al. 2019) is measured against REFERENCES secrets never inserted (the
rank extrapolated by a skew-normal fit, as the paper does); the figure is the mean over the canaries,
with the base model's (before fine-tuning) as the baseline of a model that learnt nothing, and the bound
epsilon implies for a canary inserted once (inference/ml/canaries.exposure_bound).

Prints last: `canary: exposure non-private = A bits, private eps 8 = B bits`.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, machine, write_section

TRAIN = int(os.environ.get("BENCH_CANARY_TRAIN", "64"))
CANARIES = int(os.environ.get("BENCH_CANARY_CANARIES", "8"))
REFERENCES = int(os.environ.get("BENCH_CANARY_REFERENCES", "500"))
EPOCHS = int(os.environ.get("BENCH_CANARY_EPOCHS", "8"))
BATCH = int(os.environ.get("BENCH_CANARY_BATCH", "16"))
EPSILON, DELTA, LR = 8.0, 1e-5, 2e-3


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-of-sufficient-length-0123456789")
    import django

    django.setup()
    import torch
    from django.conf import settings
    from transformers import AutoTokenizer

    from inference.ml import canaries, dp_accounting, private_lm
    from inference.ml.demos import ASSISTANT, build_cached
    from inference.ml.language_models import load_causal_lm

    torch.set_num_threads(1)  # as the generation worker trains (settings.GENERATION_THREADS here)
    folder, _ = build_cached(ASSISTANT, lambda *a: None, settings.BUILD_CACHE_DIR)
    texts = [line for line in (ROOT / "data" / "sms" / "ham.txt").read_text(encoding="utf-8").splitlines() if line]
    train = texts[:TRAIN]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    space = canaries.Space()
    secrets = space.draw(CANARIES)
    references = space.draw(REFERENCES, avoid=set(secrets))
    request = dp_accounting.plan_run(target_epsilon=EPSILON, target_delta=DELTA, rows=TRAIN, epochs=EPOCHS,
                                     batch_size=BATCH, learning_rate=LR, max_grad_norm=1.0)
    plan = canaries.audit_plan(request, TRAIN + CANARIES)
    began = time.perf_counter()

    def stage(name: str) -> None:
        print(f"{time.perf_counter() - began:7.1f} s  {name}", flush=True)

    found = canaries.run(lambda: load_causal_lm(folder), tokenizer, train, plan, private_lm.ADAPTER_DEFAULTS, space,
                         secrets, references, insertions=1, compare=True, seed=0, runs=canaries.Runs(stage=stage))
    assert found is not None
    base, private, plain = found["base"], found["private"], found["non_private"]
    a, b = plain["mean_exposure"], private["mean_exposure"]
    line = f"canary: exposure non-private = {a:.2f} bits, private eps 8 = {b:.2f} bits"
    rows = [f"| `{c['secret']}` | {base['canaries'][i]['exposure']:.2f} | {private['canaries'][i]['exposure']:.2f} | "
            f"{plain['canaries'][i]['exposure']:.2f} |" for i, c in enumerate(private["canaries"])]
    verdict = ("met" if b <= found["bound"] and a - b >= 5 else "NOT met")
    write_section("bench-canary", "\n".join([
        f"Machine: {machine()}; one torch thread; `make bench-canary`.",
        "",
        f"SmolLM2-135M-Instruct, LoRA rank 8 on q_proj and v_proj; {TRAIN} SMS messages and {CANARIES} canaries "
        f"(\"{canaries.FORMATS[space.format]}\", 10^{space.digits} secrets, {space.bits:.1f} bits) inserted once "
        f"each; {EPOCHS} epochs at an expected batch of {BATCH} ({plan.steps} steps, AdamW at {LR:g}). Private: "
        f"DP-SGD at epsilon {private['epsilon']:.2f} (delta {DELTA:g}, noise multiplier {plan.noise_multiplier:.3f}, "
        f"clipping 1.0, book-keeping). Exposure against {REFERENCES} reference secrets (skew-normal extrapolation; "
        f"counting alone resolves {found['counted_resolution_bits']:.1f} bits).",
        "",
        "| | mean exposure (bits) | largest | mean, counted | training |",
        "|---|---|---|---|---|",
        f"| base (before fine-tuning) | {base['mean_exposure']:.2f} | {base['max_exposure']:.2f} | "
        f"{base['mean_exposure_counted']:.2f} | |",
        f"| private (eps {private['epsilon']:.2f}) | {b:.2f} | {private['max_exposure']:.2f} | "
        f"{private['mean_exposure_counted']:.2f} | {private['seconds']:.0f} s, final loss {private['final_loss']:.3f} |",
        f"| non-private | {a:.2f} | {plain['max_exposure']:.2f} | {plain['mean_exposure_counted']:.2f} | "
        f"{plain['seconds']:.0f} s, final loss {plain['final_loss']:.3f} |",
        f"| bound from epsilon (once) | {found['bound']:.2f} | | | |",
        "",
        "| canary | base | private | non-private |",
        "|---|---|---|---|",
        *rows,
        "",
        f"Goal (B at most the bound and well below A): {verdict}.",
        "",
        f"`{line}`",
    ]))
    print(f"base {base['mean_exposure']:.2f} bits; bound at epsilon {private['epsilon']:.2f}, one insertion: "
          f"{found['bound']:.2f} bits of {found['space_bits']:.1f}; goal {verdict}")
    print(line)


if __name__ == "__main__":
    main()

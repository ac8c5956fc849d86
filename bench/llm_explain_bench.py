"""make bench-llm-explain: attributions for generated text, against the model alone and against exact values.

One run, one machine, the demo `assistant` (SmolLM2-135M, float32, one torch thread as the generation
worker has), short chat prompts whose messages have few enough tokens for exact Shapley values:
- steward/floor: the time Steward's explainer (inference/ml/completion_explain.py, what the generation
  worker runs) takes for exact values of the whole answer's log-probability, over the time the model
  alone takes to score the same masked rows (every coalition, the same sequences) at its best batch
  size with a plain forward pass: the cost of the explainer around the model;
- spearman vs exact: the rank correlation of the Partition explainer's values at a budget of a quarter
  of the coalitions with the exact values, per prompt, averaged.

Prints last: `llm-explain: steward/floor = F, spearman vs exact = S`.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import write_section

THREADS = int(os.environ.get("GENERATION_THREADS", "1"))
PROMPTS = [
    "Repeat this word: banana",
    "What is the capital of France?",
    "Name a fruit that is yellow.",
    "Which animal says moo?",
    "Say the word elephant.",
    "Is fire hot or cold?",
]


def floor_seconds(generator, sequences, positions, span) -> tuple[float, int]:
    """The model alone scoring `sequences` (the masked rows), its best batch size: a plain forward of every
    row (no shared prefix), the logits of the span's positions only, their log-softmax."""
    import numpy as np
    import torch

    best, best_batch = float("inf"), 0
    keep = sequences.shape[1] - int(positions[0])
    target = torch.as_tensor(np.asarray(span)).view(1, -1, 1)
    for batch in (8, 16, 32, 64):
        began = time.perf_counter()
        with torch.inference_mode():
            for start in range(0, len(sequences), batch):
                rows = torch.as_tensor(sequences[start:start + batch])
                logits = generator.plain(input_ids=rows, logits_to_keep=keep).logits[:, : len(span)].float()
                torch.log_softmax(logits, dim=-1).gather(-1, target.expand(len(rows), -1, 1)).sum()
        took = time.perf_counter() - began
        if took < best:
            best, best_batch = took, batch
    return best, best_batch


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    import numpy as np
    import torch
    from django.conf import settings
    from scipy.stats import spearmanr
    from transformers import AutoModelForCausalLM

    from inference.ml.completion_explain import SpanScorer, explain_span, target_of
    from inference.ml.demos import ASSISTANT, build_cached
    from inference.ml.generation import Generator, Sampling

    torch.set_num_threads(THREADS)
    folder, _ = build_cached(ASSISTANT, lambda *a: None, settings.BUILD_CACHE_DIR)
    generator = Generator(folder, "cpu")
    generator.plain = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    rows, ratios, correlations = [], [], []
    for content in PROMPTS:
        messages = [{"role": "user", "content": content}]
        answer = generator.generate(generator.chat_ids(messages), Sampling(max_tokens=12, temperature=0)).text
        target = target_of(generator, kind="chat", prompt=messages, answer=answer, start=0, end=len(answer))
        k = target.message_end - target.message_start
        explain_span(generator, target, content, max_evals=2 ** k, seed=1)  # warm
        began = time.perf_counter()
        exact = explain_span(generator, target, content, max_evals=2 ** k, seed=1)
        steward = time.perf_counter() - began
        # the same rows the exact values needed: every coalition of the message's tokens
        scorer = SpanScorer(generator, target)
        message = np.asarray(target.prompt_ids[target.message_start:target.message_end])
        filler = generator.tokenizer("...", add_special_tokens=False)["input_ids"][0]
        masks = (np.arange(2 ** k)[:, None] >> np.arange(k)[None, :]) & 1 == 1
        sequences = scorer.sequences(np.where(masks, message[None, :], filler))
        floor, batch = floor_seconds(generator, sequences, scorer.positions, scorer.span)
        sampled = explain_span(generator, target, content, max_evals=max(16, 2 ** k // 4), seed=1)
        rho = float(spearmanr([v[0] for v in exact.values], [v[0] for v in sampled.values]).statistic)
        ratios.append(steward / floor)
        correlations.append(rho)
        top = max(exact.words, key=lambda w: w["value"])["word"]
        rows.append(f"| {content} | {answer.strip()[:40]} | {k} | {2 ** k} | {steward:.2f} | {floor:.2f} (batch {batch}) | "
                    f"{steward / floor:.2f} | {sampled.evaluations} | {rho:.3f} | {top} | {exact.residual:.1e} |")
        print(rows[-1], flush=True)
    generator.close()
    f = statistics.fmean(ratios)
    s = statistics.fmean(correlations)
    table = f"""
`assistant` (SmolLM2-135M-Instruct, float32), torch threads {THREADS}, the whole greedy answer (max 12 tokens)
explained over the message's tokens. Steward: exact Shapley values (every coalition), the prompt's template
prefix run once per batch and shared; floor: the model alone, the same 2^k rows, plain forward,
best batch. Partition: SHAP's Owen values at a quarter of the coalitions (at least 16), same seed.

| message | answer | tokens k | rows 2^k | Steward s | floor s | steward/floor | partition evals | Spearman vs exact | top word | residual |
|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Means: steward/floor {f:.2f}, Spearman {s:.3f}. Goals: F <= 1.3, S >= 0.9.
"""
    write_section("bench-llm-explain", table)
    print(table)
    print(f"llm-explain: steward/floor = {f:.2f}, spearman vs exact = {s:.2f}")


if __name__ == "__main__":
    main()

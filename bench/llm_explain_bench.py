"""make bench-llm-explain: attributions for generated text, against the model alone and against exact values.

One run, one machine, the demo `assistant` (SmolLM2-135M, float32, one torch thread as the generation
worker has), short chat prompts whose messages have few enough tokens for exact Shapley values:
- steward/floor: the time Steward's explainer (inference/ml/completion_explain.py, what the generation
  worker runs) takes for exact values of the whole answer's log-probability, over the time the model
  alone takes to score the same masked rows (every coalition, the same sequences) at its best batch
  size with a plain forward pass: the cost of the explainer around the model;
- spearman vs exact: the rank correlation of the values Steward gives at its default budget with exact
  Shapley values computed here independently (the floor's plain forward over every coalition, then the
  Shapley formula), per prompt, averaged; beside it, the Partition explainer at a quarter of the
  coalitions, what a message too long for exact values gets.

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


def independent_exact(generator, sequences, positions, span, k: int):
    """Exact Shapley values from the model alone: the span's log-probability for every coalition (plain
    forward, no shared prefix), then phi_i = sum over S without i of |S|!(k-|S|-1)!/k! (f(S+i) - f(S))."""
    import math

    import numpy as np
    import torch

    keep = sequences.shape[1] - int(positions[0])
    target = torch.as_tensor(np.asarray(span)).view(1, -1, 1)
    scores = []
    with torch.inference_mode():
        for start in range(0, len(sequences), 32):
            rows = torch.as_tensor(sequences[start:start + 32])
            logits = generator.plain(input_ids=rows, logits_to_keep=keep).logits[:, : len(span)].float()
            picked = torch.log_softmax(logits, dim=-1).gather(-1, target.expand(len(rows), -1, 1))
            scores.extend(picked.squeeze(-1).sum(-1).double().tolist())
    f = np.asarray(scores)
    values = np.zeros(k)
    for mask in range(2 ** k):
        size = bin(mask).count("1")
        for i in range(k):
            if not mask >> i & 1:
                weight = math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
                values[i] += weight * (f[mask | 1 << i] - f[mask])
    return values


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
    rows, ratios, correlations, quarters = [], [], [], []
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
        reference = independent_exact(generator, sequences, scorer.positions, scorer.span, k)
        served = explain_span(generator, target, content, max_evals=settings.EXPLAIN_DEFAULT_EVALS, seed=1)
        mine = [v[0] for v in served.values]
        rho = float(spearmanr(mine, reference).statistic)
        apart = float(np.max(np.abs(np.asarray(mine) - reference)))
        sampled = explain_span(generator, target, content, max_evals=max(16, 2 ** k // 4), seed=1)
        rho_quarter = float(spearmanr([v[0] for v in sampled.values], reference).statistic)
        ratios.append(steward / floor)
        correlations.append(rho)
        quarters.append(rho_quarter)
        top = max(exact.words, key=lambda w: w["value"])["word"]
        rows.append(f"| {content} | {answer.strip()[:40]} | {k} | {2 ** k} | {steward:.2f} | {floor:.2f} (batch {batch}) | "
                    f"{steward / floor:.2f} | {served.method} | {rho:.3f} | {apart:.1e} | {sampled.evaluations} | "
                    f"{rho_quarter:.3f} | {top} | {exact.residual:.1e} |")
        print(rows[-1], flush=True)
    generator.close()
    f = statistics.fmean(ratios)
    s = statistics.fmean(correlations)
    table = f"""
`assistant` (SmolLM2-135M-Instruct, float32), torch threads {THREADS}, the whole greedy answer (max 12 tokens)
explained over the message's tokens. Steward: exact Shapley values (every coalition), the prompt's template
prefix run once per batch and shared; floor: the model alone, the same 2^k rows, plain forward,
best batch. Exact here: the floor's scores of every coalition through the Shapley formula, computed in the
bench (not by Steward or SHAP). Steward at its default budget ({settings.EXPLAIN_DEFAULT_EVALS}) against it: method,
Spearman, largest |difference|. Partition: SHAP's Owen values at a quarter of the coalitions (at least 16),
same seed, against the same exact values (what a message too long for exact values gets).

| message | answer | tokens k | rows 2^k | Steward s | floor s | steward/floor | Steward method | Spearman vs exact | max abs diff | quarter evals | quarter Spearman | top word | residual |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Means: steward/floor {f:.2f}, Spearman {s:.3f} (at a quarter of the coalitions: {statistics.fmean(quarters):.3f}).
Goals: F <= 1.3, S >= 0.9.
"""
    write_section("bench-llm-explain", table)
    print(table)
    print(f"llm-explain: steward/floor = {f:.2f}, spearman vs exact = {s:.2f}")


if __name__ == "__main__":
    main()

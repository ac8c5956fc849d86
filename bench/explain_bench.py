"""bench-explain: SHAP explanations of 20 SST-2 dev sentences with the demo `sentiment` model.

(a) the usual way: shap.Explainer(transformers pipeline) with its defaults (Partition, max_evals 500,
    the pipeline scoring masked strings one row at a time); (b) Steward's TextExplainer at the same
    budget, Partition forced so that both run the same algorithm (token ids straight to the model,
    up to 64 masked variants per forward pass, each distinct one once); (c) the floor: the model alone on exactly the rows (b)
    evaluated, at its best batch size. Both explainers are warmed up first (shap compiles with numba
    on first use). (b) and (c) are each the median of three runs taken in turn (ours, floor, ours,
    floor...), so that a slow spell of a shared machine does not land on one side only; the floor's
    batch size is the fastest of a first pass over five sizes.
Prints last: `explain: steward/stock time = R, steward/floor = F, spearman vs stock = S`.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.common import machine, write_section

SENTENCES, BUDGET, REPEATS = 20, 500, 3


def main() -> None:
    import shap
    import torch
    import transformers
    from scipy.stats import spearmanr

    from inference.ml.demos import DATA, SENTIMENT, build_cached, default_cache_dir
    from inference.ml.explain import TextExplainer
    from inference.ml.predictors import TextClassifier
    from inference.ml.training import read_sst2

    folder, _ = build_cached(SENTIMENT, lambda *a: None, default_cache_dir())
    device = "cuda" if torch.cuda.is_available() else "cpu"
    texts = [t for t, _ in read_sst2(DATA / "sst2" / "dev.tsv")[:SENTENCES]]
    predictor = TextClassifier()
    predictor.load(folder, device)
    predictor.half = False
    predictor.model.float()
    ours = TextExplainer(predictor)
    recorded: list[np.ndarray] = []
    inner = ours.model.fn
    ours.model.fn = lambda ids: (recorded.append(np.asarray(ids)), inner(ids))[1]
    pipe = transformers.pipeline("text-classification", model=predictor.model, tokenizer=predictor.tokenizer,
                                 top_k=None, device=predictor.model.device)
    stock = shap.Explainer(pipe)
    stock(texts[:1], silent=True)
    ours.explain(texts[0], max_evals=BUDGET, method="partition")
    recorded.clear()

    began = time.perf_counter()
    stock_values = stock(texts, max_evals=BUDGET, silent=True)
    stock_seconds = time.perf_counter() - began
    began = time.perf_counter()
    our_values = [ours.explain(t, max_evals=BUDGET, method="partition") for t in texts]
    our_times = [time.perf_counter() - began]
    rows = [r for batch in recorded for r in batch]

    def floor_at(size: int) -> float:
        began = time.perf_counter()
        i = 0
        while i < len(rows):  # rows of one length together: the model's cost, no padding
            j = i
            while j < len(rows) and j - i < size and len(rows[j]) == len(rows[i]):
                j += 1
            predictor.proba_from_ids(np.stack(rows[i:j]))
            i = j
        return time.perf_counter() - began

    floors = {size: floor_at(size) for size in (16, 32, 64, 128, 256)}
    best = min(floors, key=floors.__getitem__)
    floor_times = [floor_at(best)]
    for _ in range(REPEATS - 1):  # interleaved, so that a slow spell of the machine hits both alike
        began = time.perf_counter()
        for t in texts:
            ours.explain(t, max_evals=BUDGET, method="partition")
        our_times.append(time.perf_counter() - began)
        floor_times.append(floor_at(best))
    our_seconds, floor = statistics.median(our_times), statistics.median(floor_times)
    correlations = []
    for a, b in zip(stock_values, our_values, strict=True):
        label = b.labels.index(b.label)
        correlations.append(spearmanr(np.asarray(a.values)[:, label], np.asarray(b.values)[:, label]).statistic)
    spearman = float(np.mean(correlations))
    residual = max(e.residual for e in our_values)
    table = f"""
{machine()}, device {device}. {SENTENCES} SST-2 dev sentences, budget max_evals = {BUDGET}, Partition explainer.

| way | time | rows evaluated |
|---|---|---|
| stock: shap.Explainer(transformers pipeline), defaults | {stock_seconds:.1f} s | |
| Steward's TextExplainer (median of {REPEATS}) | {our_seconds:.1f} s | {len(rows):,} |
| floor: the model alone on those rows, best batch size ({best}; median of {REPEATS}) | {floor:.1f} s | {len(rows):,} |

steward/stock = {our_seconds / stock_seconds:.3f} (goal <= 0.33); steward/floor = {our_seconds / floor:.3f}
(goal <= 1.15); Spearman of the explained label's attributions vs stock, mean over sentences = {spearman:.3f}
(min {min(correlations):.3f}; goal >= 0.95); largest residual |base + sum - f(x)| = {residual:.1e}.
"""
    write_section("bench-explain" if device == "cpu" else "bench-explain-gpu", table)
    print(table)
    print(f"explain: steward/stock time = {our_seconds / stock_seconds:.3f}, steward/floor = {our_seconds / floor:.3f}, "
          f"spearman vs stock = {spearman:.3f}")


if __name__ == "__main__":
    main()

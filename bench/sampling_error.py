"""bench-explain-sampling: how far sampled SHAP values lie from exact ones on a model of 20 features.

Steward computes exact values up to 12 features (every coalition) and samples beyond (shap's
Permutation explainer, seeded). This measures the sampling error where exact values are still
within reach: a small MLP over 20 numeric features (ONNX, as users register them) with a
background of 20 rows; exact interventional Shapley values over all 2^20 coalitions (the same
enumeration as Steward's exact path, inference.ml.explain.shapley_exact, in chunks), against
Steward's TabularExplainer at several budgets, for 5 rows.

Prints last: `explain-sampling: relative error at 500 evaluations = E (mean |sampled - exact| / mean |exact|), at 2000 = F`.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine, write_section

FEATURES, BACKGROUND, ROWS, BUDGETS, SEEDS = 20, 20, 5, (123, 500, 2000), (1, 2, 3)


def build(folder: Path) -> None:
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    w1 = rng.normal(size=(8, FEATURES)).astype(np.float32)
    w2 = rng.normal(size=(2, 8)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["features", "w1"], ["hidden"], transB=1),
         helper.make_node("Relu", ["hidden"], ["active"]),
         helper.make_node("Gemm", ["active", "w2"], ["logits"], transB=1)], "mlp",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["rows", FEATURES])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["rows", 2])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(model.SerializeToString())
    names = [f"f{i:02d}" for i in range(FEATURES)]
    schema = {"features": [{"name": n, "type": "number", "min": -10, "max": 10, "mean": 0.0, "std": 1.0}
                           for n in names], "labels": ["deny", "grant"]}
    (folder / "schema.json").write_text(json.dumps(schema))
    rows = [dict(zip(names, map(float, rng.normal(size=FEATURES).round(3)), strict=True)) for _ in range(BACKGROUND)]
    (folder / "background.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def exact(explainer, x: np.ndarray) -> np.ndarray:
    """Interventional Shapley values of every feature for the predicted label, over all 2^n coalitions."""
    from inference.ml.explain import shapley_exact

    background = explainer.background

    def value_of(masks: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(masks), 1 << 14):
            chunk = masks[start:start + (1 << 14)]
            mixed = np.where(chunk[:, None, :], x[None, None, :], background[None, :, :])  # coalitions x B x n
            proba = explainer.proba_from_codes(mixed.reshape(-1, x.shape[0]))
            out.append(proba.reshape(len(chunk), len(background), -1).mean(axis=1))
        return np.concatenate(out)

    phi, _ = shapley_exact(value_of, list(range(x.shape[0])), x.shape[0])
    return phi


def main() -> None:
    from inference.ml.explain import TabularExplainer
    from inference.ml.predictors import TabularClassifier

    folder = Path(tempfile.mkdtemp(prefix="steward-sampling-"))
    build(folder)
    predictor = TabularClassifier()
    predictor.load(folder, "cpu")
    explainer = TabularExplainer(predictor, predictor.background)
    rng = np.random.default_rng(11)
    rows = [dict(zip(explainer.features, map(float, rng.normal(size=FEATURES).round(3)), strict=True))
            for _ in range(ROWS)]
    errors: dict[int, list[float]] = {b: [] for b in BUDGETS}
    scale, began = [], time.perf_counter()
    exact_seconds = 0.0
    for row in rows:
        t = time.perf_counter()
        x = explainer.codes([row])[0]
        truth = exact(explainer, x)
        exact_seconds += time.perf_counter() - t
        for budget in BUDGETS:
            for seed in SEEDS:
                sampled = explainer.explain(row, max_evals=budget, seed=seed)
                label = sampled.labels.index(sampled.label)
                values = np.asarray(sampled.values)[:, label]
                errors[budget].append(float(np.mean(np.abs(values - truth[:, label]))))
                scale.append(float(np.mean(np.abs(truth[:, label]))))
    mean_scale = float(np.mean(scale))
    relative = {b: float(np.mean(errors[b])) / mean_scale for b in BUDGETS}
    lines = [
        f"{machine()}. A {FEATURES}-feature MLP (ONNX, 8 hidden units), {BACKGROUND} background rows, {ROWS} rows, "
        f"seeds {list(SEEDS)}; exact values over all 2^{FEATURES} coalitions took {exact_seconds:.1f} s.",
        "",
        "| budget (coalitions) | mean abs error | relative to mean abs exact value |",
        "|---|---|---|",
        *(f"| {b} | {np.mean(errors[b]):.2e} | {relative[b]:.3f} |" for b in BUDGETS),
        "",
        f"Mean |exact value| {mean_scale:.3e}. Total {time.perf_counter() - began:.0f} s.",
    ]
    write_section("bench-explain-sampling", "\n".join(lines))
    print("\n".join(lines))
    print(f"explain-sampling: relative error at 500 evaluations = {relative[500]:.3f} "
          f"(mean |sampled - exact| / mean |exact|), at 2000 = {relative[2000]:.3f}")


if __name__ == "__main__":
    main()

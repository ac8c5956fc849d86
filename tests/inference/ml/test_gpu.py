"""On a CUDA device (skipped where there is none): serving, explanations and DP-SGD on the GPU agree with the CPU.

The CPU suite never runs these; they ran on a lent H100 (bench/RESULTS.md says when). They need only
the ML stack, not the portal, so a GPU machine without PostgreSQL or Django runs them with
    python -m pytest --noconftest -p no:django -o addopts="" tests/inference/ml/test_gpu.py
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from inference.ml import dp_accounting, private
from inference.ml.demos import DATA, SENTIMENT, build_cached, default_cache_dir
from inference.ml.explain import TextExplainer
from inference.ml.predictors import TextClassifier
from inference.ml.training import read_sst2
from tests.inference.ml.norms import per_example_reference, training_path_norms

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def sentiment_folder():
    folder, _ = build_cached(SENTIMENT, lambda *a: None, default_cache_dir())
    return folder


@pytest.fixture(scope="module")
def predictors(sentiment_folder) -> tuple[TextClassifier, TextClassifier]:
    cpu, gpu = TextClassifier(), TextClassifier()
    cpu.load(sentiment_folder, "cpu")
    gpu.load(sentiment_folder, "cuda")
    return cpu, gpu


def _proba(predictor: TextClassifier, texts: list[str]) -> np.ndarray:
    return np.concatenate([predictor.predict_proba(texts[i : i + 64]) for i in range(0, len(texts), 64)])


def test_the_gpu_serves_in_half_precision_and_gives_the_cpus_labels(predictors) -> None:
    cpu, gpu = predictors
    texts = [t for t, _ in read_sst2(DATA / "sst2" / "dev.tsv")]
    on_cpu, on_gpu = _proba(cpu, texts), _proba(gpu, texts)
    # MiniLM keeps its labels in float16 on the probe, so the worker serves it halved
    assert gpu.half and next(gpu.model.parameters()).dtype == torch.float16
    agreement = float((on_cpu.argmax(1) == on_gpu.argmax(1)).mean())
    assert agreement >= 0.995, agreement
    assert float(np.abs(on_cpu - on_gpu).max()) < 0.02


def test_explanations_on_the_gpu_add_up_and_rank_as_on_the_cpu(predictors) -> None:
    cpu, gpu = predictors
    texts = [t for t, _ in read_sst2(DATA / "sst2" / "dev.tsv")[:5]]
    for text in texts:
        here = TextExplainer(cpu).explain(text, max_evals=300, method="partition")
        there = TextExplainer(gpu).explain(text, max_evals=300, method="partition")
        assert there.residual < 1e-6 and here.residual < 1e-6
        label = there.labels.index(there.label)
        rho = spearmanr(np.asarray(here.values)[:, label], np.asarray(there.values)[:, label]).statistic
        assert rho >= 0.9, (text, rho)


@pytest.mark.parametrize("clipping", ["bookkeeping", "ghost"])
def test_per_sample_gradient_norms_on_the_gpu_match_a_per_example_reference(sentiment_folder, clipping) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(sentiment_folder))
    model = AutoModelForSequenceClassification.from_pretrained(
        str(sentiment_folder), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0).to("cuda")
    texts = ["a dull and boring film", "wonderful acting", "I hated it", "a moving, funny film"]
    labels = torch.tensor([0, 1, 0, 1], device="cuda")
    encoded = {k: v.to("cuda") for k, v in private.encode_texts(tokenizer, texts, max_length=16).items()}
    reference = per_example_reference(model, encoded, labels)
    norms = training_path_norms(model, encoded, labels, clipping)
    assert norms.device.type == "cuda"
    assert torch.allclose(norms, reference, rtol=1e-3, atol=1e-5), (norms, reference)


@pytest.mark.parametrize("secure", [False, True], ids=["seeded", "secure"])
def test_a_private_run_trains_on_the_gpu_within_its_target(sentiment_folder, secure) -> None:
    tokenizer, model = private.load_text_model(sentiment_folder)
    rows = read_sst2(DATA / "sst2" / "train_subset.tsv")[:256]
    plan = dp_accounting.plan_run(target_epsilon=2.0, target_delta=1e-5, rows=len(rows), epochs=1, batch_size=32,
                            learning_rate=5e-4, max_grad_norm=1.0)
    before = next(model.parameters()).detach().clone()
    outcome = private.train_text(model.to("cuda"), tokenizer, [t for t, _ in rows], [y for _, y in rows], plan,
                                 device="cuda", secure_mode=secure)
    assert outcome.steps == plan.steps and 0 < outcome.epsilon <= 2.0
    assert next(model.parameters()).device.type == "cuda"
    assert not torch.equal(next(model.parameters()).detach().cpu(), before.cpu())


def test_secure_noise_is_made_on_the_gpu_with_the_deviation_asked_for() -> None:
    from inference.ml.secure_random import SecureRandom

    noise = SecureRandom().dp_noise(3_000_000, 0.25, device="cuda", dtype=torch.float32)
    assert noise.device.type == "cuda" and noise.dtype == torch.float32
    assert abs(float(noise.std()) - 0.25) < 0.001 and abs(float(noise.mean())) < 0.001

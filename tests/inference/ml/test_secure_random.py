"""Secure mode's randomness (inference/ml/secure_random.py) and a private run that uses it."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from inference.ml import dp_accounting, private
from inference.ml.secure_random import SecurePoissonSampler, SecureRandom
from tests.inference.ml.test_private import LABELS, TEXTS, _tiny_bert


def test_uniforms_lie_in_the_open_interval_and_are_uniform() -> None:
    u = SecureRandom().uniform(200_000)
    assert u.dtype == torch.float64 and float(u.min()) > 0 and float(u.max()) < 1
    assert stats.kstest(u.numpy(), "uniform").pvalue > 1e-4


def test_gaussians_and_dp_noise_have_the_distribution_asked_for() -> None:
    random = SecureRandom()
    assert stats.kstest(random.normal(100_001).numpy(), "norm").pvalue > 1e-4  # an odd count too
    noise = random.dp_noise(300_000, 0.5, device="cpu", dtype=torch.float32)
    assert noise.dtype == torch.float32 and noise.shape == (300_000,)
    assert stats.kstest((noise.double() / 0.5).numpy(), "norm").pvalue > 1e-4
    assert abs(float(noise.std()) - 0.5) < 0.005


def test_two_generators_never_repeat_each_other() -> None:
    a, b = SecureRandom(), SecureRandom()
    first = a.words(4)
    assert not torch.equal(first, b.words(4)) and not torch.equal(first, a.words(4))


def test_poisson_masks_take_each_row_with_the_sampling_rate() -> None:
    n, q = 400_000, 0.03
    taken = int(SecureRandom().bernoulli_mask(n, q).sum())
    assert abs(taken - n * q) < 5 * math.sqrt(n * q * (1 - q))


def _weights(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_a_secure_run_trains_its_plan_with_draws_no_seed_repeats() -> None:
    texts, labels = TEXTS * 4, LABELS * 4
    plan = dp_accounting.plan_run(target_epsilon=4.0, target_delta=1e-4, rows=len(texts), epochs=2, batch_size=8,
                            learning_rate=1e-3, max_grad_norm=1.0)
    runs = {}
    for name, secure in [("plain-a", False), ("plain-b", False), ("secure-a", True), ("secure-b", True)]:
        tokenizer, model = _tiny_bert()
        start = _weights(model)
        outcome = private.train_text(model, tokenizer, texts, labels, plan, max_length=16, secure_mode=secure, seed=7)
        assert outcome.steps == plan.steps and outcome.epsilon == pytest.approx(plan.target_epsilon, rel=0.05)
        runs[name] = _weights(model)
        assert not torch.equal(runs[name], start)
    # torch's seeded generators repeat a run exactly; secure mode's draws do not
    assert torch.equal(runs["plain-a"], runs["plain-b"])
    assert not torch.allclose(runs["secure-a"], runs["secure-b"])


def test_secure_mode_puts_its_draws_in_place_of_opacus_generators() -> None:
    tokenizer, model = _tiny_bert()
    texts, labels = TEXTS * 4, LABELS * 4
    plan = dp_accounting.plan_run(target_epsilon=4.0, target_delta=1e-4, rows=len(texts), epochs=1, batch_size=8,
                            learning_rate=1e-3, max_grad_norm=1.0)
    from torch.utils.data import DataLoader, TensorDataset

    encoded = private.encode_texts(tokenizer, texts, max_length=16)
    loader = DataLoader(TensorDataset(*encoded.values(), torch.tensor(labels)), batch_size=8)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    made = private.make_private(model, optimizer, loader, plan, secure_mode=True)
    try:
        assert isinstance(made.optimizer.secure_random, SecureRandom)
        assert isinstance(made.loader.batch_sampler, SecurePoissonSampler)
        assert made.loader.batch_sampler.secure_random is made.optimizer.secure_random
        sizes = [len(batch) for batch in made.loader.batch_sampler]
        assert len(sizes) == plan.steps // plan.epochs and all(0 <= s <= len(texts) for s in sizes)
    finally:
        made.close()


def test_secure_mode_refuses_a_model_book_keeping_cannot_clip() -> None:
    _, model = _tiny_bert()
    model.classifier = torch.nn.Sequential(torch.nn.Linear(32, 2), torch.nn.PReLU())  # PReLU: not book-kept
    plan = dp_accounting.plan_run(target_epsilon=4.0, target_delta=1e-4, rows=32, epochs=1, batch_size=8,
                            learning_rate=1e-3, max_grad_norm=1.0)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(32, 2)), batch_size=8)
    with pytest.raises(private.NotTrainable, match="Secure mode needs book-keeping clipping"):
        private.make_private(model, torch.optim.AdamW(model.parameters(), lr=1e-3), loader, plan, secure_mode=True)

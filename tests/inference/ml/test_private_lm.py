"""Private LoRA on the demo assistant's real weights (SmolLM2-135M): the trap of opacus #820 (LoRA updates
silently wrong with recent PEFT) checked directly. Every LoRA tensor gets its per-sample gradient (the right
shape, the same as one backward pass per example), the clipped per-sample norms are at most the clipping
norm, the base stays frozen and the adapters move; a short private run lowers the held-out loss."""

from __future__ import annotations

import math

import pytest
import torch

from inference.ml import bookkeeping, dp_accounting, private_lm
from inference.ml.language_models import load_causal_lm
from tests.inference.ml.test_bookkeeping import bookkeeping_clipped_sum, reference_clipped_sum

TEXTS = ["Ok lar... Joking wif u oni...", "I'm gonna be home soon and i don't want to talk about this stuff anymore",
         "Sorry, I'll call later", "Did you catch the bus ? Are you frying an egg ? Did you make a tea?",
         "Oh k...i'm watching here:)"]


@pytest.fixture(scope="module")
def lora():
    from django.conf import settings
    from transformers import AutoTokenizer

    from inference.ml.demos import ASSISTANT, build_cached

    folder, _ = build_cached(ASSISTANT, lambda *a: None, settings.BUILD_CACHE_DIR)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = private_lm.with_adapters(load_causal_lm(folder), private_lm.ADAPTER_DEFAULTS)
    return model, tokenizer


def test_every_lora_tensor_gets_its_own_per_sample_gradient_clipped(lora) -> None:
    model, tokenizer = lora
    torch.manual_seed(0)
    for name, parameter in model.named_parameters():  # lora_B starts at zero: give it a value, so lora_A's gradient is not zero too
        if "lora_B" in name:
            parameter.data.normal_(0, 0.02)
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in name for name in trainable)
    # 30 layers, rank 8: q_proj 576 -> 576 and v_proj 576 -> 192 (3 key-value heads of 64)
    assert sum(p.numel() for p in trainable.values()) == 30 * 8 * ((576 + 576) + (576 + 192))
    assert bookkeeping.unsupported(model) is None  # only Linear layers train: book-keeping clips them all
    encoded = private_lm.encode(tokenizer, TEXTS, max_length=24)  # padded: short texts' pads must get nothing

    def forward(rows: slice, reduction: str) -> torch.Tensor:
        losses = private_lm.text_losses(model, encoded["input_ids"][rows], encoded["attention_mask"][rows])
        return losses.sum() if reduction == "sum" else losses

    clip = 0.5
    reference_norms, reference = reference_clipped_sum(model, forward, len(TEXTS), clip)
    norms, clipped = bookkeeping_clipped_sum(model, forward, len(TEXTS), clip)
    assert torch.allclose(norms, reference_norms, rtol=1e-3)
    assert (reference_norms > clip).all()  # every example is clipped: the test sees the clipping
    for name, expected in reference.items():
        assert clipped[name].shape == trainable[name].shape
        assert expected.abs().max() > 0, name  # every LoRA tensor gets a gradient
        # float32 sums in another order (the cores torch was given) move the smallest entries by ~1e-8: the
        # tensor as a whole must agree to 1e-4, and each entry to 1e-3 of itself or 1e-4 of the largest
        assert float((clipped[name] - expected).norm() / expected.norm()) < 1e-4, name
        assert torch.allclose(clipped[name], expected, rtol=1e-3, atol=1e-4 * float(expected.abs().max())), name
    # one example alone: what it adds to the sum has a norm of at most the clipping norm
    _, alone = bookkeeping_clipped_sum(model, forward, 1, clip)
    assert math.sqrt(sum(float((g.double() ** 2).sum()) for g in alone.values())) <= clip * (1 + 1e-5)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.zero_()


def test_a_private_run_moves_the_adapters_only_and_lowers_the_held_out_loss(lora) -> None:
    model, tokenizer = lora
    from django.conf import settings

    texts = [line for line in (settings.BASE_DIR / "data" / "sms" / "ham.txt").read_text().splitlines() if line][:96]
    held = texts[80:]
    frozen = {name: p.detach().clone() for name, p in model.named_parameters() if not p.requires_grad}
    adapters = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    before = private_lm.perplexity(model, tokenizer, held)
    plan = dp_accounting.plan_run(target_epsilon=8, target_delta=1e-3, rows=80, epochs=2, batch_size=16,
                                  learning_rate=2e-3, max_grad_norm=1.0)
    outcome = private_lm.train_private(model, tokenizer, texts[:80], plan, seed=1)
    assert outcome.steps == plan.steps == 10 and 0 < outcome.epsilon <= 8 and outcome.clipping == "bookkeeping"
    for name, parameter in model.named_parameters():
        if name in frozen:
            assert torch.equal(parameter.detach(), frozen[name]), name
        else:
            assert not torch.equal(parameter.detach(), adapters[name]), name
    after = private_lm.perplexity(model, tokenizer, held)
    assert after < before  # the messages' style is learnt through the noise
    with torch.no_grad():  # back to the base for the module's other tests
        for name, parameter in model.named_parameters():
            if name in adapters:
                parameter.copy_(adapters[name])

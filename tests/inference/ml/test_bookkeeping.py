"""Book-keeping clipping: its clipped gradient sum against one backward per example, on BERT and on odd layers."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from inference.ml import bookkeeping, dp_accounting, private
from inference.ml.training import minilm_folder


def reference_clipped_sum(model: nn.Module, forward, n: int, clip: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per example: the plain gradient of its loss, its norm, then sum_i min(1, C / (|g_i| + 1e-6)) g_i."""
    params = {name: p for name, p in model.named_parameters() if p.requires_grad}
    total = {name: torch.zeros_like(p) for name, p in params.items()}
    norms = []
    for i in range(n):
        model.zero_grad(set_to_none=True)
        forward(slice(i, i + 1), "sum").backward()
        grads = {name: p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for name, p in params.items()}
        norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads.values()))
        norms.append(norm)
        factor = min(1.0, clip / (float(norm) + 1e-6))
        for name, g in grads.items():
            total[name] += factor * g
    model.zero_grad(set_to_none=True)
    return torch.stack(norms).float(), total


def bookkeeping_clipped_sum(model: nn.Module, forward, n: int, clip: float) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    clipper = bookkeeping.BookKeeping(model, clip)
    try:
        model.zero_grad(set_to_none=True)
        clipper.backward(forward(slice(0, n), "none"))
        grads = {name: p.grad.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
        return clipper.per_sample_gradient_norms, grads
    finally:
        clipper.close()
        model.zero_grad(set_to_none=True)


def assert_same(model, forward, n, clip, *, rtol=1e-4, atol=1e-6) -> torch.Tensor:
    ref_norms, ref = reference_clipped_sum(model, forward, n, clip)
    norms, got = bookkeeping_clipped_sum(model, forward, n, clip)
    assert torch.allclose(norms, ref_norms, rtol=rtol, atol=atol), (norms, ref_norms)
    assert got.keys() == ref.keys()
    for name in ref:
        scale = float(ref[name].abs().max()) or 1.0
        assert torch.allclose(got[name], ref[name], rtol=rtol, atol=atol * scale + 1e-7), name
    return ref_norms


def _bert_case(model, tokenizer, texts, labels):
    encoded = private.encode_texts(tokenizer, texts, max_length=16)  # padded: the pad row must get nothing
    target = torch.tensor(labels)

    def forward(rows: slice, reduction: str) -> torch.Tensor:
        logits = model(**{k: v[rows] for k, v in encoded.items()}).logits
        return nn.functional.cross_entropy(logits, target[rows], reduction=reduction)

    return forward


TEXTS = ["a dull and boring film", "wonderful acting", "I hated it, I hated it", "a moving, funny film", "not bad"]
LABELS = [0, 1, 0, 1, 1]


def test_on_minilm_the_clipped_sum_is_the_per_example_one_whether_clipping_binds_or_not() -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = minilm_folder()
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(folder), num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model.train()
    assert bookkeeping.unsupported(model) is None
    forward = _bert_case(model, tokenizer, TEXTS, LABELS)
    norms = assert_same(model, forward, len(TEXTS), clip=1e6)  # no clipping: the plain sum
    clip = float(norms.median())  # some samples clipped, some not
    assert (norms > clip).any() and (norms < clip).any()
    assert_same(model, forward, len(TEXTS), clip=clip)


def test_the_embeddings_padding_row_gets_no_gradient_and_repeated_tokens_add_up() -> None:
    torch.manual_seed(1)
    embedding = nn.Embedding(10, 4, padding_idx=0)
    head = nn.Linear(4, 2)
    model = nn.Sequential(embedding, nn.LayerNorm(4), head)
    ids = torch.tensor([[3, 3, 5, 0], [7, 0, 0, 0], [1, 2, 3, 4]])  # a repeated token, padding
    target = torch.tensor([0, 1, 1])

    def forward(rows: slice, reduction: str) -> torch.Tensor:
        return nn.functional.cross_entropy(model(ids[rows]).mean(dim=1), target[rows], reduction=reduction)

    model.train()
    assert_same(model, forward, 3, clip=0.05)
    _, grads = bookkeeping_clipped_sum(model, forward, 3, 0.05)
    assert torch.count_nonzero(grads["0.weight"][0]) == 0


class _Twice(nn.Module):
    """One Linear called twice in a forward (shared weights), a frozen layer between, and one never called."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Linear(6, 2)
        self.shared = nn.Linear(6, 6)
        self.frozen = nn.Linear(6, 6)
        self.frozen.requires_grad_(False)
        self.head = nn.Linear(6, 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.shared(torch.tanh(self.frozen(self.shared(x)))))).mean(dim=1)


def test_a_layer_called_twice_and_a_frozen_layer() -> None:
    torch.manual_seed(2)
    model = _Twice().train()
    x, target = torch.randn(4, 5, 6), torch.tensor([0, 1, 2, 1])

    def forward(rows: slice, reduction: str) -> torch.Tensor:
        return nn.functional.cross_entropy(model(x[rows]), target[rows], reduction=reduction)

    assert_same(model, forward, 4, clip=0.1)
    assert model.frozen.weight.grad is None
    _, grads = bookkeeping_clipped_sum(model, forward, 4, 0.1)
    assert torch.count_nonzero(grads["unused.weight"]) == 0  # zero, not missing: Opacus adds noise to it


@settings(max_examples=25, deadline=None)
@given(batch=st.integers(1, 4), steps=st.integers(1, 9), fan_in=st.integers(1, 5), fan_out=st.integers(1, 5),
       bias=st.booleans(), clip=st.floats(0.01, 10.0), seed=st.integers(0, 2**16))
def test_a_linear_layer_by_ghost_norm_or_by_per_sample_gradients(batch, steps, fan_in, fan_out, bias, clip, seed) -> None:
    # T^2 <= in * out takes the ghost norm, T^2 > in * out the per-sample gradients: both are drawn
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(fan_in, fan_out, bias=bias)).train()
    x, target = torch.randn(batch, steps, fan_in), torch.randn(batch, fan_out)

    def forward(rows: slice, reduction: str) -> torch.Tensor:
        losses = ((model(x[rows]).mean(dim=1) - target[rows]) ** 2).sum(dim=1)
        return losses.sum() if reduction == "sum" else losses

    assert_same(model, forward, batch, clip=clip, rtol=1e-4, atol=1e-5)


def test_an_empty_batch_gives_zero_gradients() -> None:
    model = nn.Sequential(nn.Linear(3, 2)).train()
    clipper = bookkeeping.BookKeeping(model, 1.0)
    out = model(torch.zeros(0, 3))
    clipper.backward(nn.functional.cross_entropy(out, torch.zeros(0, dtype=torch.long), reduction="none"))
    assert all(torch.count_nonzero(p.grad) == 0 for p in model.parameters())
    clipper.close()


def test_models_it_cannot_clip_are_named_and_left_to_opacus_ghost_clipping() -> None:
    conv = nn.Sequential(nn.Conv1d(2, 2, 3), nn.Flatten(), nn.Linear(6, 2))
    assert "Conv1d" in bookkeeping.unsupported(conv)
    with pytest.raises(ValueError, match="Conv1d"):
        bookkeeping.BookKeeping(conv, 1.0)
    tied = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    tied[1].weight = tied[0].weight
    assert "shared" in bookkeeping.unsupported(tied)

    from torch.utils.data import DataLoader, TensorDataset

    data = TensorDataset(torch.randn(8, 2, 5), torch.randint(0, 2, (8,)))
    plan = dp_accounting.plan_run(target_epsilon=8, target_delta=1e-5, rows=8, epochs=1, batch_size=4,
                            learning_rate=1e-3, max_grad_norm=1.0)
    made = private.make_private(conv, torch.optim.SGD(conv.parameters(), lr=0.1), DataLoader(data, batch_size=4),
                                plan, secure_mode=False)
    assert made.clipping == "ghost"
    made.close()


def test_a_broadcast_batch_is_refused_with_a_reason() -> None:
    model = nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 2)).train()
    clipper = bookkeeping.BookKeeping(model, 1.0)
    positions = torch.arange(4).unsqueeze(0)  # 1 x L, broadcast over a batch of 2 later
    out = model(positions).expand(2, 4, 2).mean(dim=1)
    with pytest.raises(ValueError, match="B x L"):
        clipper.backward(nn.functional.cross_entropy(out, torch.tensor([0, 1]), reduction="none"))
    clipper.close()


def _private_linear(sizes: list[tuple[int, int]], noise: float, seed: int = 0):
    from opacus import PrivacyEngine
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(seed)
    model = nn.Sequential(*(nn.Linear(i, o) for i, o in sizes))
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    data = DataLoader(TensorDataset(torch.randn(8, sizes[0][0]), torch.randn(8, sizes[-1][1])), batch_size=4)
    _, dp, _, _ = PrivacyEngine().make_private(module=model, optimizer=optimizer, data_loader=data,
                                               criterion=nn.MSELoss(), noise_multiplier=noise, max_grad_norm=2.0,
                                               grad_sample_mode="ghost", noise_generator=torch.Generator().manual_seed(seed))
    return model, dp


def test_the_in_place_optimizer_steps_as_opacuss_when_there_is_no_noise() -> None:
    steps = []
    for lean in (False, True):
        model, dp = _private_linear([(5, 4), (4, 3)], noise=0.0)
        if lean:
            bookkeeping.noised_in_place(dp)
        for p in model.parameters():
            p.grad = torch.full_like(p, 0.5)
        dp.step()
        steps.append([p.detach().clone() for p in model.parameters()])
    for stock, lean in zip(*steps, strict=True):
        assert torch.equal(stock, lean)


def test_the_in_place_noise_is_sigma_c_on_every_coordinate_and_independent_across_parameters() -> None:
    # a layer larger than one noise draw, and small ones sharing a draw
    model, dp = _private_linear([(2048, 2048), (2048, 3), (3, 3)], noise=1.5)
    bookkeeping.noised_in_place(dp)
    assert sum(p.numel() for p in model.parameters()) > bookkeeping.NOISE_CHUNK
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    dp.accumulate()
    dp.add_noise()
    big = model[0].weight.grad.flatten()
    assert float(big.mean()).__abs__() < 0.01 and float(big.std()) == pytest.approx(3.0, rel=0.01)
    everything = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert float(everything.std()) == pytest.approx(3.0, rel=0.01)
    small = torch.cat([model[1].bias.grad, model[2].bias.grad])
    assert len(set(small.tolist())) == len(small)  # no slice of the draw given twice
    assert all(p.grad is p.summed_grad or p.grad.data_ptr() == p.summed_grad.data_ptr() for p in model.parameters())
    with pytest.raises(ValueError):  # Opacus's guard against adding noise twice still holds
        dp.add_noise()


def test_a_batch_split_in_parts_takes_one_step_on_the_sum_of_its_parts() -> None:
    x, y = torch.randn(6, 5), torch.randn(6, 3)
    after = []
    for parts in ([slice(0, 6)], [slice(0, 4), slice(4, 6)]):
        model, dp = _private_linear([(5, 3)], noise=0.0)
        bookkeeping.noised_in_place(dp)
        clipper = bookkeeping.BookKeeping(model, 0.5)
        before = model[0].weight.detach().clone()
        for i, rows in enumerate(parts):
            dp.zero_grad(set_to_none=True)
            dp.signal_skip_step(do_skip=i < len(parts) - 1)  # what Opacus's BatchMemoryManager signals
            clipper.backward(((model(x[rows]) - y[rows]) ** 2).sum(dim=1))
            dp.step()
            if i < len(parts) - 1:
                assert torch.equal(model[0].weight, before)  # no step on a part
        after.append(model[0].weight.detach().clone())
    assert torch.allclose(after[0], after[1], atol=1e-6)


class _TwiceEach(nn.Module):
    """Two layers each called twice: their joined inputs are made (and freed) one after the other."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.second = nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.first(x) + self.first(2 * x)
        return (self.second(torch.tanh(h)) + self.second(h)).mean(dim=1)


def test_layers_called_twice_each_get_their_own_gram() -> None:
    torch.manual_seed(3)
    model = _TwiceEach().train()
    x, target = torch.randn(3, 2, 4), torch.randn(3, 4)

    def forward(rows: slice, reduction: str) -> torch.Tensor:
        losses = ((model(x[rows]) - target[rows]) ** 2).sum(dim=1)
        return losses.sum() if reduction == "sum" else losses

    assert_same(model, forward, 3, clip=0.5)


class _Dropped(nn.Module):
    """A layer whose output the loss never uses, though its input needs a gradient; and an output
    the forward pass frees at once (scaled by a constant, which keeps nothing for the backward)."""

    def __init__(self) -> None:
        super().__init__()
        self.first, self.side, self.head = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 2)
        self.seen: list = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import weakref

        out = self.first(x)
        self.seen.append(weakref.ref(out))
        h = out * 2.0
        self.side(h)  # computed, then dropped
        return self.head(h).mean(dim=1)


def test_a_dropped_output_gets_zero_and_no_layer_output_is_kept_alive() -> None:
    torch.manual_seed(4)
    model = _Dropped().train()
    x, target = torch.randn(3, 2, 4), torch.tensor([0, 1, 1])

    def forward(rows: slice, reduction: str) -> torch.Tensor:
        return nn.functional.cross_entropy(model(x[rows]), target[rows], reduction=reduction)

    assert_same(model, forward, 3, clip=0.5)
    clipper = bookkeeping.BookKeeping(model, 0.5)
    losses = forward(slice(0, 3), "none")
    assert model.seen[-1]() is None  # the first layer's output is gone: the clipper holds only what autograd does
    clipper.backward(losses)
    assert torch.count_nonzero(model.side.weight.grad) == 0
    clipper.close()


def test_inputs_that_need_a_gradient_are_refused_with_a_reason() -> None:
    # every call is then on the way to somewhere else: nothing marks where the backward pass may stop
    model = nn.Sequential(nn.Linear(3, 2)).train()
    clipper = bookkeeping.BookKeeping(model, 1.0)
    x = torch.randn(4, 3, requires_grad=True)
    with pytest.raises(ValueError, match="inputs not to require"):
        clipper.backward(nn.functional.cross_entropy(model(x), torch.zeros(4, dtype=torch.long), reduction="none"))
    clipper.close()
    assert all(p.grad is None for p in model.parameters())

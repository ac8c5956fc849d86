"""Book-keeping clipping: DP-SGD's per-sample clipping in one backward pass, for Linear, LayerNorm and Embedding layers.

DP-SGD adds up the per-sample gradients g_i of a batch, each scaled to a norm of at most C:
sum_i min(1, C / |g_i|) g_i. Opacus's ghost clipping gets the norms |g_i| without materialising the
g_i, then runs a second backward pass over a loss reweighted by the clipping factors. Book-keeping
(Bu, Wang, Zha, Karypis, "Differentially private optimization on large model at small cost", ICML
2023) keeps what that second pass would recompute: for a layer y = x W^T + b, the per-sample
gradient is g_i = dy_i^T x_i, so the activations x and the output gradients dy from one backward
pass give both the norms and the clipped sum:

- norms: |dy_i^T x_i|^2 = <x_i x_i^T, dy_i dy_i^T> (the "ghost norm", B x T x T products; cheaper
  than the B x out x in per-sample gradients when T^2 < in * out), or the per-sample gradients
  themselves where they are the smaller;
- the clipped sum: sum_i c_i dy_i^T x_i = (c * dy)^T x, one matrix product, what the ordinary
  backward computes for the weight, with the rows scaled.

The backward pass asks autograd for the gradients of the layers' outputs only
(`torch.autograd.grad(loss, outputs)`), so it skips every weight gradient (they come from the
products above, once). Embeddings: the per-sample gradient of row v is the sum of dy_i at the
positions whose token is v, so |g_i|^2 = sum over positions t, s with the same token of
<dy_it, dy_is>; the clipped sum is an index_add. LayerNorm: the per-sample gradients are B x d,
made outright.

What the optimizer then does is Opacus's own (`DPOptimizerFastGradientClipping`): noise of standard
deviation sigma * C on the clipped sum, the accountant's step, the scaling by the expected batch
size; `NoisedInPlace` only keeps it from copying the gradients first and draws the noise for many
parameters at a time. The result is the same clipped sum as Opacus's ghost clipping, up to float rounding (tests:
tests/inference/ml/test_bookkeeping.py, against one backward per example).

A model with any other kind of layer that owns a trainable parameter, or a parameter shared by two
layers, is not supported here (`unsupported` says why); the training path then falls back to
Opacus's ghost clipping.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

SUPPORTED = (nn.Linear, nn.LayerNorm, nn.Embedding)


def unsupported(model: nn.Module) -> str | None:
    """Why book-keeping cannot clip this model's gradients, or None when it can."""
    owners: dict[int, str] = {}
    for name, module in model.named_modules():
        own = [p for p in module.parameters(recurse=False) if p.requires_grad]
        if not own:
            continue
        if not isinstance(module, SUPPORTED):
            return f"layer {name or type(module).__name__} ({type(module).__name__}) has trainable parameters"
        if isinstance(module, nn.Embedding) and (module.max_norm is not None or module.sparse or module.scale_grad_by_freq):
            return f"embedding {name} uses max_norm, sparse gradients or scale_grad_by_freq"
        if isinstance(module, nn.LayerNorm) and len(module.normalized_shape) != 1:
            return f"layer norm {name} normalises over more than one dimension"
        for parameter in own:
            if id(parameter) in owners:
                return f"parameter shared by {owners[id(parameter)]} and {name}"
            owners[id(parameter)] = name
    if not owners:
        return "the model has no trainable parameters"
    return None


class _Layer:
    """One hooked layer: what its forward calls saw during the current step, and what its output gradients gave.

    Per call: the input x, the output's shape and dtype (not the output itself: holding it would keep
    memory the forward pass had freed), and dy once the backward pass has reached that output.
    """

    __slots__ = ("bottom", "grads", "inputs", "module", "outputs", "part", "waiting")

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.clear()

    def clear(self) -> None:
        self.inputs: list[torch.Tensor] = []
        self.outputs: list[tuple[torch.Size, torch.dtype]] = []
        self.grads: list[torch.Tensor | None] = []
        self.waiting = 0  # calls whose dy a hook is still to bring
        self.bottom = 0  # calls whose dy autograd returns at the end
        self.part: _Part | None = None


class BookKeeping:
    """Hooks a model's layers; `backward(per_sample_losses)` leaves the clipped gradient sum in each `.grad`.

    Use: forward in training mode with gradients enabled, then `backward` with the unreduced loss
    (one value per sample) instead of `loss.backward()`. `per_sample_gradient_norms` then holds
    the norms that were clipped (before clipping).

    Memory: each layer's norms are taken as soon as the backward pass reaches its output (a hook on
    that output), and what its clipped sum does not need goes at once: a layer norm's input and
    output gradient become two B x d per-sample gradients, a small layer's become its per-sample
    gradients. Only the calls at the bottom of the graph (whose input needs no gradient: embeddings,
    a first layer fed the data) are asked of autograd by name, as gradient edges, so no layer's output is
    kept alive for it. Every other call lies on the way down to them, since every trainable
    parameter belongs to one hooked layer (`unsupported`), so its hook fires on the way.
    """

    def __init__(self, model: nn.Module, max_grad_norm: float) -> None:
        reason = unsupported(model)
        if reason is not None:
            raise ValueError(f"book-keeping clipping does not support this model: {reason}")
        self.max_grad_norm = float(max_grad_norm)
        self.per_sample_gradient_norms: torch.Tensor | None = None
        self._layers: list[_Layer] = []
        self._handles: list[Any] = []
        self._bottom: list[tuple[_Layer, int, Any]] = []  # (layer, call, gradient edge of its output)
        self._batch = 0
        self._grams: dict[tuple[int, tuple[int, ...], tuple[int, ...]], tuple[torch.Tensor, torch.Tensor]] = {}
        for module in model.modules():
            if any(p.requires_grad for p in module.parameters(recurse=False)):
                layer = _Layer(module)
                self._layers.append(layer)
                self._handles.append(module.register_forward_hook(self._capture(layer)))

    def _capture(self, layer: _Layer) -> Any:
        from torch.autograd.graph import get_gradient_edge

        def hook(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
            if not (module.training and torch.is_grad_enabled() and output.requires_grad):
                return
            call = len(layer.inputs)
            x = args[0]
            layer.inputs.append(x.detach())
            layer.outputs.append((output.shape, output.dtype))
            layer.grads.append(None)
            if x.requires_grad:  # the backward pass goes through this output on its way further down
                layer.waiting += 1
                output.register_hook(functools.partial(self._arrived, layer, call))
            else:
                layer.bottom += 1
                self._bottom.append((layer, call, get_gradient_edge(output)))
        return hook

    def _arrived(self, layer: _Layer, call: int, grad: torch.Tensor) -> None:
        if call >= len(layer.grads) or layer.part is not None:  # a graph from before the last clear()
            return
        layer.grads[call] = grad.detach()
        layer.waiting -= 1
        if layer.waiting == 0 and layer.bottom == 0:
            self._reduce(layer)

    def _reduce(self, layer: _Layer) -> None:
        """The layer's norms and what its clipped sum needs; its inputs and output gradients go."""
        inputs, grad_outputs = _joined(layer, self._batch)
        layer.inputs, layer.grads = [], []
        layer.part = _norms_squared(layer.module, inputs, grad_outputs, self._grams)

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.clear()

    def clear(self) -> None:
        for layer in self._layers:
            layer.clear()
        self._bottom = []
        self._grams.clear()

    def backward(self, per_sample_losses: torch.Tensor) -> None:
        """One backward pass; sets every trainable parameter's `.grad` to sum_i min(1, C/|g_i|) g_i."""
        batch = self._batch = per_sample_losses.shape[0]
        layers = [layer for layer in self._layers if layer.outputs and batch]
        try:
            # a layer this batch did not use, or every layer for an empty Poisson batch: its gradient
            # is zero, not missing (Opacus's optimizer adds the noise to every parameter's gradient)
            for layer in self._layers:
                if not (layer.outputs and batch):
                    for parameter in _trainable(layer.module):
                        parameter.grad = torch.zeros_like(parameter)
            if not layers:
                self.per_sample_gradient_norms = per_sample_losses.new_zeros((batch,))
                return
            edges = [edge for _, _, edge in self._bottom]
            if not edges:
                raise ValueError("every hooked layer's input needs a gradient: book-keeping needs the model's "
                                 "inputs not to require one")
            found = torch.autograd.grad(per_sample_losses.sum(), edges, allow_unused=True)
            for (layer, call, _), grad in zip(self._bottom, found, strict=True):
                layer.grads[call] = None if grad is None else grad.detach()
            del found, edges
            for layer in layers:  # bottom layers, and any whose output the loss did not use
                if layer.part is None:
                    self._reduce(layer)
            self._grams.clear()
            parts = [layer.part for layer in layers if layer.part is not None]
            # one sum over every layer's squared norms (B each), not one addition a layer: on a GPU each
            # small kernel costs its launch, and a BERT has some sixty layers
            norms = torch.cat([sq for part in parts for sq in part.squared], dim=1).sum(dim=1).sqrt()
            del parts  # the loop below frees each layer's part as it goes: no other reference may hold it
            self.per_sample_gradient_norms = norms.detach()
            factors = (self.max_grad_norm / (norms + 1e-6)).clamp(max=1.0)  # Opacus's own formula
            for layer in layers:  # each layer's saved tensors go as soon as its parameters have their sum
                part, layer.part = layer.part, None
                assert part is not None
                _clipped_sum(layer.module, part, factors)
                del part
        finally:
            self.clear()


def _trainable(module: nn.Module) -> Iterable[nn.Parameter]:
    return (p for p in module.parameters(recurse=False) if p.requires_grad)


def _joined(layer: _Layer, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A layer's inputs and output gradients, B x T x features, its calls joined along T."""
    inputs, grad_outputs = [], []
    for x, (shape, dtype), g in zip(layer.inputs, layer.outputs, layer.grads, strict=True):
        if x.shape[0] != batch or shape[0] != batch:
            raise ValueError(
                f"a {type(layer.module).__name__} saw a batch of {x.shape[0]}, not {batch}: pass per-sample "
                "inputs (e.g. position_ids and token_type_ids as B x L tensors), not broadcast ones"
            )
        if g is None:  # the loss did not depend on this call's output
            g = torch.zeros(shape, dtype=dtype, device=x.device)
        if isinstance(layer.module, nn.Embedding):
            inputs.append(x.reshape(batch, -1))
        else:
            inputs.append(x.reshape(batch, -1, x.shape[-1]))
        grad_outputs.append(g.reshape(batch, -1, g.shape[-1]))
    if len(inputs) == 1:
        return inputs[0], grad_outputs[0]
    return torch.cat(inputs, dim=1), torch.cat(grad_outputs, dim=1)


class _Part:
    """A layer's per-sample squared norms (B x 1 columns) and what its clipped sum needs: per-sample gradients, or x and dy."""

    __slots__ = ("dy", "per_sample", "squared", "x")

    def __init__(self, squared: list[torch.Tensor], per_sample: dict[str, torch.Tensor] | None = None,
                 x: torch.Tensor | None = None, dy: torch.Tensor | None = None) -> None:
        self.squared, self.per_sample, self.x, self.dy = squared, per_sample or {}, x, dy


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per sample, the sum of a * b over every other dimension, as B x 1 (one batched product: one kernel)."""
    return torch.bmm(a.reshape(a.shape[0], 1, -1), b.reshape(b.shape[0], -1, 1)).view(-1, 1)


def _gram(x: torch.Tensor, cache: dict[tuple[int, tuple[int, ...], tuple[int, ...]], tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """x x^T per sample (B x T x T); layers fed the same tensor (query, key, value) share it.

    The cache is keyed by where x lies, so it holds x too: while an entry lives its memory cannot be
    freed and given to another tensor of the same shape (a later layer's joined inputs), which
    would then be handed the wrong Gram matrix and so the wrong norm.
    """
    key = (x.data_ptr(), tuple(x.shape), tuple(x.stride()))
    found = cache.get(key)
    if found is None:
        found = cache[key] = (x, torch.bmm(x, x.transpose(1, 2)))
    return found[1]


def _norms_squared(module: nn.Module, x: torch.Tensor, dy: torch.Tensor, grams: dict[Any, Any]) -> _Part:
    squared: list[torch.Tensor] = []
    if isinstance(module, nn.Linear):
        per_sample: dict[str, torch.Tensor] = {}
        keep = False
        if module.weight.requires_grad:
            steps, fan_in, fan_out = x.shape[1], x.shape[2], dy.shape[2]
            if steps * steps <= fan_in * fan_out:
                squared.append(_dot(_gram(x, grams), torch.bmm(dy, dy.transpose(1, 2))))
                keep = True  # the sum is (c * dy)^T x
            else:  # short inputs into a large layer: the per-sample gradients are the smaller
                per_sample["weight"] = torch.bmm(dy.transpose(1, 2), x)
                squared.append(_dot(per_sample["weight"], per_sample["weight"]))
        if module.bias is not None and module.bias.requires_grad:
            per_sample["bias"] = dy.sum(dim=1)
            squared.append(_dot(per_sample["bias"], per_sample["bias"]))
        return _Part(squared, per_sample, x if keep else None, dy if keep else None)
    if isinstance(module, nn.LayerNorm):
        per_sample = {}
        if module.weight is not None and module.weight.requires_grad:
            normalised = F.layer_norm(x, module.normalized_shape, eps=module.eps)
            per_sample["weight"] = (dy * normalised).sum(dim=1)
        if module.bias is not None and module.bias.requires_grad:
            per_sample["bias"] = dy.sum(dim=1)
        return _Part([_dot(g, g) for g in per_sample.values()], per_sample)
    if isinstance(module, nn.Embedding):
        if module.padding_idx is not None:  # the padding row gets no gradient
            dy = dy * (x != module.padding_idx).unsqueeze(-1).to(dy.dtype)
        same = (x.unsqueeze(2) == x.unsqueeze(1)).to(dy.dtype)
        return _Part([_dot(torch.bmm(dy, dy.transpose(1, 2)), same)], x=x, dy=dy)
    raise TypeError(type(module).__name__)  # unreachable: unsupported() refused it


def _clipped_sum(module: nn.Module, part: _Part, factors: torch.Tensor) -> None:
    x, dy, per_sample = part.x, part.dy, part.per_sample
    if isinstance(module, nn.Embedding):
        assert x is not None and dy is not None
        scaled = (dy * factors.to(dy.dtype).view(-1, 1, 1)).reshape(-1, dy.shape[-1])
        module.weight.grad = torch.zeros_like(module.weight).index_add_(0, x.reshape(-1), scaled)
        return
    for name in ("weight", "bias"):
        parameter = getattr(module, name, None)
        if parameter is None or not parameter.requires_grad:
            continue
        if name in per_sample:
            ps = per_sample[name]
            grad = (factors.to(ps.dtype) @ ps.reshape(ps.shape[0], -1)).view(parameter.shape)
        else:  # a Linear weight by the ghost norm: (c * dy)^T x, the ordinary weight gradient with rows scaled
            assert x is not None and dy is not None
            weights = factors.to(dy.dtype).view(-1, 1, 1)
            if dy.shape[-1] <= x.shape[-1]:  # scale the smaller of the two
                grad = (dy * weights).reshape(-1, dy.shape[-1]).t() @ x.reshape(-1, x.shape[-1])
            else:
                grad = dy.reshape(-1, dy.shape[-1]).t() @ (x * weights).reshape(-1, x.shape[-1])
        parameter.grad = grad.view(parameter.shape)


def noised_in_place(optimizer: Any) -> Any:
    """Opacus's fast-gradient-clipping optimizer, adding the noise to `.grad` in place.

    Opacus's copies each gradient into `summed_grad` (room for accumulating batches, which Poisson
    sampling forbids), then makes noise, then a third tensor for the sum, one parameter at a time:
    three times the gradients' memory and ~100 noise draws a step. Here `summed_grad` is `.grad`
    itself and the noise comes from Opacus's own `_generate_noise` (or, where the optimizer has a
    `secure_random`, from inference/ml/secure_random.py, as Opacus's secure mode makes it) in draws
    of about NOISE_CHUNK values, each parameter given its own slice: the same Gaussian of standard
    deviation sigma * C on every coordinate, independent across coordinates.
    """
    from opacus.optimizers.optimizer_fast_gradient_clipping import DPOptimizerFastGradientClipping

    if type(optimizer) is not DPOptimizerFastGradientClipping:
        raise TypeError(f"expected Opacus's DPOptimizerFastGradientClipping, got {type(optimizer).__name__}")
    optimizer.__class__ = _noised_in_place_class()
    return optimizer


NOISE_CHUNK = 1 << 22


@functools.cache
def _noised_in_place_class() -> type:
    from opacus.optimizers.optimizer import _check_processed_flag, _generate_noise, _mark_as_processed
    from opacus.optimizers.optimizer_fast_gradient_clipping import DPOptimizerFastGradientClipping

    class NoisedInPlace(DPOptimizerFastGradientClipping):  # type: ignore[misc]
        def accumulate(self) -> None:
            for p in self.params:
                if p.summed_grad is not None:
                    p.summed_grad.add_(p.grad)
                else:
                    p.summed_grad = p.grad  # no copy: each step starts from zero_grad

        def add_noise(self) -> None:
            std = getattr(self, "_adjusted_noise_multiplier", self.noise_multiplier) * self.max_grad_norm
            group: list[Any] = []
            size = 0
            for p in self.params:
                _check_processed_flag(p.summed_grad)
                group.append(p)
                size += p.summed_grad.numel()
                if size >= NOISE_CHUNK:
                    self._noise(group, size, std)
                    group, size = [], 0
            if group:
                self._noise(group, size, std)

        def _noise(self, group: list[Any], size: int, std: float) -> None:
            first = group[0].summed_grad
            secure = getattr(self, "secure_random", None)  # DP_SECURE_MODE: inference/ml/secure_random.py
            if secure is not None:
                noise = secure.dp_noise(size, std, device=first.device, dtype=first.dtype)
            else:
                shape_only = first.reshape(-1)[:1].expand(size)  # shape, device and dtype; nothing allocated
                noise = _generate_noise(std=std, reference=shape_only, generator=self.generator,
                                        secure_mode=self.secure_mode)
            slices, at = [], 0
            for p in group:
                count = p.summed_grad.numel()
                slices.append(noise[at : at + count].view_as(p.summed_grad))
                at += count
            torch._foreach_add_([p.summed_grad for p in group], slices)  # one launch for the group
            for p in group:
                p.grad = p.summed_grad.view_as(p)
                _mark_as_processed(p.summed_grad)

        def scale_grad(self) -> None:
            if self.loss_reduction == "mean":
                torch._foreach_div_([p.grad for p in self.params], self.expected_batch_size * self.accumulated_iterations)

    return NoisedInPlace

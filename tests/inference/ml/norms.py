"""Per-sample gradient norms two ways, for the CPU and GPU tests of the DP training path."""

from __future__ import annotations

from typing import Any

import torch

from inference.ml import dp_accounting, private


def per_example_reference(model: Any, encoded: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """One example at a time, the plain gradient of its loss over every parameter."""
    model.train()
    reference = []
    for i in range(len(labels)):
        model.zero_grad()
        logits = model(**{k: v[i : i + 1] for k, v in encoded.items()}).logits
        torch.nn.functional.cross_entropy(logits, labels[i : i + 1]).backward()
        reference.append(torch.sqrt(sum((p.grad**2).sum() for p in model.parameters() if p.grad is not None)))
    model.zero_grad()
    return torch.stack(reference)


def training_path_norms(model: Any, encoded: dict[str, torch.Tensor], labels: torch.Tensor,
                        clipping: str = "auto") -> torch.Tensor:
    """The norms the training path's clipping computes, with the model made private as train_text makes it."""
    from torch.utils.data import DataLoader, TensorDataset

    n = len(labels)
    plan = dp_accounting.plan_run(target_epsilon=8, target_delta=1e-5, rows=n, epochs=1, batch_size=n,
                            learning_rate=1e-3, max_grad_norm=1e6)
    data = TensorDataset(*(v.cpu() for v in encoded.values()), labels.cpu())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    made = private.make_private(model, optimizer, DataLoader(data, batch_size=n), plan, secure_mode=False,
                                clipping=clipping)
    made.backward(made.model(**encoded).logits, labels)
    norms = made.per_sample_gradient_norms.detach()
    made.close()
    return norms

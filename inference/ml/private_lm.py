"""Private fine-tuning of a generative model: LoRA adapters (PEFT) trained with DP-SGD, the base frozen.

The adapters are the only trainable parameters: each adapted projection gets lora_A (r x in) and
lora_B (out x r), two Linear layers, so book-keeping clipping (inference/ml/bookkeeping.py) computes
every per-sample norm and the clipped sum from one backward pass, and Opacus adds the noise and keeps
the accountant (inference/ml/private.py). Opacus's own per-sample hooks are not used on the PEFT
model: with recent PEFT versions they can leave LoRA updates silently wrong (opacus issue #820);
tests/inference/ml/test_private_lm.py checks every LoRA tensor's per-sample gradient against one
backward pass per example, that the clipped norms are at most the clipping norm, and that the
adapters move.

A text's loss is the mean negative log-likelihood of its tokens (each predicted from those before
it; padding excluded): the unit of privacy is one record of the dataset. The result is the base
with the adapters merged into its weights (float32), a plain causal language model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from inference.ml.dp_accounting import Plan
from inference.ml.private import Checkpoint, NotTrainable, Outcome, Private, Progress, train_loop
from inference.ml.words import _

MAX_LENGTH = 128
ADAPTER_DEFAULTS: dict[str, Any] = {"method": "lora", "rank": 8, "alpha": 16, "targets": ["q_proj", "v_proj"]}
RANK_RANGE = (1, 64)


def lora_config(adapter: dict[str, Any]) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=int(adapter["rank"]), lora_alpha=adapter["alpha"],
                      target_modules=list(adapter["targets"]), lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")


def check_adapter(model: Any, adapter: dict[str, Any]) -> None:
    """Refuses targets that name no Linear layer of the model (checked on a skeleton: no weights read)."""
    import torch

    linear = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)}
    missing = [t for t in adapter["targets"] if t not in linear]
    if missing:
        raise NotTrainable(_('the model has no Linear layer called %(value)s; its layers are %(value2)s') % {"value": ', '.join(missing), "value2": ', '.join(sorted(linear))})


def with_adapters(base: Any, adapter: dict[str, Any]) -> Any:
    """The base model frozen, with fresh LoRA adapters (lora_B zero: at step 0 the model is the base)."""
    from peft import get_peft_model

    check_adapter(base, adapter)
    model = get_peft_model(base, lora_config(adapter))
    for name, parameter in model.named_parameters():
        parameter.requires_grad_("lora_" in name)
    return model


def encode(tokenizer: Any, texts: list[str], *, max_length: int = MAX_LENGTH) -> dict[str, Any]:
    from inference.ml.language_models import encode_from_start

    return encode_from_start(tokenizer, texts, max_length=max_length)


def _trimmed(input_ids: Any, attention_mask: Any) -> tuple[Any, Any]:
    """A batch cut to its longest text: the records are padded to the dataset's longest, and a
    step's cost grows with the length it reads (padding is masked out of the loss either way)."""
    if not len(input_ids):
        return input_ids, attention_mask
    length = max(int(attention_mask.sum(dim=1).max()), 2)
    return input_ids[:, :length], attention_mask[:, :length]


def text_losses(model: Any, input_ids: Any, attention_mask: Any) -> Any:
    """Each text's mean token loss (B): every token after the first predicted from what precedes it."""
    import torch

    from inference.ml.language_models import position_nll

    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]
    target, mask = input_ids[:, 1:], attention_mask[:, 1:].to(logits.dtype)
    nll = position_nll(logits, target) * mask
    return nll.sum(dim=1) / torch.clamp(mask.sum(dim=1), min=1.0)


def train_private(
    model: Any, tokenizer: Any, texts: list[str], plan: Plan, *, device: str = "cpu", secure_mode: bool = False,
    seed: int = 0, resume: Checkpoint | None = None, checkpoint: Callable[[Checkpoint], None] | None = None,
    checkpoint_every: float = 30.0, progress: Callable[[Progress], None] | None = None,
    should_stop: Callable[[], bool] | None = None, max_length: int = MAX_LENGTH, max_physical_batch: int = 0,
) -> Outcome:
    """DP-SGD on the adapters of `model` (from `with_adapters`), `plan.steps` steps, book-keeping clipping."""
    import torch
    from torch.utils.data import TensorDataset

    torch.manual_seed(seed)
    encoded = encode(tokenizer, texts, max_length=max_length)
    data = TensorDataset(encoded["input_ids"], encoded["attention_mask"])

    def step(made: Private, batch: tuple[Any, ...]) -> Any:
        input_ids, attention = _trimmed(*batch)
        return made.backward_losses(text_losses(made.model, input_ids, attention))

    return train_loop(model, data, plan, step, device=device, secure_mode=secure_mode, seed=seed, resume=resume,
                      clipping="bookkeeping", checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                      progress=progress, should_stop=should_stop, max_physical_batch=max_physical_batch,
                      trainable_only=True)


def train_plain(model: Any, tokenizer: Any, texts: list[str], *, steps: int, batch_size: int, learning_rate: float,
                device: str = "cpu", seed: int = 0, max_length: int = MAX_LENGTH,
                should_stop: Callable[[], bool] | None = None) -> Outcome:
    """The same adapters trained without privacy (shuffled batches of `batch_size`, AdamW, no clipping,
    no noise): what a private run is compared with."""
    import random
    import time

    import torch

    began = time.perf_counter()
    torch.manual_seed(seed)
    encoded = encode(tokenizer, texts, max_length=max_length)
    model.to(device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate,
                                  weight_decay=0.0)
    order: list[int] = []
    rng = random.Random(seed)  # noqa: S311  (the order of batches, not a secret)
    loss = float("nan")
    done = 0
    while done < steps:
        if should_stop is not None and should_stop():
            break
        if len(order) < batch_size:
            fresh = list(range(len(texts)))
            rng.shuffle(fresh)
            order += fresh
        chosen, order = order[:batch_size], order[batch_size:]
        ids, mask = _trimmed(encoded["input_ids"][chosen].to(device), encoded["attention_mask"][chosen].to(device))
        optimizer.zero_grad(set_to_none=True)
        losses = text_losses(model, ids, mask)
        losses.mean().backward()
        optimizer.step()
        loss = float(losses.detach().mean())
        done += 1
    model.eval()
    return Outcome(steps=done, epsilon=math.inf, stopped=done < steps, noise_multiplier=0.0, final_loss=loss,
                   seconds=time.perf_counter() - began, clipping="none")


def perplexity(model: Any, tokenizer: Any, texts: list[str], *, device: str = "cpu", batch_size: int = 16,
               max_length: int = MAX_LENGTH, beat: Callable[[], Any] | None = None) -> float:
    """exp of the mean token loss over `texts` (every token predicted, the first from start-of-text);
    `beat` is called after each batch (a job's heartbeat)."""
    from inference.ml.language_models import token_nll

    model.to(device).eval()
    total, count = token_nll(model, tokenizer, texts, max_length=max_length, device=device, batch_size=batch_size,
                             beat=None if beat is None else lambda done: beat())
    if not count:
        raise NotTrainable(_('no held-out text is long enough to measure perplexity on'))
    return math.exp(total / count)


def merged(model: Any) -> Any:
    """The base with the adapters added into its weights: a plain model, no PEFT needed to serve it.

    A base converted from GGUF still says so in its config although its tensors are float: the merged
    weights are plain float32, so that note goes (save_pretrained refuses a model it believes quantised)."""
    base = model.merge_and_unload()
    base.hf_quantizer = None
    if getattr(base.config, "quantization_config", None) is not None:
        del base.config.quantization_config
    return base


def save_merged(model: Any, tokenizer: Any, out: Path) -> None:
    base = merged(model)
    base.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))

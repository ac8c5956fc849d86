"""Differentially private fine-tuning (DP-SGD with Opacus); its accounting is inference/ml/dp_accounting.py.

Training: the whole text encoder is fine-tuned (every parameter, not only the head). Per-sample
clipping is book-keeping clipping (`inference/ml/bookkeeping.py`: the norms and the clipped sum from
one backward pass) where every trainable layer is a Linear, LayerNorm or Embedding, as in BERT-style
encoders; otherwise Opacus's ghost clipping (`grad_sample_mode="ghost"`: the norms without per-sample
gradients, then a second backward pass). Either way Opacus does the rest: Poisson sampling, the
noise, the accountant. BERT-style models get `position_ids` and `token_type_ids` as explicit B x L
tensors, which per-sample hooks on the embeddings need. The loop checkpoints the model, the optimizer
and the accountant, so a retried task resumes where it stopped instead of spending the budget twice.
"""

from __future__ import annotations

import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inference.ml.dp_accounting import ACCOUNTANT, EpsilonMeter, Plan, learning_rate_at
from inference.ml.loading import BUILDING
from inference.ml.words import _

MAX_LENGTH = 64


class NotTrainable(Exception):
    """The model cannot be trained with Opacus (said before anything runs)."""


@dataclass
class Checkpoint:
    """Everything a resumed run needs; `steps` of them are spent."""

    steps: int
    model_state: dict[str, Any]
    optimizer_state: dict[str, Any]
    accountant_state: dict[str, Any]
    loss: float
    rng: dict[str, Any] = field(default_factory=dict)


@dataclass
class Progress:
    step: int
    steps: int
    epoch: int
    loss: float
    epsilon: float


@dataclass
class Outcome:
    steps: int  # steps taken in all (with those of the runs it resumed)
    epsilon: float  # spent, from the accountant
    stopped: bool  # cancelled before the last step
    noise_multiplier: float
    final_loss: float
    seconds: float
    clipping: str = ""  # CLIPPING's key: how the per-sample gradients were clipped


def encode_texts(tokenizer: Any, texts: list[str], *, max_length: int = MAX_LENGTH) -> dict[str, Any]:
    """Token ids padded to one length, with position and token-type ids as explicit, contiguous B x L tensors."""
    import torch

    batch = tokenizer(texts, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    n, length = batch["input_ids"].shape
    return {
        "input_ids": batch["input_ids"].contiguous(),
        "attention_mask": batch["attention_mask"].contiguous(),
        "token_type_ids": torch.zeros((n, length), dtype=torch.long).contiguous(),
        "position_ids": torch.arange(length, dtype=torch.long).unsqueeze(0).expand(n, length).contiguous(),
    }


def load_text_model(folder: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    with BUILDING:
        model = AutoModelForSequenceClassification.from_pretrained(str(folder))
    check_trainable(model)
    return tokenizer, model


def check_folder(folder: Path, *, secure_mode: bool = False) -> None:
    """Checks a Hugging Face classifier's layers from its config alone: built on the meta device, no weights read.

    In secure mode the model must also be one book-keeping clipping handles (make_private says why).
    """
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from inference.ml import bookkeeping

    config = AutoConfig.from_pretrained(str(folder))
    with BUILDING, torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config)
    check_trainable(model)
    if secure_mode and (why := bookkeeping.unsupported(model)):
        raise _secure_mode_refusal(why)


def _secure_mode_refusal(why: str | None) -> NotTrainable:
    return NotTrainable(f"Secure mode needs book-keeping clipping, which cannot clip this model: {why}.")


def check_trainable(model: Any) -> None:
    """Refuses a model with layers Opacus cannot compute per-sample gradients for (its own validator)."""
    from opacus.validators import ModuleValidator

    training = model.training
    model.train()  # the validator also checks the mode; only the layers matter here
    errors = ModuleValidator.validate(model, strict=False)
    model.train(training)
    if errors:
        raise NotTrainable("Opacus cannot train this model: " + "; ".join(str(e) for e in errors[:3]))


CLIPPING = {
    "bookkeeping": "book-keeping clipping (per-sample norms and clipped sum in one backward pass)",
    "ghost": "ghost clipping (Opacus; per-sample norms, then a second backward pass)",
}


@dataclass
class Private:
    """A model made private: what the training loop drives. `backward` replaces `loss.backward()`."""

    engine: Any  # Opacus's PrivacyEngine, with the accountant
    model: Any  # what to call forward on
    optimizer: Any  # Opacus's DPOptimizer: noise, accountant step, scaling
    loader: Any  # Poisson-sampled
    clipping: str  # a key of CLIPPING
    _backward: Callable[[Any, Any], Any]
    _norms: Callable[[], Any]
    _close: Callable[[], None]

    _backward_losses: Callable[[Any], Any] | None = None

    def backward(self, logits: Any, target: Any) -> Any:
        """The clipped gradient sum into each parameter's `.grad`; returns the batch's mean loss (detached)."""
        return self._backward(logits, target)

    def backward_losses(self, losses: Any) -> Any:
        """The same from per-sample losses the caller computed (a language model's mean token loss per
        text); book-keeping clipping only, which takes any per-sample loss."""
        if self._backward_losses is None:
            raise NotTrainable(_('per-sample losses need book-keeping clipping'))
        return self._backward_losses(losses)

    @property
    def per_sample_gradient_norms(self) -> Any:
        """The norms of the last backward's per-sample gradients, before clipping."""
        return self._norms()

    def close(self) -> None:
        self._close()


def make_private(model: Any, optimizer: Any, loader: Any, plan: Plan, *, secure_mode: bool,
                 clipping: str = "auto", seed: int = 0) -> Private:
    """Opacus's make_private_with_epsilon with Poisson sampling, clipped by book-keeping where the model allows.

    `clipping`: "bookkeeping", "ghost" (Opacus's), or "auto" (book-keeping if every trainable layer
    is one it supports). Opacus's optimizer expects the clipped sum in `.grad` either way.

    `secure_mode`: the noise and the Poisson sampling are drawn from a cryptographically strong
    generator (inference/ml/secure_random.py) instead of torch's seeded ones. Opacus's own secure
    mode needs torchcsprng, which does not install beside torch 2, so Opacus runs with it off and
    the two draws are replaced here; that needs book-keeping clipping, whose noise is drawn here.
    """
    import torch
    from opacus import PrivacyEngine

    from inference.ml import bookkeeping

    if clipping == "auto":
        clipping = "ghost" if bookkeeping.unsupported(model) else "bookkeeping"
    if clipping not in CLIPPING:
        raise ValueError(f"unknown clipping {clipping!r}")
    if secure_mode and clipping != "bookkeeping":
        raise _secure_mode_refusal(bookkeeping.unsupported(model))
    with warnings.catch_warnings():
        if secure_mode:  # Opacus warns that its secure RNG is off; the draws are made secure below
            warnings.filterwarnings("ignore", message="Secure RNG turned off")
        engine = PrivacyEngine(accountant=ACCOUNTANT, secure_mode=False)
    # Opacus draws the noise on the parameters' device with this generator: a CPU generator fails on CUDA
    # ("Expected a 'cuda' device type for generator"), found on a lent H100 by tests/inference/ml/test_gpu.py.
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)  # unused for the noise in secure mode
    # Ghost mode either way: its optimizer (DPOptimizerFastGradientClipping) takes the clipped sum from
    # `.grad` and adds the noise; book-keeping then takes the place of its hooks and double backward.
    private_model, private_optimizer, criterion, private_loader = engine.make_private_with_epsilon(
        module=model, optimizer=optimizer, data_loader=loader, criterion=torch.nn.CrossEntropyLoss(),
        target_epsilon=plan.target_epsilon, target_delta=plan.target_delta, epochs=plan.epochs,
        max_grad_norm=plan.max_grad_norm, poisson_sampling=True, grad_sample_mode="ghost",
        noise_generator=generator,
    )
    if abs(private_optimizer.noise_multiplier - plan.noise_multiplier) > 1e-9:
        raise RuntimeError(f"Opacus chose noise {private_optimizer.noise_multiplier}, the plan {plan.noise_multiplier}")
    if clipping == "ghost":
        def ghost_backward(logits: Any, target: Any) -> Any:
            loss = criterion(logits, target)
            loss.backward()
            return loss.detach()

        return Private(engine, private_model, private_optimizer, private_loader, clipping, ghost_backward,
                       lambda: private_model.per_sample_gradient_norms, private_model._close)

    private_model._close()  # Opacus's capture hooks off: book-keeping's take their place
    clipper = bookkeeping.BookKeeping(model, plan.max_grad_norm)
    bookkeeping.noised_in_place(private_optimizer)
    if secure_mode:
        from inference.ml.secure_random import SecureRandom, secure_poisson

        private_optimizer.secure_random = SecureRandom()
        secure_poisson(private_loader.batch_sampler, private_optimizer.secure_random)

    def bookkeeping_backward(logits: Any, target: Any) -> Any:
        losses = torch.nn.functional.cross_entropy(logits, target, reduction="none")
        clipper.backward(losses)
        return losses.detach().mean()

    def losses_backward(losses: Any) -> Any:
        clipper.backward(losses)
        return losses.detach().mean()

    return Private(engine, model, private_optimizer, private_loader, clipping, bookkeeping_backward,
                   lambda: clipper.per_sample_gradient_norms, clipper.close, losses_backward)


def train_text(
    model: Any, tokenizer: Any, texts: list[str], labels: list[int], plan: Plan, *, device: str = "cpu",
    secure_mode: bool = False, seed: int = 0, resume: Checkpoint | None = None, clipping: str = "auto",
    checkpoint: Callable[[Checkpoint], None] | None = None, checkpoint_every: float = 30.0,
    progress: Callable[[Progress], None] | None = None, report_every: float = 1.0,
    should_stop: Callable[[], bool] | None = None, max_length: int = MAX_LENGTH, max_physical_batch: int = 0,
) -> Outcome:
    """DP-SGD fine-tuning of every parameter of a sequence classifier, `plan.steps` optimizer steps in all.

    `max_physical_batch`: the most rows one forward and backward pass takes (0: the plan's batch size).
    """
    import torch
    from torch.utils.data import TensorDataset

    torch.manual_seed(seed)
    encoded = encode_texts(tokenizer, texts, max_length=max_length)
    data = TensorDataset(encoded["input_ids"], encoded["attention_mask"], encoded["token_type_ids"],
                         encoded["position_ids"], torch.tensor(labels, dtype=torch.long))
    for parameter in model.parameters():
        parameter.requires_grad_(True)  # the whole encoder, not only the head

    def step(made: Private, batch: tuple[Any, ...]) -> Any:
        input_ids, attention, token_types, positions, target = batch
        logits = made.model(input_ids=input_ids, attention_mask=attention, token_type_ids=token_types,
                            position_ids=positions).logits
        return made.backward(logits, target)

    return train_loop(model, data, plan, step, device=device, secure_mode=secure_mode, seed=seed, resume=resume,
                      clipping=clipping, checkpoint=checkpoint, checkpoint_every=checkpoint_every, progress=progress,
                      report_every=report_every, should_stop=should_stop, max_physical_batch=max_physical_batch)


def train_loop(
    model: Any, data: Any, plan: Plan, step: Callable[[Private, tuple[Any, ...]], Any], *, device: str = "cpu",
    secure_mode: bool = False, seed: int = 0, resume: Checkpoint | None = None, clipping: str = "auto",
    checkpoint: Callable[[Checkpoint], None] | None = None, checkpoint_every: float = 30.0,
    progress: Callable[[Progress], None] | None = None, report_every: float = 1.0,
    should_stop: Callable[[], bool] | None = None, max_physical_batch: int = 0, trainable_only: bool = False,
) -> Outcome:
    """DP-SGD over the model's trainable parameters, `plan.steps` optimizer steps in all: `step(made,
    batch)` runs the forward pass on a physical batch (its tensors on `device`) and the private backward,
    and returns the batch's mean loss. `trainable_only`: checkpoints keep the trainable parameters only
    (adapters: the frozen base is the base version's)."""
    import torch
    from torch.utils.data import DataLoader

    began = time.perf_counter()
    torch.manual_seed(seed)
    random.seed(seed)
    loader = DataLoader(data, batch_size=plan.batch_size)
    model.to(device)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    names = {name for name, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW(trainable, lr=plan.learning_rate, weight_decay=0.0)
    done = 0
    if resume is not None:
        model.load_state_dict(resume.model_state, strict=not trainable_only)
        optimizer.load_state_dict(resume.optimizer_state)
        done = resume.steps
        torch.manual_seed(seed + done)  # a fresh stream: the resumed steps must not replay the same batches
    made = make_private(model, optimizer, loader, plan, secure_mode=secure_mode, clipping=clipping, seed=seed + done)
    engine = made.engine
    if resume is not None:
        engine.accountant.load_state_dict(resume.accountant_state)
    meter = EpsilonMeter(plan.noise_multiplier, plan.sample_rate, plan.target_delta)
    loss_value, last_save, last_report = float("nan"), time.monotonic(), 0.0
    stopped = False

    def save() -> None:
        if checkpoint is not None:
            state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()
                     if not trainable_only or k in names}
            checkpoint(Checkpoint(steps=done, model_state=state, optimizer_state=optimizer.state_dict(),
                                  accountant_state=engine.accountant.state_dict(), loss=loss_value))

    # Poisson batches vary in size (a batch of 32 expected is over 40 one step in ten): the memory
    # manager splits a batch larger than `max_physical_batch` into physical batches whose clipped
    # sums the optimizer adds up before its one noisy step, so memory is that of the physical batch.
    from opacus.utils.batch_memory_manager import BatchMemoryManager

    physical = max_physical_batch or plan.batch_size
    rows_seen, loss_sum, pending = 0, 0.0, False  # pending: a logical batch is part way through
    with BatchMemoryManager(data_loader=made.loader, max_physical_batch_size=physical,
                            optimizer=made.optimizer) as batches:
        while done < plan.steps and not stopped:
            for batch in batches:
                if not pending and done >= plan.steps:
                    break
                if not pending and should_stop is not None and should_stop():
                    stopped = True
                    break
                tensors = tuple(t.to(device) for t in batch)
                for group in made.optimizer.param_groups:
                    group["lr"] = learning_rate_at(plan, done)
                made.optimizer.zero_grad(set_to_none=True)  # keeps the sum of a split batch's first parts
                rows = len(tensors[0])
                loss = step(made, tensors)
                made.optimizer.step()  # noise and the accountant's step once per logical batch, even an empty one
                if rows:
                    rows_seen += rows
                    loss_sum += float(loss) * rows
                pending = made.optimizer._is_last_step_skipped  # Opacus's own flag: a part, not the whole batch
                if pending:
                    continue
                if rows_seen:
                    loss_value = loss_sum / rows_seen
                rows_seen, loss_sum = 0, 0.0
                done += 1
                now = time.monotonic()
                if now - last_save >= checkpoint_every:
                    last_save = now
                    save()
                if progress is not None and (now - last_report >= report_every or done == plan.steps):
                    last_report = now
                    epoch = 1 + (done - 1) * plan.batch_size // max(plan.rows, 1)
                    progress(Progress(step=done, steps=plan.steps, epoch=min(epoch, plan.epochs), loss=loss_value,
                                      epsilon=meter.epsilon(done)))
    save()
    model.eval()
    made.close()
    return Outcome(steps=done, epsilon=float(engine.accountant.get_epsilon(plan.target_delta)) if done else 0.0,
                   stopped=stopped, noise_multiplier=plan.noise_multiplier, final_loss=loss_value,
                   seconds=time.perf_counter() - began, clipping=made.clipping)


def accuracy(model: Any, tokenizer: Any, texts: list[str], labels: list[int], *, device: str = "cpu",
             batch_size: int = 64, max_length: int = MAX_LENGTH) -> float:
    import torch

    if not texts:
        return float("nan")
    model.to(device)
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            encoded = encode_texts(tokenizer, texts[start:start + batch_size], max_length=max_length)
            logits = model(**{k: v.to(device) for k, v in encoded.items()}).logits
            correct += int((logits.argmax(dim=1).cpu() == torch.tensor(labels[start:start + batch_size])).sum())
    return correct / len(texts)

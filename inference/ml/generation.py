"""Text generation on a worker: a causal language model behind transformers' continuous batching.

No Django here. A `Generator` holds one model, its tokenizer and one `ContinuousBatchingManager`:
a request joins the running batch at a token boundary and leaves it when done (paged attention
over SDPA, on the CPU too). Tokens come back per step and are handed to the caller as text deltas.

The manager samples for all of its requests or for none (`do_sample` is its own setting), so it
samples, with a temperature per request; a greedy request (temperature 0) asks for a temperature
so small that every token but the most likely one has probability 0 in float32, which is argmax.
Two kinds of request decode alone, outside the batch, with a loop of their own:
- seeded sampling: the batch draws from the process's one random generator, interleaved with the
  other requests' draws, so a seed could not make a sampled answer repeat; alone, it draws from a
  generator of its own, seeded;
- `top_logprobs`: the batch returns the chosen token's log-probability only.
Scoring a given text (`echo` with logprobs, as evaluation harnesses ask) is one forward pass.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inference.ml.words import _

logger = logging.getLogger("steward.inference")

GREEDY_TEMPERATURE = 1e-6  # see the module's docstring
# The manager builds its temperature and top-p processors only when the config's values are not
# their no-op defaults (1.0); requests then set their own.
_CONFIG_TEMPERATURE, _CONFIG_TOP_P = 0.7, 0.95


class GenerationError(ValueError):
    """The request cannot be generated as asked; the message says why, for a person."""


@dataclass(frozen=True)
class Sampling:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int = 0

    @property
    def greedy(self) -> bool:
        # a temperature below the one greedy decoding uses picks the most likely token all the same, and
        # dividing logits by it overflows float32 (1e-40: inf, then NaN probabilities; found by fuzzing)
        return self.temperature < GREEDY_TEMPERATURE

    @property
    def alone(self) -> bool:
        """Decoded outside the batch (the module's docstring says why)."""
        return (self.seed is not None and not self.greedy) or self.top_logprobs > 0


@dataclass
class TokenLogprob:
    token: str
    logprob: float | None  # None: a text's first token, which nothing before it predicts
    top: list[tuple[str, float]] = field(default_factory=list)


@dataclass
class Generated:
    text: str
    finish_reason: str  # "stop" (end of text or a stop string), "length", "cancelled"
    prompt_tokens: int
    completion_tokens: int
    logprobs: list[TokenLogprob] | None = None
    seconds: float = 0.0
    first_token_s: float | None = None


# on_delta(text) is called with each new piece of text; it returns False when nobody wants more
# (the client went away), which ends the request and frees its place in the batch.
Delta = Callable[[str], bool]


class _StopScanner:
    """Turns the tokens generated so far into text deltas, holding back what may be the start of a
    stop string or half of a multi-byte character, and finds the first stop string."""

    def __init__(self, decode: Callable[[list[int]], str], stop: Sequence[str]) -> None:
        self.decode, self.stop, self.sent = decode, [s for s in stop if s], 0
        self.text = ""
        self.stopped = False

    def update(self, tokens: list[int], *, final: bool = False) -> str:
        text = self.decode(tokens)
        if text.endswith("\ufffd") and not final:  # a character still being spelt out in bytes
            text = text.rstrip("\ufffd")
        cut = min((i for i in (text.find(s, max(0, self.sent - len(s))) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            text, self.stopped = text[:cut], True
        self.text = text
        safe = len(text)
        if not self.stopped and not final:
            for s in self.stop:  # hold back a tail that could still grow into a stop string
                for k in range(min(len(s) - 1, len(text)), 0, -1):
                    if text.endswith(s[:k]):
                        safe = min(safe, len(text) - k)
                        break
        delta = text[self.sent:safe] if safe > self.sent else ""
        self.sent = max(self.sent, safe)
        return delta


class Generator:
    def __init__(self, folder: Path, device: str = "cpu", *, cache_tokens: int = 16384, batch_tokens: int = 1024) -> None:
        """`cache_tokens`: the key-value cache's capacity, in tokens of all running requests together (the
        manager would otherwise take a share of the machine's free memory for each model); `batch_tokens`:
        the tokens one forward pass takes (prompts are read in chunks of it)."""
        from transformers import AutoTokenizer, GenerationConfig

        from inference.ml import compression
        from inference.ml.language_models import load_causal_lm

        if compression.is_compressed(folder):
            device = "cpu"  # int8 kernels are CPU kernels
        self.device = device
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model: Any = load_causal_lm(folder, attn_implementation="sdpa")  # paged by the manager
        self.model = self.model.to(device).eval()  # type: ignore[arg-type]  # transformers wraps .to for its own check
        config = self.model.config
        self.context = int(getattr(config, "max_position_embeddings", 2048) or 2048)
        eos = self.model.generation_config.eos_token_id if self.model.generation_config else None
        eos = eos if eos is not None else self.tokenizer.eos_token_id
        self.eos_ids = {eos} if isinstance(eos, int) else set(eos or [])
        self.memory = compression.memory_bytes(self.model)
        self.chat_template = bool(getattr(self.tokenizer, "chat_template", None))
        from transformers.generation.configuration_utils import ContinuousBatchingConfig

        generation = GenerationConfig(do_sample=True, temperature=_CONFIG_TEMPERATURE, top_p=_CONFIG_TOP_P,
                                      max_new_tokens=256, eos_token_id=sorted(self.eos_ids) or -1,
                                      pad_token_id=self.tokenizer.pad_token_id or (sorted(self.eos_ids) or [0])[0])
        page = ContinuousBatchingConfig().page_size
        batching = ContinuousBatchingConfig(return_logprobs=True, max_batch_tokens=batch_tokens,
                                            num_blocks=max(1, math.ceil(cache_tokens / page)), per_request_processors=True)
        layers = int(getattr(config, "num_hidden_layers", 1))
        kv_heads: Any = getattr(config, "num_key_value_heads", None) or getattr(config, "num_attention_heads", 1)
        kv_heads = int(kv_heads)
        head = int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)
        self.memory += cache_tokens * layers * 2 * kv_heads * head * 4  # the cache, float32 keys and values
        self.manager = self.model.init_continuous_batching(generation_config=generation,
                                                           continuous_batching_config=batching)
        self.manager.start()
        self._routes: dict[str, queue.SimpleQueue[Any]] = {}
        self._lock = threading.Lock()
        self._alone = threading.Lock()  # one solo decode at a time: it shares the cores with the batch
        self._closed = False
        self._router = threading.Thread(target=self._route, name="generation-router", daemon=True)
        self._router.start()

    # --- prompts ---------------------------------------------------------------------------------

    def chat_ids(self, messages: list[dict[str, str]]) -> list[int]:
        if not self.chat_template:
            raise GenerationError(_('This model has no chat template; use /v1/completions with a prompt.'))
        ids: Any = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        if hasattr(ids, "keys"):  # a BatchEncoding in recent transformers
            ids = ids["input_ids"]
        return [int(i) for i in ids]

    def text_ids(self, prompt: str) -> list[int]:
        return [int(i) for i in self.tokenizer(prompt, add_special_tokens=False)["input_ids"]]

    def decode(self, ids: list[int]) -> str:
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def check_room(self, prompt_tokens: int, max_tokens: int) -> None:
        if prompt_tokens + max_tokens > self.context:
            raise GenerationError(
                _("The prompt has %(prompt_tokens)s tokens and max_tokens is %(max_tokens)s: together they exceed the model's context of %(context)s tokens. Shorten the prompt or ask for fewer tokens.") % {"prompt_tokens": prompt_tokens, "max_tokens": max_tokens, "context": self.context})

    # --- generation ------------------------------------------------------------------------------

    def generate(self, ids: list[int], sampling: Sampling, on_delta: Delta | None = None, *,
                 deadline: float | None = None) -> Generated:
        """Generates a continuation of `ids`, streaming text deltas to `on_delta`."""
        self.check_room(len(ids), sampling.max_tokens)
        if sampling.alone:
            with self._alone:
                return self._generate_alone(ids, sampling, on_delta, deadline)
        return self._generate_batched(ids, sampling, on_delta, deadline)

    def _generate_batched(self, ids: list[int], sampling: Sampling, on_delta: Delta | None,
                          deadline: float | None) -> Generated:
        began = time.perf_counter()
        request_id = f"r{uuid.uuid4().hex}"
        inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        with self._lock:
            self._routes[request_id] = inbox
        temperature = GREEDY_TEMPERATURE if sampling.greedy else float(sampling.temperature)
        scanner = _StopScanner(self.decode, sampling.stop)
        tokens: list[int] = []
        logprobs: list[float] = []
        reason, first = "length", None
        try:
            self.manager.add_request(ids, request_id=request_id, max_new_tokens=sampling.max_tokens, streaming=True,
                                     temperature=temperature, top_p=float(sampling.top_p) if not sampling.greedy else 1.0)
            while True:
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    output = inbox.get(timeout=wait)
                except queue.Empty:
                    self.manager.cancel_request(request_id)
                    raise TimeoutError(_('the generation ran past its deadline')) from None
                if output is None:
                    raise RuntimeError("the generation loop stopped")
                if output.error:
                    raise RuntimeError(f"the generation failed: {output.error}")
                new = list(output.generated_tokens)
                if len(new) > len(tokens):
                    if first is None:
                        first = time.perf_counter() - began
                    logprobs.extend((output.logprobs or [])[len(logprobs):len(new)])
                    tokens = new
                finished = output.is_finished()
                if finished and tokens and tokens[-1] in self.eos_ids:
                    reason = "stop"
                delta = scanner.update([t for t in tokens if t not in self.eos_ids], final=finished)
                if scanner.stopped:
                    reason = "stop"
                if delta and on_delta is not None and not on_delta(delta):
                    reason = "cancelled"
                if scanner.stopped or reason == "cancelled":
                    if not finished:
                        self.manager.cancel_request(request_id)
                    break
                if finished:
                    break
        finally:
            with self._lock:
                self._routes.pop(request_id, None)
        kept = _kept_tokens(tokens, self.eos_ids, scanner, self.decode)
        return Generated(
            text=scanner.text, finish_reason=reason, prompt_tokens=len(ids), completion_tokens=len(tokens),
            logprobs=[TokenLogprob(self.decode([t]), float(lp)) for t, lp in zip(kept, logprobs, strict=False)]
            if sampling.logprobs else None,
            seconds=time.perf_counter() - began, first_token_s=first,
        )

    def _generate_alone(self, ids: list[int], sampling: Sampling, on_delta: Delta | None,
                        deadline: float | None) -> Generated:
        import torch

        began = time.perf_counter()
        generator = torch.Generator(device=self.device)
        generator.manual_seed(int(sampling.seed or 0))
        scanner = _StopScanner(self.decode, sampling.stop)
        tokens: list[int] = []
        recorded: list[TokenLogprob] = []
        reason, first = "length", None
        cache = _plain_cache(self.model)
        step_input = torch.tensor([ids], device=self.device)
        with torch.inference_mode():
            for _step in range(sampling.max_tokens):
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(_('the generation ran past its deadline'))
                out = self.model(input_ids=step_input, past_key_values=cache, use_cache=True)
                cache = out.past_key_values
                logits = out.logits[0, -1].float()
                logp = torch.log_softmax(logits, dim=-1)
                if sampling.greedy:
                    token = int(torch.argmax(logits))
                else:
                    # scaled from the largest logit down: no +inf whatever the temperature
                    probs = _top_p(torch.softmax((logits - logits.max()) / sampling.temperature, dim=-1), sampling.top_p)
                    token = int(torch.multinomial(probs, 1, generator=generator))
                if first is None:
                    first = time.perf_counter() - began
                tokens.append(token)
                if sampling.logprobs:
                    recorded.append(self._token_logprob(token, logp, sampling.top_logprobs))
                finished = token in self.eos_ids
                delta = scanner.update([t for t in tokens if t not in self.eos_ids], final=finished)
                if finished or scanner.stopped:
                    reason = "stop"
                if delta and on_delta is not None and not on_delta(delta):
                    reason = "cancelled"
                if reason != "length":
                    break
                step_input = torch.tensor([[token]], device=self.device)
        if reason == "length":
            tail = scanner.update(tokens, final=True)
            if tail and on_delta is not None:
                on_delta(tail)
        kept = len(_kept_tokens(tokens, self.eos_ids, scanner, self.decode))
        return Generated(text=scanner.text, finish_reason=reason, prompt_tokens=len(ids),
                         completion_tokens=len(tokens), logprobs=recorded[:kept] if sampling.logprobs else None,
                         seconds=time.perf_counter() - began, first_token_s=first)

    def score(self, ids: list[int], top_logprobs: int = 0) -> list[TokenLogprob]:
        """The log-probability of each token of `ids` given those before it (None for the first)."""
        import torch

        if len(ids) > self.context:
            raise GenerationError(_("The text has %(count)s tokens, more than the model's context of %(context)s.") % {"count": len(ids), "context": self.context})
        with self._alone, torch.inference_mode():
            logits = self.model(input_ids=torch.tensor([ids], device=self.device),
                                past_key_values=_plain_cache(self.model), use_cache=True).logits[0].float()
            logp = torch.log_softmax(logits, dim=-1)
        scored = [TokenLogprob(self.decode(ids[:1]), None)]
        for position in range(1, len(ids)):
            scored.append(self._token_logprob(ids[position], logp[position - 1], top_logprobs))
        return scored

    def span_logprob(self, ids: Any, positions: Any, span: Any, *, prefix: int = 0) -> Any:
        """For each row of `ids` (rows x length, one length), the summed log-probability of the tokens
        `span` at `positions` (the positions whose next token they are): teacher forcing, one pass. The
        first `prefix` tokens, the same in every row (a chat template, a system prompt), are run once
        and their keys and values shared by the rows."""
        import numpy as np
        import torch

        ids = np.asarray(ids)
        rows, length = ids.shape
        if length > self.context:
            raise GenerationError(_("The text has %(length)s tokens, more than the model's context of %(context)s.") % {"length": length, "context": self.context})
        prefix = min(prefix, int(positions[0]))  # a scoring position must be in the part that is run
        keep = length - int(positions[0])  # logits from the first scoring position on, not at every position
        with self._alone, torch.inference_mode():
            cache = _plain_cache(self.model)
            if prefix:
                self.model(input_ids=torch.as_tensor(ids[:1, :prefix], device=self.device), past_key_values=cache,
                           use_cache=True, logits_to_keep=1)
                cache.batch_repeat_interleave(rows)
            logits = self.model(input_ids=torch.as_tensor(ids[:, prefix:], device=self.device), past_key_values=cache,
                                use_cache=True, logits_to_keep=keep).logits[:, : len(span)].float()
            picked = torch.log_softmax(logits, dim=-1).gather(
                -1, torch.as_tensor(np.asarray(span), device=self.device).view(1, -1, 1).expand(rows, -1, 1))
            return picked.squeeze(-1).sum(-1).cpu().numpy()

    def _token_logprob(self, token: int, logp: Any, top: int) -> TokenLogprob:
        import torch

        best: list[tuple[str, float]] = []
        if top:
            values, indexes = torch.topk(logp, top)
            best = [(self.decode([int(i)]), float(v)) for v, i in zip(values, indexes, strict=True)]
        return TokenLogprob(self.decode([token]), float(logp[token]), best)

    # --- the manager's results, routed to the requests waiting on them ------------------------------

    def _route(self) -> None:
        while not self._closed:
            try:
                output = self.manager.get_result(timeout=0.1)
            except Exception:  # the manager stopped under us: wake everyone
                logger.exception("continuous batching stopped")
                output = None
            if output is None:
                if not self.manager.is_running():
                    with self._lock:
                        for inbox in self._routes.values():
                            inbox.put(None)
                    if self._closed:
                        return
                    time.sleep(0.1)
                continue
            with self._lock:
                waiting = self._routes.get(output.request_id)
            if waiting is not None:
                waiting.put(output)

    def close(self) -> None:
        """Stops the batch and lets the model's memory go (evicted, or the worker is stopping)."""
        import gc

        self._closed = True
        try:
            self.manager.stop(block=True, timeout=10)
        except Exception:
            logger.exception("stopping continuous batching")
        self._router.join(timeout=5)
        self.manager = self.model = None
        gc.collect()


def _plain_cache(model: Any) -> Any:
    """A key-value cache of its own for a decode outside the batch (the batch's pages are the manager's)."""
    from transformers import DynamicCache

    return DynamicCache(config=model.config)


def _top_p(probs: Any, top_p: float) -> Any:
    import torch

    if top_p >= 1.0:
        return probs
    ordered, indexes = torch.sort(probs, descending=True)
    keep = torch.cumsum(ordered, dim=-1) - ordered < top_p  # always keeps the most likely token
    filtered = torch.zeros_like(probs)
    filtered[indexes[keep]] = ordered[keep]
    return filtered / filtered.sum()


def _kept_tokens(tokens: list[int], eos: set[int], scanner: _StopScanner, decode: Callable[[list[int]], str]) -> list[int]:
    """The generated tokens that the answer's text is made of (up to a stop string, without end-of-text)."""
    kept = [t for t in tokens if t not in eos]
    if not scanner.stopped:
        return kept
    for n in range(len(kept) + 1):
        if len(decode(kept[:n])) >= len(scanner.text):
            return kept[:n]
    return kept


def _start_id(generator: Generator) -> int | None:
    start = generator.tokenizer.bos_token_id
    return int(start) if start is not None else min(generator.eos_ids, default=None)


def loglikelihood(generator: Generator, text: str) -> float:
    """The summed log-probability of every token of `text`, the first predicted from the start-of-text
    token (so two texts are compared over all their tokens, whatever their first word)."""
    start = _start_id(generator)
    ids = generator.text_ids(text)
    if start is not None:
        ids = [start, *ids]
    return float(sum(item.logprob for item in generator.score(ids) if item.logprob is not None))


def perplexity(generator: Generator, texts: Sequence[str], *, window: int = 512) -> float:
    """exp of the mean negative log-likelihood per token over `texts` (each cut to `window` tokens), every
    token predicted, the first from the start-of-text token (as evaluation harnesses score a text)."""
    start = _start_id(generator)
    total, count = 0.0, 0
    for text in texts:
        ids = generator.text_ids(text)[:window]
        if start is not None:
            ids = [start, *ids]
        if len(ids) < 2:
            continue
        scored = generator.score(ids)
        total -= sum(item.logprob for item in scored if item.logprob is not None)
        count += len(ids) - 1
    if count == 0:
        raise GenerationError(_('No text long enough to measure perplexity on.'))
    return math.exp(total / count)

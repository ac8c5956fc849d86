"""SHAP attributions for generated text: which words of the caller's message drove a span of the answer.

The value of a coalition of the message's tokens is the log-probability the model gives the chosen
span of the answer, by teacher forcing, when the other tokens of the message are masked: the prompt
(its chat template, a system prompt, earlier turns: all kept as they were) with the masked tokens
replaced one for one by a filler token ("..."), then the answer up to and through the span, in one
forward pass per batch of coalitions. The attributions are then those of TextExplainer over the
message: exact Shapley values when every coalition fits the budget (2^k <= max_evals), else the
Partition explainer's Owen values over the message's token tree; base + sum = f(x), per the residual.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.ml.explain import Explained, TextExplainer
from inference.ml.words import _

FILLER = "..."


class AlignmentError(ValueError):
    """The message's tokens cannot be found in the prompt as the chat template renders it."""


@dataclass
class Target:
    """What is explained: the prompt's ids, where the message sits in them, the answer's ids and the span."""

    prompt_ids: list[int]
    message_start: int
    message_end: int
    answer_ids: list[int]
    span_start: int  # token positions in the answer
    span_end: int
    span_text: str


def find(haystack: list[int], needle: list[int]) -> int:
    """The last position of `needle` in `haystack`, or -1 (the last user message is the latest turn)."""
    for start in range(len(haystack) - len(needle), -1, -1):
        if haystack[start:start + len(needle)] == needle:
            return start
    return -1


def target_of(generator: Any, *, kind: str, prompt: Any, answer: str, start: int, end: int) -> Target:
    """The prompt and answer as ids, with the message (chat: the last user message; text: the prompt)
    and the characters [start, end) of the answer as a span of its tokens.

    Raises:
        AlignmentError: the message is not a run of tokens of the rendered prompt, or the span holds no token.
    """
    tokenizer = generator.tokenizer
    if kind == "chat":
        prompt_ids = generator.chat_ids(prompt)
        message = next(m["content"] for m in reversed(prompt) if m["role"] == "user")
    else:
        prompt_ids = generator.text_ids(prompt)
        message = prompt
    message_ids = [int(i) for i in tokenizer(message, add_special_tokens=False)["input_ids"]]
    at = find(prompt_ids, message_ids) if message_ids else -1
    if at < 0:
        raise AlignmentError(_("the message's tokens are not found in the prompt as the model's template renders it"))
    encoded = tokenizer(answer, add_special_tokens=False, return_offsets_mapping=True)
    answer_ids = [int(i) for i in encoded["input_ids"]]
    inside = [i for i, (a, b) in enumerate(encoded["offset_mapping"]) if a < end and b > start]
    if not inside:
        raise AlignmentError(_('the span holds no token of the answer'))
    return Target(prompt_ids=prompt_ids, message_start=at, message_end=at + len(message_ids), answer_ids=answer_ids,
                  span_start=inside[0], span_end=inside[-1] + 1, span_text=answer[start:end])


class SpanScorer:
    """A 'classifier' of one output for TextExplainer: the message's ids (masked) -> log p(span | prompt)."""

    def __init__(self, generator: Any, target: Target, *, on_rows: Any = None) -> None:
        self.generator, self.target = generator, target
        self.tokenizer = generator.tokenizer
        self.labels = ["log p(span)"]
        self.on_rows = on_rows  # told the rows evaluated so far (the job's progress)
        self.rows = 0
        self.strip = (0, 0)  # the special tokens the masker keeps around the message (set by explain_span)
        t = target
        self.before = np.asarray(t.prompt_ids[:t.message_start], dtype=np.int64)
        self.after = np.asarray(t.prompt_ids[t.message_end:] + t.answer_ids[:t.span_end], dtype=np.int64)
        # the positions whose next-token distributions score the span's tokens
        first = len(t.prompt_ids) + t.span_start
        self.positions = np.arange(first - 1, len(t.prompt_ids) + t.span_end - 1)
        self.span = np.asarray(t.answer_ids[t.span_start:t.span_end], dtype=np.int64)

    def sequences(self, message_ids: np.ndarray) -> np.ndarray:
        batch = np.asarray(message_ids, dtype=np.int64).reshape(len(message_ids), -1)
        batch = batch[:, self.strip[0]: batch.shape[1] - self.strip[1]]
        rows = len(batch)
        return np.concatenate([np.broadcast_to(self.before, (rows, len(self.before))), batch,
                               np.broadcast_to(self.after, (rows, len(self.after)))], axis=1)

    def proba_from_ids(self, message_ids: np.ndarray) -> np.ndarray:
        """Named as a classifier's, for TextExplainer: here one output, the span's log-probability."""
        ids = self.sequences(message_ids)
        scores = self.generator.span_logprob(ids, self.positions, self.span, prefix=len(self.before))
        self.rows += len(ids)
        if self.on_rows is not None:
            self.on_rows(self.rows)
        return np.asarray(scores, dtype=np.float64).reshape(-1, 1)


def filler_id(tokenizer: Any) -> int:
    ids = tokenizer(FILLER, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise AlignmentError(_('the tokenizer splits %(filler)s, the filler a masked token becomes') % {"filler": f"{FILLER!r}"})
    return int(ids[0])


def explain_span(generator: Any, target: Target, message: str, *, max_evals: int, seed: int, batch_size: int = 32,
                 on_rows: Any = None) -> Explained:
    """Attributions of the span's log-probability to the message's tokens (and words)."""
    scorer = SpanScorer(generator, target, on_rows=on_rows)
    explainer = TextExplainer(scorer, mask_token=filler_id(generator.tokenizer))
    scorer.strip = (explainer.masker.keep_prefix, explainer.masker.keep_suffix)
    return explainer.explain(message, max_evals=max_evals, batch_size=batch_size, seed=seed)

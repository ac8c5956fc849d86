"""Guardrails, the worker side: the policy a completion was admitted under, applied beside the model.

On the prompt, in this order: blocked patterns (on the text as sent), PII masked with the
organisation's redaction rules (the model sees, and Steward stores, the masked text), then the
moderation model on each sentence of the caller's messages. On the output: each sentence, as the
model completes it, is checked against the patterns and the moderation model before it is released
to the caller, so that a stream stopped by the policy has sent nothing it refused. Every decision
(which check, what it found, the score) goes to the completion's record and its audit receipt.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

from audit.log.services import redacted_for
from inference.models import CompletionKind, GuardAction, ModelVersion
from inference.services.guardrails import NEUTRAL_LABEL, PolicySnapshot

# A sentence ends at . ! ? (and their CJK forms) followed by closing quotes or brackets and space,
# or at a line break; a run-on without one is checked once it reaches SENTENCE_MAX characters.
SENTENCE_END = re.compile(r"[.!?\u3002\uff01\uff1f\u2026][\"'\u201d\u2019)\]]*\s+|\n+")
SENTENCE_MAX = 400
INPUT_MAX_SENTENCES = 64  # the prompt's sentences scored (the longest first beyond that)
PLACEHOLDER = re.compile(r"\[([A-Z][A-Z0-9_]{0,31})\]")


class Blocked(Exception):
    """The prompt is refused by the policy; `decision` says which check and why."""

    def __init__(self, decision: dict[str, Any]) -> None:
        super().__init__(decision.get("reason", "blocked"))
        self.decision = decision


def sentences(text: str) -> list[str]:
    """`text` cut where SENTENCE_END matches (each piece keeps its end), without empty pieces."""
    pieces, at = [], 0
    for match in SENTENCE_END.finditer(text):
        pieces.append(text[at:match.end()])
        at = match.end()
    pieces.append(text[at:])
    return [p for p in pieces if p.strip()]


_versions: dict[int, ModelVersion] = {}
_versions_lock = threading.Lock()


def _moderation_version(version_id: int) -> ModelVersion:
    with _versions_lock:
        if version_id not in _versions:
            _versions[version_id] = ModelVersion.objects.select_related("model").get(pk=version_id)
        return _versions[version_id]


class Guard:
    """One completion's guard: its policy, and the decisions taken so far (thread-safe: the choices
    of a request with n > 1 are checked from their own threads)."""

    def __init__(self, policy: dict[str, Any] | None, *, organization_id: int, asked_max_tokens: int | None = None,
                 score: Callable[[list[str]], list[dict[str, float]]] | None = None) -> None:
        self.policy = PolicySnapshot(**(policy or {}))
        self.organization_id = organization_id
        self.decisions: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._patterns: list[Any] | None = None
        self._score = score
        self.checked_sentences = 0
        self.waited_s = 0.0
        self.output_max: dict[str, float] = {}
        if self.policy.max_output_tokens and asked_max_tokens and asked_max_tokens > self.policy.max_output_tokens:
            self.decide({"stage": "output", "check": "max_output_tokens", "action": "limited",
                         "asked": asked_max_tokens, "limit": self.policy.max_output_tokens})

    @property
    def active(self) -> bool:
        return self.policy.id is not None

    def decide(self, decision: dict[str, Any]) -> None:
        with self._lock:
            self.decisions.append(decision)

    def record(self) -> dict[str, Any]:
        """What the completion's record and receipt keep: the policy, each decision, the outcome."""
        if not self.active:
            return {}
        with self._lock:
            # the prompt's checks first: its moderation may finish after the first output sentence's
            decisions = sorted(self.decisions, key=lambda d: d["stage"] != "input")
            if self.checked_sentences:
                decisions.append({"stage": "output", "check": "moderation" if self.policy.output_action != "off"
                                  else "patterns", "action": "passed" if not self._fired_output(decisions) else
                                  "checked", "sentences": self.checked_sentences,
                                  "max_scores": {c: round(s, 4) for c, s in self.output_max.items()}})
        return {**self.policy.summary(), "outcome": outcome_of(decisions), "decisions": decisions,
                "wait_ms": round(self.waited_s * 1000, 3)}

    def waited(self, seconds: float) -> None:
        """Counts time the request spent waiting on a check (what the guardrails added to its latency,
        beside the cores the checks took from the model meanwhile)."""
        with self._lock:
            self.waited_s += seconds

    @staticmethod
    def _fired_output(decisions: list[dict[str, Any]]) -> bool:
        return any(d["stage"] == "output" and d["action"] in ("flagged", "stopped") for d in decisions)

    # --- the checks ---------------------------------------------------------------------------------

    def patterns(self) -> list[Any]:
        if self._patterns is None:
            from audit.log.redaction import compile_rule

            self._patterns = [compile_rule(p) for p in self.policy.blocked_patterns]
        return self._patterns

    def pattern_hit(self, text: str) -> int | None:
        for number, pattern in enumerate(self.patterns()):
            if pattern.search(text) is not None:
                return number
        return None

    def scores(self, texts: list[str]) -> list[dict[str, float]]:
        """The moderation model's scores of its categories (those the policy checks), per text."""
        if self._score is not None:
            return self._score(texts)
        from inference.runtime import loaded_model

        loaded = loaded_model(_moderation_version(int(self.policy.moderation_version_id or 0)))
        labels = loaded.predictor.labels
        wanted = [c for c in labels if c != NEUTRAL_LABEL and (not self.policy.categories or c in self.policy.categories)]
        rows = loaded.batcher.submit(texts)
        return [{c: float(row[labels.index(c)]) for c in wanted} for row in rows]

    def check_prompt(self, kind: str, prompt: Any) -> Any:
        """The prompt the model may see (masked when the policy says so), screened and moderated.

        Raises:
            Blocked: a blocked pattern, or the moderation model's score over the input threshold.
        """
        prompt = self.screen_prompt(kind, prompt)
        self.moderate_prompt(kind, prompt)
        return prompt

    def screen_prompt(self, kind: str, prompt: Any) -> Any:
        """Blocked patterns, then PII masked: the cheap checks, done before the model sees the prompt.

        Raises:
            Blocked: a blocked pattern.
        """
        if not self.active:
            return prompt
        texts = [m["content"] for m in prompt] if kind == CompletionKind.CHAT else [prompt]
        for text in texts:
            hit = self.pattern_hit(text)
            if hit is not None:
                decision = {"stage": "input", "check": "pattern", "action": "blocked", "pattern": hit + 1,
                            "reason": f"the prompt matches blocked pattern {hit + 1} of the policy"}
                self.decide(decision)
                raise Blocked(decision)
        if self.policy.mask_pii:
            masked = redacted_for(organization_id=self.organization_id, value=prompt)
            found = _placeholders(masked) - _placeholders(prompt)
            self.decide({"stage": "input", "check": "pii", "action": "masked" if found else "passed",
                         "masked": dict(sorted(found.items()))})
            prompt = masked
        return prompt

    @property
    def moderates_prompt(self) -> bool:
        return self.active and self.policy.input_action != GuardAction.OFF

    def moderate_prompt(self, kind: str, prompt: Any) -> None:
        """The moderation model on each sentence of the caller's words (the prompt as the model sees it).

        Raises:
            Blocked: a score over the input threshold, when the policy blocks.
        """
        if not self.moderates_prompt:
            return
        # the caller's words (not a system prompt, which is the deployer's)
        said = [m["content"] for m in prompt if m["role"] != "system"] if kind == CompletionKind.CHAT else [prompt]
        pieces = [s.strip() for text in said for s in sentences(text)]
        pieces = sorted(pieces, key=len, reverse=True)[:INPUT_MAX_SENTENCES] or [""]
        best = _maxima(self.scores(pieces))
        fired = {c: s for c, s in best.items() if s >= self.policy.input_threshold}
        action = ("blocked" if self.policy.input_action == GuardAction.BLOCK else "flagged") if fired else "passed"
        decision = {"stage": "input", "check": "moderation", "action": action, "threshold": self.policy.input_threshold,
                    "scores": {c: round(s, 4) for c, s in best.items()}, "fired": sorted(fired),
                    "sentences": len(pieces)}
        if action == "blocked":
            decision["reason"] = (f"the moderation model scores the prompt {', '.join(sorted(fired))} at "
                                  f"{max(fired.values()):.2f} (the policy blocks from {self.policy.input_threshold})")
            self.decide(decision)
            raise Blocked(decision)
        self.decide(decision)

    def output_gate(self, index: int, release: Callable[[str], None]) -> OutputGate | None:
        """A gate for one choice's text when the policy checks outputs, else None (text flows as made)."""
        return OutputGate(self, index, release) if self.active and self.policy.checks_output else None

    def check_sentence(self, index: int, sentence: str, before: str) -> bool:
        """Whether a sentence of the output may be released (False: the policy stops the choice)."""
        # a pattern may straddle two sentences: it is looked for in the previous one and this one
        hit = self.pattern_hit(before + sentence)
        if hit is not None:
            self.decide({"stage": "output", "check": "pattern", "action": "stopped", "choice": index,
                         "pattern": hit + 1, "sentence": redacted_for(organization_id=self.organization_id,
                                                                       value=sentence.strip())})
            return False
        if self.policy.output_action == GuardAction.OFF or not sentence.strip():
            with self._lock:
                self.checked_sentences += 1
            return True
        scores = self.scores([sentence.strip()])[0]
        fired = {c: s for c, s in scores.items() if s >= self.policy.output_threshold}
        with self._lock:
            self.checked_sentences += 1
            for category, score in scores.items():
                self.output_max[category] = max(score, self.output_max.get(category, 0.0))
        if not fired:
            return True
        stop = self.policy.output_action == GuardAction.BLOCK
        self.decide({"stage": "output", "check": "moderation", "action": "stopped" if stop else "flagged",
                     "choice": index, "threshold": self.policy.output_threshold,
                     "scores": {c: round(s, 4) for c, s in scores.items()}, "fired": sorted(fired),
                     "sentence": redacted_for(organization_id=self.organization_id, value=sentence.strip())})
        return not stop


class PromptVerdict:
    """The moderation of the prompt, run beside the model while it reads the prompt and starts to answer
    (on this CPU the check costs about as much as reading a short prompt, so it leaves the critical path).
    Nothing the model writes is released before the verdict: text offered meanwhile is held, released in
    order once the prompt passes, and dropped if it is refused (the generation is then stopped)."""

    def __init__(self, guard: Guard, kind: str, prompt: Any) -> None:
        self.blocked: Blocked | None = None
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._done = False
        self._held: list[tuple[Callable[[str], None], str]] = []
        self._thread = threading.Thread(target=self._run, args=(guard, kind, prompt), name="prompt-check",
                                        daemon=True)
        self._thread.start()

    def _run(self, guard: Guard, kind: str, prompt: Any) -> None:
        try:
            guard.moderate_prompt(kind, prompt)
        except Blocked as blocked:
            self.blocked = blocked
        except BaseException as exc:  # raised again on the task's thread by wait()
            self.error = exc
        finally:
            from django.db import connections

            connections.close_all()  # this thread's own (the moderation version's first lookup)
            with self._lock:  # flushed under the lock: a release that comes after sees it done
                self._done = True
                if self.passed:
                    for release, text in self._held:
                        release(text)
                self._held = []

    @property
    def passed(self) -> bool:
        return self.blocked is None and self.error is None

    @property
    def refused(self) -> bool:
        """The prompt is refused (or could not be checked): the model should stop."""
        return self._done and not self.passed

    def holding(self, release: Callable[[str], None]) -> Callable[[str], None]:
        """`release`, held back until the prompt passes."""
        def hold(text: str) -> None:
            with self._lock:
                if not self._done:
                    self._held.append((release, text))
                    return
            if self.passed:
                release(text)
        return hold

    def wait(self) -> Blocked | None:
        """Waits for the verdict: the refusal, or None when the prompt passed; a failed check raises."""
        self._thread.join()
        if self.error is not None:
            raise self.error
        return self.blocked


class OutputGate:
    """Holds one choice's text until a sentence is complete, checks it, then releases it (or stops)."""

    def __init__(self, guard: Guard, index: int, release: Callable[[str], None]) -> None:
        self.guard, self.index, self.release = guard, index, release
        self.pending = ""
        self.released: list[str] = []
        self.stopped = False

    @property
    def text(self) -> str:
        return "".join(self.released)

    def feed(self, delta: str) -> bool:
        """Takes a delta of text; False once the policy stopped this choice (generation should end)."""
        if self.stopped:
            return False
        self.pending += delta
        while True:
            match = SENTENCE_END.search(self.pending)
            if match is not None:
                end = match.end()
            elif len(self.pending) >= SENTENCE_MAX:
                space = self.pending.rfind(" ", 0, SENTENCE_MAX)
                end = space + 1 if space > 0 else SENTENCE_MAX
            else:
                return True
            sentence, self.pending = self.pending[:end], self.pending[end:]
            if not self._pass(sentence):
                return False

    def finish(self) -> None:
        """The model stopped: what is left is checked as the last sentence."""
        if not self.stopped and self.pending:
            sentence, self.pending = self.pending, ""
            self._pass(sentence)

    def _pass(self, sentence: str) -> bool:
        before = self.released[-1] if self.released else ""
        if self.guard.check_sentence(self.index, sentence, before):
            self.released.append(sentence)
            self.release(sentence)
            return True
        self.stopped = True
        self.pending = ""
        return False


def outcome_of(decisions: list[dict[str, Any]]) -> str:
    actions = {d["action"] for d in decisions}
    if "blocked" in actions:
        return "blocked"
    if "stopped" in actions:
        return "filtered"
    if "flagged" in actions:
        return "flagged"
    return ""


def _maxima(rows: list[dict[str, float]]) -> dict[str, float]:
    best: dict[str, float] = {}
    for row in rows:
        for category, score in row.items():
            best[category] = max(score, best.get(category, 0.0))
    return best


def _placeholders(value: Any) -> Counter[str]:
    """How many of each redaction placeholder ([EMAIL], [PHONE], ...) a JSON value's strings hold."""
    found: Counter[str] = Counter()
    if isinstance(value, str):
        found.update(PLACEHOLDER.findall(value))
    elif isinstance(value, list):
        for item in value:
            found.update(_placeholders(item))
    elif isinstance(value, dict):
        for item in value.values():
            found.update(_placeholders(item))
    return found

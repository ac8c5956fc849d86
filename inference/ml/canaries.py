"""Canaries: an empirical measure of what a fine-tuned language model memorised of single records.

Carlini et al., "The Secret Sharer" (USENIX Security 2019): secret canaries, random sequences in a
fixed format ("My account number is 281 946 307."), are inserted into a copy of the training data
a known number of times; after training, a canary's exposure is

    exposure = log2 |R| - log2 rank

where R is the space of possible secrets and rank the canary's place among them when ordered by the
model's likelihood (1: the model's favourite). A model that learnt nothing of the canary ranks it
at random: expected exposure about log2(e) = 1.44 bits. One that memorised it ranks it first:
log2 |R| bits.

The rank among 10^9 secrets is not enumerated: it is estimated from `references` secrets drawn
from R (never inserted), as the paper's section 4.3 does. Counting gives -log2 of the share of
references at least as likely as the canary (resolution log2(references + 1) bits); the skew-normal
fitted to the references' log-perplexities extrapolates beyond it. Both are reported.

`exposure_bound` is what (epsilon, delta)-DP implies (see its docstring); a private run's exposures
should stay within it, a non-private run's need not.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

FORMATS = {
    "account": "My account number is {secret}.",
    "phone": "Call me on {secret}, that's my private number.",
}
DEFAULT_FORMAT = "account"
LN2 = math.log(2)


@dataclass(frozen=True)
class Space:
    """The secrets of one format: `digits` decimal digits in groups of three."""

    format: str = DEFAULT_FORMAT
    digits: int = 9

    @property
    def bits(self) -> float:
        return self.digits * math.log2(10)

    def secret(self, value: int) -> str:
        raw = f"{value:0{self.digits}d}"
        return " ".join(raw[i:i + 3] for i in range(0, len(raw), 3))

    def text(self, secret: str) -> str:
        return FORMATS[self.format].format(secret=secret)

    def draw(self, count: int, *, avoid: set[str] | None = None) -> list[str]:
        """`count` distinct secrets drawn uniformly (the system's CSPRNG: a canary is a secret)."""
        chosen: list[str] = []
        taken = set(avoid or ())
        while len(chosen) < count:
            secret = self.secret(secrets.randbelow(10 ** self.digits))
            if secret not in taken:
                taken.add(secret)
                chosen.append(secret)
        return chosen


def with_canaries(texts: Sequence[str], canary_texts: Sequence[str], insertions: int, *, seed: int) -> list[str]:
    """A copy of the training texts with each canary `insertions` times, shuffled (seeded)."""
    import random

    out = [*texts, *(t for t in canary_texts for _ in range(insertions))]
    random.Random(seed).shuffle(out)  # noqa: S311  (order of records, not a secret)
    return out


def sequence_nll(model: Any, tokenizer: Any, texts: Sequence[str], *, device: str = "cpu", batch_size: int = 64,
                 beat: Callable[[int], Any] | None = None) -> list[float]:
    """Each text's log-perplexity in nats: the summed negative log-likelihood of all its tokens, the
    first predicted from the start-of-text token (the paper's Px(s), in nats rather than bits)."""
    from inference.ml.language_models import text_nll

    model.to(device).eval()
    return [total for total, _ in text_nll(model, tokenizer, list(texts), max_length=128, device=device,
                                           batch_size=batch_size, beat=beat)]


@dataclass(frozen=True)
class Exposure:
    counted: float  # -log2 of the share of references at least as likely (at most log2(references + 1))
    extrapolated: float  # -log2 of the skew-normal's CDF at the canary's log-perplexity, within [0, space bits]
    rank_share: float  # references at least as likely, over references + 1 (the canary itself)
    nll: float  # the canary's log-perplexity (nats)


def fit_references(reference_nll: Sequence[float]) -> tuple[float, float, float]:
    """The skew-normal (shape, location, scale) of the references' log-perplexities (maximum likelihood)."""
    from scipy.stats import skewnorm

    a, loc, scale = skewnorm.fit(list(reference_nll))
    return float(a), float(loc), float(scale)


def exposure(canary_nll: float, reference_nll: Sequence[float], space_bits: float,
             fitted: tuple[float, float, float] | None = None) -> Exposure:
    """The canary's exposure against references drawn from the same space (see the module's docstring)."""
    from scipy.stats import skewnorm

    count = len(reference_nll)
    if count < 2:
        raise ValueError("exposure needs at least two reference secrets")
    ahead = sum(1 for r in reference_nll if r < canary_nll) + 0.5 * sum(1 for r in reference_nll if r == canary_nll)
    share = (ahead + 1) / (count + 1)  # the canary's own place counts: rank 1 is share 1 / (n + 1)
    counted = min(space_bits, -math.log2(share))
    a, loc, scale = fitted or fit_references(reference_nll)
    log_cdf = float(skewnorm.logcdf(canary_nll, a, loc=loc, scale=scale))
    extrapolated = space_bits if not math.isfinite(log_cdf) else -log_cdf / LN2
    return Exposure(counted=round(counted, 4), extrapolated=round(min(space_bits, max(0.0, extrapolated)), 4),
                    rank_share=share, nll=canary_nll)


def exposure_bound(epsilon: float, delta: float, insertions: int, space_bits: float) -> float:
    """The largest expected exposure (bits) a canary inserted `insertions` times can have under a
    model trained with (epsilon, delta)-DP at the level of one record.

    k insertions are k records: group privacy gives (k eps, k e^((k-1) eps) delta). For one fixed
    canary c, the model trained without it is independent of c, which is uniform on R, so its rank
    is uniform and P[exposure >= x] = 2^-x. DP bounds the probability of the same event (a function
    of the model and c) with c inserted: P[exposure >= x] <= e^(k eps) 2^-x + delta_k. Integrating
    over x in [0, log2 |R|]:

        E[exposure] <= x0 + (1 - 2^-(L - x0)) / ln 2 + delta_k L,  x0 = k eps / ln 2, L = log2 |R|

    (the first term where the bound exceeds 1). It is at most L, which it equals when vacuous.
    """
    if epsilon <= 0 or insertions < 1:
        raise ValueError("epsilon must be positive and insertions at least 1")
    eps_k = insertions * epsilon
    delta_k = min(1.0, insertions * math.exp(min((insertions - 1) * epsilon, 700.0)) * delta)
    x0 = eps_k / LN2
    if x0 >= space_bits:
        return space_bits
    bound = x0 + (1 - 2 ** -(space_bits - x0)) / LN2 + delta_k * space_bits
    return min(space_bits, round(bound, 4))


def measure(model: Any, tokenizer: Any, space: Space, canaries: Sequence[str], references: Sequence[str], *,
            device: str = "cpu", beat: Callable[[int], Any] | None = None) -> dict[str, Any]:
    """Every canary's exposure under `model`, and their mean (the figure reported)."""
    texts = [space.text(s) for s in (*canaries, *references)]
    nll = sequence_nll(model, tokenizer, texts, device=device, beat=beat)
    canary_nll, reference_nll = nll[:len(canaries)], nll[len(canaries):]
    fitted = fit_references(reference_nll)
    found = [exposure(c, reference_nll, space.bits, fitted) for c in canary_nll]
    return {
        "canaries": [{"secret": s, "nll": round(e.nll, 4), "exposure": e.extrapolated,
                      "exposure_counted": e.counted} for s, e in zip(canaries, found, strict=True)],
        "mean_exposure": round(sum(e.extrapolated for e in found) / len(found), 4),
        "max_exposure": round(max(e.extrapolated for e in found), 4),
        "mean_exposure_counted": round(sum(e.counted for e in found) / len(found), 4),
        "reference_fit": {"shape": fitted[0], "location": fitted[1], "scale": fitted[2]},
        "reference_nll_median": round(sorted(reference_nll)[len(reference_nll) // 2], 4),
    }


def audit_plan(plan: Any, rows: int) -> Any:
    """The fine-tune's request (target epsilon and delta, epochs, batch size, learning rate, clipping,
    schedule) planned on the copy with canaries, as a fine-tuning run of those rows would be: the
    noise and the steps follow the rows (Opacus picks the noise from the target when it runs)."""
    from inference.ml import dp_accounting

    return dp_accounting.plan_run(target_epsilon=plan.target_epsilon, target_delta=plan.target_delta, rows=rows,
                                  epochs=plan.epochs, batch_size=plan.batch_size, learning_rate=plan.learning_rate,
                                  max_grad_norm=plan.max_grad_norm, lr_schedule=plan.lr_schedule)


@dataclass
class Runs:
    """What `run` reports to its caller (a job: progress, checkpoints, cancellation; a benchmark: nothing)."""

    stage: Callable[[str], Any] = lambda name: None
    private_done: Callable[[dict[str, Any]], Any] = lambda measured: None
    resume: Any = None  # a private.Checkpoint of the private run
    checkpoint: Callable[[Any], None] | None = None
    checkpoint_every: float = 30.0
    progress: Callable[[Any], None] | None = None
    should_stop: Callable[[], bool] | None = None
    beat: Callable[[int], Any] | None = None


def run(load_base: Callable[[], Any], tokenizer: Any, texts: Sequence[str], plan: Any, adapter: dict[str, Any],
        space: Space, canaries: Sequence[str], references: Sequence[str], *, insertions: int, compare: bool,
        device: str = "cpu", seed: int = 0, secure_mode: bool = False, private_measured: dict[str, Any] | None = None,
        runs: Runs | None = None) -> dict[str, Any] | None:
    """The audit: the base's exposures, the private run's and (with `compare`) the non-private run's.

    `plan` is the audit's (`audit_plan`); `private_measured`, when a resumed audit already has it,
    skips the private run. Returns None when stopped (cancelled) part way."""
    from inference.ml import private_lm

    runs = runs or Runs()
    augmented = with_canaries(texts, [space.text(c) for c in canaries], insertions, seed=seed)
    runs.stage("measuring the base")
    base = load_base()
    found: dict[str, Any] = {"base": measure(base, tokenizer, space, canaries, references, device=device,
                                             beat=runs.beat)}
    if private_measured is None:
        runs.stage("private training")
        model = private_lm.with_adapters(base, adapter)
        outcome = private_lm.train_private(
            model, tokenizer, augmented, plan, device=device, secure_mode=secure_mode, seed=seed, resume=runs.resume,
            checkpoint=runs.checkpoint, checkpoint_every=runs.checkpoint_every, progress=runs.progress,
            should_stop=runs.should_stop)
        if outcome.stopped:
            return None
        runs.stage("measuring the private model")
        private_measured = {**measure(model, tokenizer, space, canaries, references, device=device, beat=runs.beat),
                            "epsilon": round(outcome.epsilon, 6), "steps": outcome.steps,
                            "final_loss": outcome.final_loss, "seconds": round(outcome.seconds, 1)}
        runs.private_done(private_measured)
        base = load_base()  # the adapters were trained in place of the base's modules
    found["private"] = private_measured
    if compare:
        runs.stage("non-private training")

        def plain_should_stop() -> bool:  # asked once a step: the job's heartbeat too
            if runs.beat is not None:
                runs.beat(0)
            return bool(runs.should_stop is not None and runs.should_stop())

        model = private_lm.with_adapters(base, adapter)
        outcome = private_lm.train_plain(model, tokenizer, augmented, steps=plan.steps, batch_size=plan.batch_size,
                                         learning_rate=plan.learning_rate, device=device, seed=seed,
                                         should_stop=plain_should_stop)
        if outcome.stopped:
            return None
        runs.stage("measuring the non-private model")
        found["non_private"] = {**measure(model, tokenizer, space, canaries, references, device=device,
                                          beat=runs.beat),
                                "steps": outcome.steps, "final_loss": outcome.final_loss,
                                "seconds": round(outcome.seconds, 1)}
    epsilon = private_measured["epsilon"]
    found["bound"] = exposure_bound(epsilon, plan.target_delta, insertions, space.bits)
    found["space_bits"] = round(space.bits, 4)
    found["counted_resolution_bits"] = round(math.log2(len(references) + 1), 4)
    found["within_bound"] = private_measured["mean_exposure"] <= found["bound"]
    return found

"""Generated text as evidence (bias probes): sampled continuations and log-likelihoods of given texts,
on this generation worker's model, sharing its continuous batch with live traffic.

Called by other apps' jobs that run on the generation worker (audit/fairness); nothing here is
stored or receipted: the job that asks does both.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings

from inference.models import ModelVersion

Progress = Callable[[int, int], None]
# a probe's requests in flight at once: enough to fill the batch, few enough to leave live traffic room
IN_FLIGHT = 16


def texts_sample(*, version: ModelVersion, prompts: list[str], per_prompt: int, max_tokens: int,
                 temperature: float, top_p: float, progress: Progress | None = None) -> list[list[str]]:
    """`per_prompt` sampled continuations of each prompt (plain text continuation, no chat template)."""
    from inference.ml.generation import Sampling
    from inference.runtime import loaded_generator

    generator = loaded_generator(version)
    sampling = Sampling(max_tokens=max_tokens, temperature=temperature, top_p=top_p)
    jobs = [(p, j) for p in range(len(prompts)) for j in range(per_prompt)]
    out: list[list[str]] = [[""] * per_prompt for _ in prompts]
    deadline = time.monotonic() + settings.GENERATION_TIMEOUT_SECONDS * max(1, len(jobs) // IN_FLIGHT)

    def one(job: tuple[int, int]) -> tuple[int, int, str]:
        p, j = job
        # BOLD's prompts end with a space; a BPE model reads "word " + " next" badly, so it is dropped
        ids = generator.text_ids(prompts[p].rstrip())
        return p, j, generator.generate(ids, sampling, deadline=deadline).text

    with ThreadPoolExecutor(max_workers=IN_FLIGHT, thread_name_prefix="probe") as pool:
        for done, (p, j, text) in enumerate(pool.map(one, jobs), start=1):
            out[p][j] = text
            if progress:
                progress(done, len(jobs))
    return out


def texts_loglikelihood(*, version: ModelVersion, texts: list[str], progress: Progress | None = None) -> list[float]:
    """The summed log-probability of each text under the model (from its start-of-text token)."""
    from inference.ml.generation import loglikelihood
    from inference.runtime import loaded_generator

    generator = loaded_generator(version)
    out = []
    for done, text in enumerate(texts, start=1):
        out.append(loglikelihood(generator, text))
        if progress:
            progress(done, len(texts))
    return out

"""make bench-llm: the demo `assistant` (SmolLM2-135M) served through the portal vs the engine alone.

One run, one machine, one model, greedy, the same prompts of mixed lengths, max_tokens 16 to 128:
- raw: the model in-process with transformers' static `generate` at its best batch size (the limit),
  in output tokens per second (a request's own tokens: up to its end of text or its max_tokens);
- portal: HTTP end to end with the `openai` SDK, streaming, at concurrency 1 (time to first token)
  and 16 (output tokens per second), with Redis and PostgreSQL;
- continuous against static batching in-process under the same arrival pattern (Poisson arrivals):
  static runs a batch to its end before it takes the next; continuous lets requests join and leave
  the running batch (inference/ml/generation.Generator).

Prints last: `llm: c16 tokens/s portal/raw = X, c1 TTFT overhead = Y ms, continuous/static = Z`.
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, p50, write_section

THREADS = int(os.environ.get("GENERATION_THREADS", "1"))
REQUESTS = int(os.environ.get("BENCH_LLM_REQUESTS", "32"))
ARRIVALS_PER_S = float(os.environ.get("BENCH_LLM_RATE", "0.5"))
MAX_TOKENS = (16, 32, 64, 128)
QUESTIONS = [
    "What is the capital of France?", "Give me three tips for a good night's sleep.",
    "Explain what a bank overdraft is to a teenager.", "Write a short poem about autumn leaves.",
    "Summarise the plot of a detective story in two sentences.", "What are the primary colours?",
    "How do I boil an egg?", "List four animals that live in the ocean.",
]


def prompts() -> list[tuple[list[dict[str, str]], int]]:
    """REQUESTS chat requests: questions alone, or after a paragraph of review sentences (mixed lengths)."""
    sentences = [s.strip() for s in (ROOT / "data" / "uci_sentences" / "heldout.txt").read_text().splitlines() if s.strip()]
    draw = random.Random(7)
    found = []
    for number in range(REQUESTS):
        question = QUESTIONS[number % len(QUESTIONS)]
        context = " ".join(draw.sample(sentences, draw.choice([0, 2, 6, 12])))
        content = f"{context}\n\n{question}" if context else question
        found.append(([{"role": "user", "content": content}], MAX_TOKENS[number % len(MAX_TOKENS)]))
    return found


def useful_tokens(tokens: list[int], eos: set[int], limit: int) -> int:
    for position, token in enumerate(tokens[:limit]):
        if token in eos:
            return position + 1
    return min(len(tokens), limit)


def static_run(generator, batch: list[tuple[list[int], int]]) -> int:
    """One static batch: left-padded, run until its longest request's max_tokens (or all ended)."""
    import torch

    pad = generator.tokenizer.pad_token_id if generator.tokenizer.pad_token_id is not None else min(generator.eos_ids)
    width = max(len(ids) for ids, _ in batch)
    input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids, _ in batch], device=generator.device)
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids, _ in batch], device=generator.device)
    with torch.inference_mode():
        out = generator.plain.generate(input_ids=input_ids, attention_mask=mask, do_sample=False, pad_token_id=pad,
                                       max_new_tokens=max(limit for _, limit in batch))
    return sum(useful_tokens(row[width:].tolist(), generator.eos_ids, limit) for row, (_, limit) in zip(out, batch, strict=True))


def raw_static(generator, requests: list[tuple[list[int], int]]) -> tuple[float, int, dict[int, float]]:
    by_batch = {}
    for size in (1, 4, 8, 16):
        static_run(generator, requests[:size])  # warm
        began, tokens = time.perf_counter(), 0
        for start in range(0, len(requests), size):
            tokens += static_run(generator, requests[start:start + size])
        by_batch[size] = tokens / (time.perf_counter() - began)
        print(f"raw static batch {size}: {by_batch[size]:.1f} tokens/s", flush=True)
    best = max(by_batch, key=by_batch.__getitem__)
    return by_batch[best], best, by_batch


def arrivals(count: int) -> list[float]:
    draw, at, times = random.Random(11), 0.0, []
    for _ in range(count):
        times.append(at)
        at += draw.expovariate(ARRIVALS_PER_S)
    return times


def under_arrivals(generator, requests: list[tuple[list[int], int]], batch_size: int) -> dict[str, float]:
    """Continuous and static batching fed the same Poisson arrivals: output tokens/s and mean latency."""
    from inference.ml.generation import Sampling

    times = arrivals(len(requests))
    results: dict[str, float] = {}
    # continuous: each request joins the running batch when it arrives
    latencies, tokens, lock = [], [0], threading.Lock()
    began = time.perf_counter()

    def one(ids: list[int], limit: int, at: float) -> None:
        time.sleep(max(0.0, began + at - time.perf_counter()))
        start = time.perf_counter()
        made = generator.generate(ids, Sampling(max_tokens=limit, temperature=0))
        with lock:
            latencies.append(time.perf_counter() - start)
            tokens[0] += made.completion_tokens

    threads = [threading.Thread(target=one, args=(ids, limit, at)) for (ids, limit), at in zip(requests, times, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results["continuous_tokens_per_s"] = tokens[0] / (time.perf_counter() - began)
    results["continuous_latency_s"] = statistics.mean(latencies)
    # static: the waiting requests (up to batch_size) form a batch once the previous one has ended
    began, done, total, latencies = time.perf_counter(), 0, 0, []
    while done < len(requests):
        now = time.perf_counter() - began
        ready = [i for i in range(done, len(requests)) if times[i] <= now][:batch_size]
        if not ready:
            time.sleep(max(0.0, times[done] - now))
            continue
        total += static_run(generator, [requests[i] for i in ready])
        ended = time.perf_counter() - began
        latencies.extend(ended - times[i] for i in ready)
        done = ready[-1] + 1
    results["static_tokens_per_s"] = total / (time.perf_counter() - began)
    results["static_latency_s"] = statistics.mean(latencies)
    return results


def portal_figures(requests: list[tuple[list[dict[str, str]], int]]) -> dict[str, float]:
    import secrets

    import openai

    from audit.log.signing import generate_private_pem
    from bench.serving_bench import PG, REDIS, Portal, ensure_pg

    production = {"REDIS_URL": REDIS, "SECRET_KEY": secrets.token_urlsafe(50), "AUDIT_SIGNING_KEY": generate_private_pem(),
                  "GENERATION_THREADS": str(THREADS)}
    if PG:
        ensure_pg()
        production["DATABASE_URL"] = PG
    portal = Portal("llm", production, 8741)
    token = portal.prepare("assistant", "daily_token_quota", 10**12)
    portal.launch()
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{portal.port}/v1", api_key=token, max_retries=0, timeout=600)
    try:
        deadline = time.monotonic() + 300
        while True:  # ready when a completion comes back (503 until the generation worker beats)
            try:
                client.chat.completions.create(model="assistant", messages=requests[0][0], max_tokens=4, temperature=0)
                break
            except (openai.APIStatusError, openai.APIConnectionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

        def stream(messages: list[dict[str, str]], limit: int) -> tuple[float, int]:
            began, first, tokens = time.perf_counter(), None, 0
            for chunk in client.chat.completions.create(model="assistant", messages=messages, max_tokens=limit,
                                                        temperature=0, stream=True,
                                                        stream_options={"include_usage": True}):
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter() - began
                if chunk.usage:
                    tokens = chunk.usage.completion_tokens
            return (first if first is not None else time.perf_counter() - began), tokens

        firsts = [stream(messages, limit)[0] for messages, limit in requests[:8]]
        done, lock = [0], threading.Lock()
        queue = list(requests)

        def client_loop() -> None:
            while True:
                with lock:
                    if not queue:
                        return
                    messages, limit = queue.pop()
                _, tokens = stream(messages, limit)
                with lock:
                    done[0] += tokens

        began = time.perf_counter()
        threads = [threading.Thread(target=client_loop) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return {"c1_ttft_ms": p50(firsts) * 1000, "c16_tokens_per_s": done[0] / (time.perf_counter() - began)}
    finally:
        portal.stop()


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    import torch
    from django.conf import settings
    from transformers import AutoModelForCausalLM

    from inference.ml.demos import ASSISTANT, build_cached
    from inference.ml.generation import Generator, Sampling

    torch.set_num_threads(THREADS)
    folder, _ = build_cached(ASSISTANT, lambda *a: None, settings.BUILD_CACHE_DIR)
    chats = prompts()
    from inference.ml.device import best_device

    generator = Generator(folder, best_device())
    generator.plain = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).to(generator.device).eval()
    requests = [(generator.chat_ids(messages), limit) for messages, limit in chats]
    raw_tokens, best, by_batch = raw_static(generator, requests)
    generator.generate(requests[0][0], Sampling(max_tokens=4, temperature=0))  # warm
    raw_ttft = p50([generator.generate(ids, Sampling(max_tokens=1, temperature=0)).first_token_s or 0.0
                    for ids, _ in requests[:8]]) * 1000
    mixed = under_arrivals(generator, requests, best)
    print(f"under arrivals: {mixed}", flush=True)
    generator.close()
    del generator
    portal = portal_figures(chats)
    print(f"portal: {portal}", flush=True)
    x = portal["c16_tokens_per_s"] / raw_tokens
    y = portal["c1_ttft_ms"] - raw_ttft
    z = mixed["continuous_tokens_per_s"] / mixed["static_tokens_per_s"]
    batches = ", ".join(f"{b}: {v:.1f}" for b, v in by_batch.items())
    table = f"""
`assistant` (SmolLM2-135M-Instruct, float32), {len(chats)} chat requests of mixed lengths (a question alone or
after 2 to 12 review sentences), max_tokens cycling {', '.join(map(str, MAX_TOKENS))}, greedy; torch threads
{THREADS} (GENERATION_THREADS) everywhere. The web server, the worker, PostgreSQL, Redis and the load
generator share this machine.

| path | output tokens/s | ratio to raw | TTFT p50 ms |
|---|---|---|---|
| raw: static `generate`, best batch ({best}) | {raw_tokens:.1f} | 1.00 | {raw_ttft:.0f} (the engine, one request) |
| portal, OpenAI SDK streaming, c16 | {portal['c16_tokens_per_s']:.1f} | {x:.2f} | |
| portal, OpenAI SDK streaming, c1 | | | {portal['c1_ttft_ms']:.0f} |

Raw static tokens/s by batch size: {batches}.

Under the same Poisson arrivals ({ARRIVALS_PER_S} requests/s, in-process): continuous batching
{mixed['continuous_tokens_per_s']:.1f} tokens/s (mean latency {mixed['continuous_latency_s']:.1f} s), static batches of up to
{best} {mixed['static_tokens_per_s']:.1f} tokens/s (mean latency {mixed['static_latency_s']:.1f} s).

Goals: portal/raw >= 0.85 at c16; c1 TTFT overhead <= 50 ms; continuous/static >= 1.5.
"""
    write_section("bench-llm" if not torch.cuda.is_available() else "bench-llm-gpu", table)
    print(table)
    print(f"llm: c16 tokens/s portal/raw = {x:.2f}, c1 TTFT overhead = {y:.0f} ms, continuous/static = {z:.2f}")


if __name__ == "__main__":
    main()

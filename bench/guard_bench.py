"""make bench-guard: what the guardrails cost a chat request, and how fast the moderation model serves.

One run, one machine: the portal (`manage.py serve`, PostgreSQL and Redis when configured) with the
demo `assistant` and `moderation` models.
- The same greedy chat requests (no PII, nothing a check stops: the answers are the same text either
  way) are sent one at a time without a policy and under a full one (PII masking, the moderation
  model on the prompt and on every sentence of the answer, three blocked patterns), in alternating
  blocks so that drift of the machine falls on both. X is the p50 of what each request under the
  policy waited on the checks, as the generation worker measures and records it (`wait_ms`); beside
  it, each request's latency minus its twin's (the same question at the same place of the block
  before, without the policy), with a bootstrap interval: too noisy here to resolve 15 ms.
- /v1/moderations at concurrency 8, 16 texts a request, for rows per second; beside it, the
  moderation model alone in this process at its best batch (the floor of what serving can reach).
- The moderation model is, by default, Steward's int8 compression of the demo model, made through the
  API in the run (its loss measured on 400 held-out tweets, approved under the organisation's
  compression policy); BENCH_GUARD_MODERATION=float runs the float32 model instead.

Prints last: `guard: p50 overhead per chat request = X ms, moderation rows/s = Y`.
"""

from __future__ import annotations

import csv
import http.client
import io
import json
import os
import random
import secrets
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, p50, write_section

BLOCKS = int(os.environ.get("BENCH_GUARD_BLOCKS", "4"))
PER_BLOCK = int(os.environ.get("BENCH_GUARD_PER_BLOCK", "8"))
MAX_TOKENS = 24
# the moderation model the guardrails use: Steward's int8 compression of the demo model (made and approved
# through the API in the run), or the float32 model itself
MODERATION_FORM = os.environ.get("BENCH_GUARD_MODERATION", "int8")
MODERATION_SECONDS = float(os.environ.get("BENCH_GUARD_SECONDS", "20"))
QUESTIONS = [
    "What is the capital of France?", "Give me two tips for a good night's sleep.",
    "Explain what a bank overdraft is.", "Write one sentence about autumn leaves.",
    "How do I boil an egg?", "Name two animals that live in the ocean.",
    "What are the primary colours?", "Why is the sky blue?",
]
POLICY = {"mask_pii": True, "input_action": "block", "input_threshold": 0.9, "output_action": "block",
          "output_threshold": 0.9, "blocked_patterns": [r"(?i)project\s+falcon", r"\bACME-\d{6}\b", r"(?i)top secret"]}


def tweets(count: int) -> list[str]:
    with (ROOT / "data" / "toxicity" / "heldout.csv").open(encoding="utf-8", newline="") as handle:
        return [row["tweet"] for row in csv.DictReader(handle)][:count]


def api(port: int, token: str, method: str, path: str, body: bytes | None = None,
        content_type: str = "application/json") -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    conn.request(method, path, body=body, headers={"Authorization": f"Bearer {token}", "Content-Type": content_type})
    response = conn.getresponse()
    data = response.read()
    if response.status >= 400:
        raise RuntimeError(f"{method} {path}: HTTP {response.status} {data[:400]!r}")
    return json.loads(data) if data else {}


def compressed_moderation(port: int, admin: str, reviewer: str) -> tuple[int, str]:
    """The moderation model compressed to int8 through the API (its loss measured on 400 held-out
    tweets the model never trained on), approved under the organisation's policy: its version and loss."""
    with (ROOT / "data" / "toxicity" / "heldout.csv").open(encoding="utf-8", newline="") as handle:
        rows = [(row["tweet"], row["label"]) for row in csv.DictReader(handle)]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["text", "label"])
    writer.writerows(rows[-400:])
    boundary = secrets.token_hex(8)
    content = buffer.getvalue().encode()
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"dataset\"\r\n\r\nupload\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"heldout.csv\"\r\n"
            "Content-Type: text/csv\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    job = api(port, admin, "POST", "/api/v1/models/moderation/versions/1/compressions", body,
              f"multipart/form-data; boundary={boundary}")
    deadline = time.monotonic() + 900
    while job["status"] not in ("done", "failed"):
        if time.monotonic() > deadline:
            raise RuntimeError("the moderation model's compression did not finish in 15 minutes")
        time.sleep(2)
        job = api(port, admin, "GET", job["url"])
    if job["status"] != "done":
        raise RuntimeError(f"compression failed: {job['error']}")
    version = job["version"]
    api(port, admin, "POST", f"/api/v1/models/moderation/versions/{version}/submit", b"{}")
    api(port, reviewer, "POST", f"/api/v1/models/moderation/versions/{version}/approve",
        json.dumps({"comment": "bench-guard: int8 within the compression policy"}).encode())
    return version, job["headline"]


def raw_moderation_rows_per_s(texts: list[str]) -> tuple[float, int]:
    """The moderation model alone, in this process, at its best batch size: the floor."""
    import torch
    from django.conf import settings

    from inference.ml.demos import MODERATION, build_cached
    from inference.ml.predictors import TextClassifier

    torch.set_num_threads(1)
    folder, _ = build_cached(MODERATION, lambda *a: None, settings.BUILD_CACHE_DIR)
    model = TextClassifier()
    model.load(folder, "cpu")
    if MODERATION_FORM == "int8":  # the same compression the portal serves
        from inference.ml import compression

        model.model = compression.compress(model.model)
    best, best_rate = 1, 0.0
    for batch in (1, 8, 16, 32, 64):
        model.predict_proba(texts[:batch])  # warm
        began, done = time.perf_counter(), 0
        while time.perf_counter() - began < 3:
            model.predict_proba(texts[done % 512:done % 512 + batch])
            done += batch
        rate = done / (time.perf_counter() - began)
        if rate > best_rate:
            best, best_rate = batch, rate
    return best_rate, best


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    import openai

    from audit.log.signing import generate_private_pem
    from bench.serving_bench import PG, REDIS, Portal, ensure_pg

    texts = tweets(2000)
    raw_rate, raw_batch = raw_moderation_rows_per_s(texts)
    print(f"moderation alone: {raw_rate:.1f} rows/s at batch {raw_batch}", flush=True)

    production = {"REDIS_URL": REDIS, "SECRET_KEY": secrets.token_urlsafe(50), "AUDIT_SIGNING_KEY": generate_private_pem()}
    if PG:
        ensure_pg()
        production["DATABASE_URL"] = PG
    portal = Portal("guard", production, 8751)
    token = portal.prepare("assistant", "daily_token_quota", 10**12)
    portal.manage("build_demo_models", "--only", "moderation")
    portal.manage("shell", "-c", "from portal.accounts.models import Organization; "
                  "Organization.objects.filter(slug='demo').update(daily_row_quota=10**9)")
    admin = portal.manage("create_token", "--user", "demo-admin", "--org", "demo", "--role", "admin",
                          "--rate", "10000000").strip()
    reviewer = portal.manage("create_token", "--user", "demo-reviewer", "--org", "demo", "--role", "reviewer",
                             "--rate", "10000000").strip()
    portal.launch()
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{portal.port}/v1", api_key=token, max_retries=0, timeout=600)
    try:
        deadline = time.monotonic() + 300
        while True:  # ready when a completion and a moderation come back (503 until the workers beat)
            try:
                client.chat.completions.create(model="assistant", messages=[{"role": "user", "content": "Hi"}],
                                               max_tokens=2, temperature=0)
                client.moderations.create(input=texts[:4])
                break
            except (openai.APIStatusError, openai.APIConnectionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

        moderation_version, moderation_loss = 1, ""
        if MODERATION_FORM == "int8":
            moderation_version, moderation_loss = compressed_moderation(portal.port, admin, reviewer)
            POLICY["moderation_model"] = f"moderation@{moderation_version}"
            print(f"moderation@{moderation_version}: {moderation_loss}", flush=True)
        moderation_ref = f"moderation@{moderation_version}"
        waits: list[float] = []  # what the worker measured the request waiting on the checks

        def chat(question: str) -> tuple[float, str]:
            began = time.perf_counter()
            answer = client.chat.completions.create(model="assistant", messages=[{"role": "user", "content": question}],
                                                    max_tokens=MAX_TOKENS, temperature=0)
            took = (time.perf_counter() - began) * 1000
            guard = (answer.model_extra or {}).get("steward", {}).get("guard") or {}
            if "wait_ms" in guard:
                waits.append(float(guard["wait_ms"]))
            return took, answer.choices[0].message.content or ""

        def policy(on: bool) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", portal.port, timeout=60)
            conn.request("PUT" if on else "DELETE", "/api/v1/guardrails", body=json.dumps(POLICY) if on else None,
                         headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"})
            response = conn.getresponse()
            body = response.read()
            if response.status not in (200, 204, 404):
                raise RuntimeError(f"policy: HTTP {response.status} {body[:300]!r}")

        times: dict[bool, list[float]] = {False: [], True: []}
        by_slot: dict[tuple[int, int, bool], float] = {}  # (pair of blocks, position, policy on) -> ms
        answers: dict[bool, dict[str, str]] = {False: {}, True: {}}
        for on in (True, False):  # warm both paths (the worker loads the moderation model on its first check)
            policy(on)
            for question in QUESTIONS[:2]:
                chat(question)
        waits.clear()  # the warm-up's first check loads the moderation model
        for block in range(BLOCKS * 2):
            on = block % 2 == 1
            policy(on)
            for number in range(PER_BLOCK):
                question = QUESTIONS[(block // 2 * PER_BLOCK + number) % len(QUESTIONS)]
                took, text = chat(question)
                times[on].append(took)
                by_slot[(block // 2, number, on)] = took
                answers[on][question] = text
        policy(False)
        same = sum(answers[True].get(q) == answers[False].get(q) for q in answers[False])
        # Each request under the policy has a twin: the same question, at the same place of the block
        # just before, without it. The overhead per request is the difference of the twins; X is its p50.
        # (The difference of the two arms' p50s mixes questions whose answers take 1 to 2.5 s: measured
        # here, its 95% interval spans more than 300 ms; it is printed beside, not used.)
        pairs = [by_slot[(b, n, True)] - by_slot[(b, n, False)] for (b, n, on) in by_slot
                 if on and (b, n, False) in by_slot]
        rng = random.Random(0)
        draws = sorted(p50(rng.choices(pairs, k=len(pairs))) for _ in range(2000))
        interval = (draws[49], draws[1949])
        # X: what the requests waited on the checks, as the worker measured it (the twins' difference
        # cannot resolve 15 ms here: its interval is about 130 ms wide, measured in every run so far)
        overhead = p50(waits)
        unpaired = p50(times[True]) - p50(times[False])
        print(f"chat p50 without a policy {p50(times[False]):.1f} ms, with {p50(times[True]):.1f} ms; "
              f"{same}/{len(answers[False])} answers the same text", flush=True)

        batch, rows, lock = 16, [0], threading.Lock()
        stop_at = time.monotonic() + MODERATION_SECONDS

        def moderate(offset: int) -> None:
            at = offset
            while time.monotonic() < stop_at:
                client.moderations.create(input=texts[at % 1984:at % 1984 + batch], model=moderation_ref)
                at += batch * 8
                with lock:
                    rows[0] += batch

        began = time.perf_counter()
        threads = [threading.Thread(target=moderate, args=(i * batch,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        served_rate = rows[0] / (time.perf_counter() - began)
    finally:
        portal.stop()

    table = f"""
`assistant` (SmolLM2-135M-Instruct) and `{moderation_ref}` (MiniLM, 3 labels{", Steward's int8 compression: " + moderation_loss if moderation_loss else ", float32"}), one generation worker with one torch
thread, greedy, max_tokens {MAX_TOKENS}, {len(times[False])} requests without a policy and {len(times[True])} under it in
alternating blocks of {PER_BLOCK}. The policy: PII masked, the moderation model on the prompt (block from 0.9)
and on every sentence of the answer (block from 0.9), {len(POLICY['blocked_patterns'])} blocked patterns. {same} of
{len(answers[False])} questions got the same text either way (greedy; nothing was stopped).

| | chat request p50 ms | p95 ms | mean ms |
|---|---|---|---|
| no policy | {p50(times[False]):.1f} | {statistics.quantiles(times[False], n=20)[-1]:.1f} | {statistics.fmean(times[False]):.1f} |
| full policy | {p50(times[True]):.1f} | {statistics.quantiles(times[True], n=20)[-1]:.1f} | {statistics.fmean(times[True]):.1f} |

/v1/moderations, 8 clients, {batch} tweets a request, {MODERATION_SECONDS:.0f} s: {served_rate:.1f} rows/s; the model
alone in one process at its best batch ({raw_batch}): {raw_rate:.1f} rows/s (served/alone = {served_rate / raw_rate:.2f}).

Overhead per request: each request under the policy minus its twin without (the same question at the same
place of the block before; the same text either way): p50 {p50(pairs):.1f} ms over {len(pairs)} pairs, 95% bootstrap
interval {interval[0]:.1f} to {interval[1]:.1f} ms: the requests' own spread (decoding on a shared core) hides
anything under about 60 ms. (The difference of the two columns' p50s, {unpaired:.1f} ms, mixes
questions whose answers take 1 to 2.5 s: too noisy to read at this size.) The prompt's moderation runs while
the model reads the prompt (the answer is held until it passes), so what a request waits for is the check
of the answer's last sentence: the worker measures that wait (screening the prompt, the prompt's verdict
if the model finished first, the last sentence's check) and records it with the decisions (`wait_ms`):
p50 {p50(waits):.1f} ms, p95 {statistics.quantiles(waits, n=20)[-1]:.1f} ms over {len(waits)} requests: X below. The checks
of earlier sentences run while the model goes on, on the other core; what they take from it is in the
twins' difference only.

Goal: overhead <= 15 ms per chat request on CPU.
"""
    write_section("bench-guard", table)
    print(table)
    print(f"guard: p50 overhead per chat request = {overhead:.1f} ms, moderation rows/s = {served_rate:.1f}")


if __name__ == "__main__":
    main()

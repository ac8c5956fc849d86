"""make bench-serving: the `sentiment` model served through the portal vs the model alone.

One run, one machine, 64-token inputs:
- raw: the model in-process at its best batch size (the limit), and one row alone;
- portal: HTTP end to end (gunicorn, token auth, quota, Celery worker with dynamic batching,
  audit receipt) at concurrency 1 and 32, with Redis (+PostgreSQL) and with the embedded default
  (SQLite database and broker).

Prints last: `serving: c32 throughput portal/raw = X.XX, c1 p50 overhead = Y ms (redis)`.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, p50, write_section

# BENCH_DATABASE_URL="" where no PostgreSQL is installed (the lent GPU machine): the Redis portals
# then keep the embedded SQLite database, and the table says so.
PG = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/steward_bench_serving")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
SECONDS = float(os.environ.get("BENCH_SECONDS", "20"))
C1_REQUESTS = int(os.environ.get("BENCH_C1_REQUESTS", "150"))


def text_of_64_tokens(tokenizer) -> str:
    words = ["the", "film", "is", "a", "quiet", ",", "patient", "and", "often", "moving", "portrait", "of", "a", "family", "that", "never", "quite", "says", "what", "it", "means"]
    text, i = "", 0
    while len(tokenizer(text)["input_ids"]) < 64:
        text = (text + " " + words[i % len(words)]).strip()
        i += 1
    assert len(tokenizer(text)["input_ids"]) == 64
    return text


def raw_figures() -> tuple[float, int, float, str, dict[int, float]]:
    import torch
    from django.conf import settings

    from inference.ml.demos import SENTIMENT, build_cached
    from inference.ml.device import best_device
    from inference.ml.predictors import TextClassifier

    folder, _ = build_cached(SENTIMENT, lambda *a: None, settings.BUILD_CACHE_DIR)
    predictor = TextClassifier()
    predictor.load(folder, best_device())
    text = text_of_64_tokens(predictor.tokenizer)
    by_batch = {}
    for batch in (1, 8, 16, 32, 64):
        rows = [text] * batch
        predictor.predict_proba(rows)
        count, began = 0, time.perf_counter()
        while time.perf_counter() - began < 3:
            predictor.predict_proba(rows)
            count += batch
        by_batch[batch] = count / (time.perf_counter() - began)
    singles = []
    for _ in range(50):
        began = time.perf_counter()
        predictor.predict_proba([text])
        singles.append((time.perf_counter() - began) * 1000)
    best = max(by_batch, key=by_batch.__getitem__)
    del predictor
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return by_batch[best], best, p50(singles), text, by_batch


class Portal:
    def __init__(self, name: str, env: dict[str, str], port: int) -> None:
        self.name, self.port = name, port
        self.data = Path(tempfile.mkdtemp(prefix=f"steward-bench-{name}-"))
        # the bench's token must not be what limits it: the default cap is 6000 requests a minute
        self.env = {**os.environ, **env, "STEWARD_DATA_DIR": str(self.data), "PORT": str(port),
                    "LOG_LEVEL": "WARNING", "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
                    "API_TOKEN_MAX_RATE_PER_MINUTE": "10000000"}

    def manage(self, *args: str) -> str:
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env,
                                capture_output=True, text=True, timeout=900)
        if result.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def prepare(self, model: str, quota: str, value: int) -> str:
        """The database, the demo organisation and `model`, a quota (`quota`, an Organization field, set
        to `value`) the bench cannot spend, and a consumer's token, which it returns."""
        self.manage("migrate", "--noinput")
        self.manage("setup_demo", "--quiet")
        self.manage("build_demo_models", "--only", model)
        self.manage("shell", "-c", "from portal.accounts.models import Organization; "
                    f"Organization.objects.filter(slug='demo').update({quota}={value})")
        return self.manage("create_token", "--user", "demo-consumer", "--org", "demo", "--role", "consumer",
                           "--rate", "10000000").strip()

    def launch(self) -> None:
        """`manage.py serve` on this portal's port, its output in serve.log."""
        self.log = (self.data / "serve.log").open("w")
        self.process = subprocess.Popen([sys.executable, "manage.py", "serve", "--port", str(self.port)],
                                        cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def start(self, body: bytes) -> str:
        token = self.prepare("sentiment", "daily_row_quota", 10**9)
        self.launch()
        # ready when a prediction comes back: the web answers before its workers have said they are up
        # (503 until then), and a worker process loads the model on its first request
        deadline, last = time.monotonic() + 180, ""
        while time.monotonic() < deadline:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                conn.request("POST", "/api/v1/models/sentiment/predict", body=body,
                             headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
                response = conn.getresponse()
                last = f"HTTP {response.status}: {response.read()[:200]!r}"
                if response.status == 200:
                    return token
                if response.status != 503:
                    raise RuntimeError(f"{self.name}: {last}")
            except OSError as exc:
                last = repr(exc)
            time.sleep(0.5)
        raise RuntimeError(f"{self.name}: no prediction within 180 s; last {last}")

    def stop(self) -> None:
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


def call(conn: http.client.HTTPConnection, token: str, body: bytes) -> float:
    began = time.perf_counter()
    conn.request("POST", "/api/v1/models/sentiment/predict", body=body,
                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    response = conn.getresponse()
    payload = response.read()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {payload[:300]!r}")
    return (time.perf_counter() - began) * 1000


def measure(portal: Portal, token: str, text: str) -> dict[str, float]:
    body = json.dumps({"inputs": [text]}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", portal.port, timeout=60)
    for _ in range(10):
        call(conn, token, body)
    c1 = [call(conn, token, body) for _ in range(C1_REQUESTS)]
    conn.close()
    done, errors = [0], []
    stop = time.monotonic() + SECONDS
    lock = threading.Lock()

    def client() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", portal.port, timeout=60)
        try:
            while time.monotonic() < stop:
                call(connection, token, body)
                with lock:
                    done[0] += 1
        except Exception as exc:  # recorded: a benchmark that hides errors measures nothing
            errors.append(repr(exc))

    threads = [threading.Thread(target=client) for _ in range(32)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"{portal.name}: {len(errors)} client errors, e.g. {errors[0]}")
    return {"c1_p50_ms": p50(c1), "c32_rows_per_s": done[0] / elapsed}


def ensure_pg() -> None:
    import psycopg

    name = PG.rsplit("/", 1)[1]
    with psycopg.connect(PG.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    raw_rows, best_batch, raw_single_ms, text, by_batch = raw_figures()
    print(f"raw: {raw_rows:.1f} rows/s at batch {best_batch}; one row {raw_single_ms:.1f} ms; {by_batch}", flush=True)
    from audit.log.signing import generate_private_pem

    production = {"REDIS_URL": REDIS, "SECRET_KEY": secrets.token_urlsafe(50), "AUDIT_SIGNING_KEY": generate_private_pem()}
    if PG:  # the two production-like portals share one database, so they share its artifact store too
        ensure_pg()
        production |= {"DATABASE_URL": PG, "ARTIFACT_DIR": tempfile.mkdtemp(prefix="steward-bench-artifacts-")}
    configs = {
        "redis": Portal("redis", production, 8731),
        "redis, 2 worker processes": Portal("redis2", {**production, "WORKER_PROCESSES": "2",
                                                       "WORKER_CONCURRENCY": "16"}, 8733),
        "embedded": Portal("embedded", {"DATABASE_URL": "", "REDIS_URL": ""}, 8732),
    }
    for portal in configs.values():  # nothing of this shell's own configuration leaks in
        for key in ("DATABASE_URL", "REDIS_URL"):
            if portal.name == "embedded" or key not in production:
                portal.env.pop(key, None)
    results = {}
    for name, portal in configs.items():
        token = portal.start(json.dumps({"inputs": [text]}).encode())
        try:
            results[name] = measure(portal, token, text)
        finally:
            portal.stop()
        print(f"{name}: {results[name]}", flush=True)
    ratio = results["redis"]["c32_rows_per_s"] / raw_rows
    overhead = results["redis"]["c1_p50_ms"] - raw_single_ms
    rows = "\n".join(
        f"| portal, {name} | {r['c32_rows_per_s']:.1f} | {r['c32_rows_per_s'] / raw_rows:.2f} | "
        f"{r['c1_p50_ms']:.1f} | {r['c1_p50_ms'] - raw_single_ms:.1f} |"
        for name, r in results.items()
    )
    batches = ", ".join(f"{b}: {v:.1f}" for b, v in by_batch.items())
    from inference.ml.device import best_device

    device = best_device()
    database = "PostgreSQL" if PG else "the embedded SQLite database (no PostgreSQL on this machine)"
    table = f"""
`sentiment` (MiniLM-L6, fine-tuned), inputs of exactly 64 tokens, one row per request; {SECONDS:.0f} s at
concurrency 32, {C1_REQUESTS} sequential requests at concurrency 1. The web server, the worker and the
load generator share this machine; the model runs on {device}. The Redis portals use {database}.

| path | c32 rows/s | portal/raw | c1 p50 ms | c1 p50 overhead ms |
|---|---|---|---|---|
| raw model, best batch ({best_batch}) | {raw_rows:.1f} | 1.00 | {raw_single_ms:.1f} (one row) | 0 |
{rows}

Raw rows/s by batch size: {batches}.
Goals: portal/raw >= 0.85 at c32; c1 p50 overhead <= 15 ms with Redis.
"""
    write_section("bench-serving" if device == "cpu" else "bench-serving-gpu", table)
    print(table)
    print(f"serving: c32 throughput portal/raw = {ratio:.2f}, c1 p50 overhead = {overhead:.0f} ms (redis)")


if __name__ == "__main__":
    main()

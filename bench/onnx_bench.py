"""make bench-onnx: would ONNX Runtime serve the demo sentiment classifier faster than torch does?

Issue 31 asks for ONNX export "where it serves faster"; this measures whether it does, before it is
offered as a compression method. The demo sentiment classifier (MiniLM-L6 fine-tuned on SST-2) is
read four ways, one thread each (as a worker's process reads one text at a time):

- torch float32 (how a version is served today) and Steward's int8 (inference/ml/compression.py);
- the same weights exported to ONNX by Steward's `onnx-float32` compression (torch's TorchScript
  exporter, dynamic batch and length) and run by onnxruntime in float32, and onnxruntime's own
  dynamic int8 of that graph (weights per channel,
  activations per call).

For each: the median time of one sentence alone over BENCH_ONNX_TEXTS SST-2 dev sentences (the four
interleaved sentence by sentence, so that they share the machine's drift), accuracy on the 872 dev
sentences, the share of labels equal to torch float32's, and how many labels change when the same
sentences are read 32 at a time (padded) instead of alone: a served answer must not depend on its batch.

Prints last: `onnx: one sentence x<S> as fast (onnxruntime int8) and x<F> (float32) against torch
float32; Steward int8 x<I>`.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import ROOT, write_section

TEXTS = int(os.environ.get("BENCH_ONNX_TEXTS", "200"))
INPUTS = ["input_ids", "attention_mask", "token_type_ids"]


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import numpy as np
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from inference.ml import compression, training
    from inference.ml.demos import SENTIMENT, build_cached, default_cache_dir

    torch.set_num_threads(1)
    folder, _ = build_cached(SENTIMENT, lambda *a: None, default_cache_dir())
    tokenizer = AutoTokenizer.from_pretrained(folder)
    source = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    int8 = compression.compress(AutoModelForSequenceClassification.from_pretrained(folder).eval())
    dev = training.read_sst2(ROOT / "data" / "sst2" / "dev.tsv")
    texts, gold = [t for t, _ in dev], np.array([y for _, y in dev])

    work = Path(tempfile.mkdtemp(prefix="bench-onnx-"))
    # Steward's onnx-float32 compression writes the graph that onnxruntime reads here
    graph, quantized = work / "model" / compression.ONNX_FILE, work / "model-int8.onnx"
    began = time.perf_counter()
    compression.export_onnx(source, tokenizer, folder, work / "model")
    exported = time.perf_counter() - began
    quantize_dynamic(str(graph), str(quantized), weight_type=QuantType.QInt8, per_channel=True)

    def torch_batch(model):
        def read(batch: list[str]):
            encoded = tokenizer(batch, padding=True, truncation=True, max_length=128, return_tensors="pt")
            with torch.inference_mode():
                return model(**encoded).logits.numpy()
        return read

    def ort_batch(path: Path):
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        def read(batch: list[str]):
            encoded = tokenizer(batch, padding=True, truncation=True, max_length=128, return_tensors="np")
            return session.run(None, {k: encoded[k].astype(np.int64) for k in INPUTS})[0]
        return read

    batched = {"torch float32": torch_batch(source), "steward int8": torch_batch(int8),
               "onnxruntime float32": ort_batch(graph), "onnxruntime int8": ort_batch(quantized)}

    def one_at_a_time(read):
        return lambda text: read([text])[0]

    # the same sessions read alone and in batches: a second session per graph would only cost memory
    readers = {name: one_at_a_time(read) for name, read in batched.items()}
    for read in readers.values():
        for text in texts[:20]:
            read(text)  # warm: first calls allocate
    seconds: dict[str, list[float]] = {name: [] for name in readers}
    for text in texts[:TEXTS]:
        for name, read in readers.items():
            began = time.perf_counter()
            read(text)
            seconds[name].append(time.perf_counter() - began)
    labels = {name: np.array([read(t) for t in texts]).argmax(axis=1) for name, read in readers.items()}
    reference = labels["torch float32"]
    # a served answer must not depend on the batch it fell in: labels of the same sentences read 32 at a
    # time (padded to the longest) against one at a time
    flips = {name: int((np.concatenate([read(texts[i:i + 32]) for i in range(0, len(texts), 32)]).argmax(axis=1)
                        != labels[name]).sum()) for name, read in batched.items()}
    rows = {name: {"ms": 1000 * statistics.median(seconds[name]), "accuracy": float((labels[name] == gold).mean()),
                   "agree": float((labels[name] == reference).mean()), "flips": flips[name]} for name in readers}
    base = rows["torch float32"]["ms"]
    sizes = {"onnxruntime float32": graph.stat().st_size, "onnxruntime int8": quantized.stat().st_size}
    table = ["| reader | one sentence (median) | x as fast | accuracy | labels as torch float32 "
             "| labels changed in batches of 32 | file |", "|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        size = f"{sizes[name] / 2**20:.1f} MiB" if name in sizes else ""
        table.append(f"| {name} | {row['ms']:.2f} ms | x{base / row['ms']:.2f} | {row['accuracy']:.4f} "
                     f"| {row['agree']:.2%} | {row['flips']} of {len(texts)} | {size} |")
    line = (f"onnx: one sentence x{base / rows['onnxruntime int8']['ms']:.2f} as fast (onnxruntime int8) and "
            f"x{base / rows['onnxruntime float32']['ms']:.2f} (float32) against torch float32; "
            f"Steward int8 x{base / rows['steward int8']['ms']:.2f}")
    write_section("bench-onnx", "\n".join([
        f"The demo sentiment classifier, one thread, one sentence at a time ({TEXTS} SST-2 dev sentences "
        f"timed, interleaved; accuracy on all {len(texts)}). Exported to ONNX in {exported:.1f} s "
        "(TorchScript exporter, opset 17); onnxruntime int8: its dynamic quantisation, weights per channel.",
        "", *table, "", f"`{line}`"]))
    shutil.rmtree(work, ignore_errors=True)
    print("\n".join(table))
    print(line)


if __name__ == "__main__":
    main()

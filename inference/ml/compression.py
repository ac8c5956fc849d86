"""Compression of a version's weights, stored as data: int8 Linear layers, or a text classifier's
graph exported to ONNX and served by onnxruntime.

Each Linear layer's weight becomes int8 with one scale per output row (symmetric); at each call its
input is quantised to int8 per token (one scale per row of the input), the product is computed in
integers (`torch._int_mm`, int32 accumulation) and scaled back. Per-token activation scales make
each row's output independent of the other rows of a batch: torch's own dynamic quantisation
(`quantize_dynamic`) takes one scale per call, so a text's scores there depend on who else is in
the batch and on its padding (measured on the demo sentiment model: 22 of 872 labels changed
between batches of 1 and of 32), which a served, receipted answer must not do.

The compressed folder holds plain tensors, written with safetensors:

- `compression.json`: the method, the source's digest, the quantised layers;
- `int8.safetensors`: the whole state: per quantised layer `<name>.qweight_t` (int8, in x out),
  `<name>.scale` (float32, out) and its bias; every other tensor as the source had it;
- the source's config, tokenizer and generation config, unchanged.

Loading builds the architecture from its config, replaces the listed layers and loads the state
strictly: the served model is the one measured when the version was compressed. The integer
kernels are CPU kernels here: a compressed version is served on CPU wherever its worker runs.

`onnx-float32` (text classifiers): the graph from the token ids to the logits, exported by torch's
TorchScript exporter with a dynamic batch and length, its weights unchanged in float32, in
`model.onnx` beside `compression.json`, the config (labels) and the tokenizer. onnxruntime reads one
sentence about twice as fast as torch on CPU with the same labels (bench-onnx); its own dynamic int8
is not offered: one activation scale per call makes a text's label depend on its batch (19 of 872
SST-2 labels changed between batches of 1 and 32 there).
"""

from __future__ import annotations

import copy
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

from inference.ml.loading import BUILDING
from inference.ml.schema import InputError
from inference.ml.words import _, gettext_noop

METHOD = "int8-dynamic"
FRAMEWORK = "transformers-int8"  # a compressed version's `framework`: the predictors registered for it load it
MANIFEST = "compression.json"
INT8_FILE = "int8.safetensors"
FORMAT = 2
# files of a Hugging Face folder that are not weights: carried from the source unchanged
CARRIED = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt",
           "special_tokens_map.json", "chat_template.jinja", "merges.txt", "vocab.json", "added_tokens.json",
           "modules.json", "sentence_bert_config.json", "config_sentence_transformers.json")
ONNX_METHOD = "onnx-float32"
ONNX_FRAMEWORK = "onnx"  # a text classifier's graph, run by onnxruntime (predictors.OnnxTextClassifier)
ONNX_FILE = "model.onnx"
ONNX_OPSET = 17
ONNX_INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # those the tokenizer makes, in this order
METHODS = {METHOD: gettext_noop("int8 weights (one scale per output channel) and int8 activations quantised per "
                                "token at each call, integer matrix products; served on CPU"),
           ONNX_METHOD: gettext_noop("the classifier's graph exported to ONNX (opset 17) with its float32 weights "
                                     "unchanged, served by onnxruntime on CPU with as many threads as torch")}
# the tasks a method applies to, and the framework of the versions it makes
METHOD_TASKS = {METHOD: ("text-classification", "text-generation"), ONNX_METHOD: ("text-classification",)}
FRAMEWORKS = {METHOD: FRAMEWORK, ONNX_METHOD: ONNX_FRAMEWORK}


def _int8_linear_class() -> Any:
    import torch

    class Int8Linear(torch.nn.Module):
        """y = (round(x / s_x) @ W_q^T) * s_x * s_w + b, s_x per row of x, s_w per output channel."""

        def __init__(self, in_features: int, out_features: int, bias: bool) -> None:
            super().__init__()
            self.in_features, self.out_features = in_features, out_features
            self.register_buffer("qweight_t", torch.zeros(in_features, out_features, dtype=torch.int8))
            self.register_buffer("scale", torch.ones(out_features, dtype=torch.float32))
            self.register_buffer("bias", torch.zeros(out_features, dtype=torch.float32) if bias else None)

        @classmethod
        def from_linear(cls, linear: Any) -> Any:
            weight = linear.weight.detach().float()
            scale = (weight.abs().amax(dim=1) / 127).clamp(min=1e-12)
            made: Any = cls(linear.in_features, linear.out_features, linear.bias is not None)
            made.qweight_t.copy_(torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8).t())
            made.scale.copy_(scale)
            if linear.bias is not None:
                made.bias.copy_(linear.bias.detach().float())
            return made

        qweight_t: Any
        scale: Any
        bias: Any

        def forward(self, x: Any) -> Any:
            shape = x.shape
            rows = x.reshape(-1, self.in_features).float()
            step = (rows.abs().amax(dim=1, keepdim=True) / 127).clamp(min=1e-12)
            quantized = torch.round(rows / step).to(torch.int8)
            product = torch._int_mm(quantized, self.qweight_t) if rows.shape[0] else rows.new_zeros(0, self.out_features)
            out = product.to(torch.float32) * step * self.scale
            if self.bias is not None:
                out = out + self.bias
            return out.reshape(*shape[:-1], self.out_features).to(x.dtype)

        def extra_repr(self) -> str:
            return f"in_features={self.in_features}, out_features={self.out_features}, int8"

    return Int8Linear


_INT8_LINEAR: Any = None


def int8_linear() -> Any:
    global _INT8_LINEAR
    if _INT8_LINEAR is None:
        _INT8_LINEAR = _int8_linear_class()
    return _INT8_LINEAR


def is_compressed(folder: Path) -> bool:
    return (folder / MANIFEST).is_file()


def manifest(folder: Path) -> dict[str, Any]:
    try:
        document = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(_('%(manifest)s is missing or not valid JSON') % {"manifest": MANIFEST}) from None
    if not isinstance(document, dict) or document.get("method") not in METHODS or document.get("format") != FORMAT:
        raise InputError(_('%(manifest)s names a compression Steward does not serve') % {"manifest": MANIFEST})
    if document["method"] == ONNX_METHOD:
        inputs = document.get("inputs")
        if (not isinstance(inputs, list) or not inputs or inputs[0] != "input_ids"
                or not set(inputs) <= set(ONNX_INPUTS) or len(set(inputs)) != len(inputs)):
            raise InputError(_("%(manifest)s must list the graph's inputs, input_ids first, among %(value)s") % {"manifest": MANIFEST, "value": ', '.join(ONNX_INPUTS)})
        return document
    layers = document.get("layers")
    if not isinstance(layers, list) or not all(isinstance(name, str) for name in layers):
        raise InputError(_('%(manifest)s must list the quantised layers by name') % {"manifest": MANIFEST})
    return document


def framework_of(folder: Path) -> str:
    """The framework of the version a compressed folder is registered as."""
    return FRAMEWORKS[manifest(folder)["method"]]


def check_files(folder: Path) -> None:
    if not (folder / MANIFEST).is_file():
        raise InputError(_('the compressed model folder lacks %(manifest)s') % {"manifest": MANIFEST})
    document = manifest(folder)
    weights = ONNX_FILE if document["method"] == ONNX_METHOD else INT8_FILE
    missing = [name for name in (weights, "config.json") if not (folder / name).is_file()]
    if missing:
        raise InputError(_('the compressed model folder lacks %(value)s') % {"value": ', '.join(missing)})
    from inference.ml.hf_check import check_hf_folder

    check_hf_folder(folder)
    if document["method"] == ONNX_METHOD:
        _check_graph(folder, document)


def _check_graph(folder: Path, document: dict[str, Any]) -> Any:
    """The graph is standard ONNX with its data inside the folder (onnx_check), and its inputs and
    output are those the manifest names."""
    from inference.ml.onnx_check import check_onnx

    graph = check_onnx(folder / ONNX_FILE)
    inputs = [value.name for value in graph.graph.input]
    if inputs != document["inputs"]:
        raise InputError(_('%(onnx_file)s reads %(value)s, not the inputs %(manifest)s names') % {"onnx_file": ONNX_FILE, "value": ', '.join(inputs), "manifest": MANIFEST})
    if [value.name for value in graph.graph.output] != ["logits"]:
        raise InputError(_('%(onnx_file)s must have one output, the logits') % {"onnx_file": ONNX_FILE})
    return graph


def linear_layers(model: Any) -> list[str]:
    import torch

    return [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)]


def kept_float(layers: list[str], keep_float: list[str]) -> set[str]:
    """The layers a pattern keeps in float: a pattern names a layer or the last parts of its name
    ("down_proj" keeps every layer called so; "lm_head" the output layer)."""
    kept = set()
    for pattern in keep_float:
        matched = [name for name in layers if name == pattern or name.endswith("." + pattern)]
        if not matched:
            raise InputError(_('no Linear layer of this model is named %(pattern)s') % {"pattern": f"{pattern!r}"})
        kept.update(matched)
    return kept


def _replace(model: Any, names: list[str], make: Any) -> None:
    for name in names:
        parent_name, _dot, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, make(getattr(parent, child)))


def _quantized_layers(model: Any) -> dict[str, Any]:
    cls = int8_linear()
    return {name: module for name, module in model.named_modules() if isinstance(module, cls)}


def compress(model: Any, keep_float: list[str] | None = None) -> Any:
    """A copy of a float model (on CPU) with its Linear layers in int8, except those `keep_float`
    names (see `kept_float`): layers whose inputs carry outliers lose most."""
    model = copy.deepcopy(model).to("cpu").eval()
    layers = linear_layers(model)
    kept = kept_float(layers, keep_float or [])
    chosen = [name for name in layers if name not in kept]
    if not chosen:
        raise InputError(_('no Linear layer is left to quantise'))
    _untie_outputs(model, chosen)
    _replace(model, chosen, int8_linear().from_linear)
    return model


def _untie_outputs(model: Any, chosen: list[str]) -> None:
    """An output layer tied to the input embeddings stops being tied: it is stored in int8, they in float."""
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "tie_word_embeddings", False):
        output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
        names = {name for name, module in model.named_modules() if module is output}
        if names & set(chosen):
            config.tie_word_embeddings = False


def save(quantized: Any, source: Path, out: Path, *, source_sha256: str = "",
         keep_float: list[str] | None = None) -> dict[str, Any]:
    """Writes a compressed folder for `quantized` (from `compress`) beside the source's config and tokenizer."""
    import torch
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    for name in CARRIED:
        if (source / name).is_file():
            shutil.copy2(source / name, out / name)
    layers = _quantized_layers(quantized)
    state: dict[str, Any] = {}
    seen: set[int] = set()
    for key, tensor in quantized.state_dict().items():
        if not isinstance(tensor, torch.Tensor):
            continue
        if tensor.data_ptr() in seen and tensor.numel():  # tied weights: stored once, tied again on load
            continue
        seen.add(tensor.data_ptr())
        state[key] = _compact(tensor.detach())
    save_file(state, str(out / INT8_FILE), metadata={"format": "pt"})
    document = {"format": FORMAT, "method": METHOD, "description": METHODS[METHOD], "layers": sorted(layers),
                "kept_float": sorted(keep_float or []), "source_sha256": source_sha256, "torch": torch.__version__,
                "untied_output": not getattr(quantized.config, "tie_word_embeddings", False)}
    (out / MANIFEST).write_text(json.dumps(document, indent=2), encoding="utf-8")
    return document


def _compact(tensor: Any) -> Any:
    """float16 where that holds the float32 values exactly (a source stored in float16), else as is."""
    import torch

    if tensor.dtype == torch.float32 and torch.equal(tensor.to(torch.float16).to(torch.float32), tensor):
        return tensor.to(torch.float16).contiguous()
    return tensor.contiguous()


def load(folder: Path, model_class: Any, **options: Any) -> Any:
    """The compressed model of `folder`, rebuilt exactly as saved, on CPU and in eval mode.

    `model_class`: the transformers auto class (AutoModelForSequenceClassification, AutoModelForCausalLM);
    `options` go to its `from_config` (attn_implementation).
    """
    import torch
    from safetensors.torch import load_file
    from transformers import AutoConfig

    check_files(folder)
    document = manifest(folder)
    if document["method"] != METHOD:
        raise InputError(_('the folder holds a %(method)s model, not int8 weights') % {"method": document['method']})
    config = AutoConfig.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    with BUILDING:
        model = model_class.from_config(config, trust_remote_code=False, dtype=torch.float32, **options)
    layers = linear_layers(model)
    if not set(document["layers"]) <= set(layers):
        raise InputError(_('compression.json lists layers that are not Linear layers of this architecture'))
    _untie_outputs(model, document["layers"])
    cls = int8_linear()
    _replace(model, document["layers"], lambda linear: cls(linear.in_features, linear.out_features,
                                                           linear.bias is not None))
    state = load_file(str(folder / INT8_FILE))
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise InputError(_('int8.safetensors holds tensors the architecture does not have: %(value)s') % {"value": ', '.join(unexpected[:3])})
    tied = _tied_keys(model)
    if set(missing) - tied:
        raise InputError(_('int8.safetensors lacks %(value)s') % {"value": ', '.join(sorted(set(missing) - tied)[:3])})
    for key, tensor in state.items():
        if tensor.shape != expected[key].shape or (tensor.dtype == torch.int8) != (expected[key].dtype == torch.int8):
            raise InputError(_('int8.safetensors: %(key)s has the shape %(value)s and type %(dtype)s, not %(value2)s %(dtype2)s') % {"key": key, "value": tuple(tensor.shape), "dtype": tensor.dtype, "value2": tuple(expected[key].shape), "dtype2": expected[key].dtype})
    model.load_state_dict(state, strict=False)
    return model.eval()


# ---------------------------------------------------------------- ONNX (text classifiers)

def export_onnx(model: Any, tokenizer: Any, source: Path, out: Path, *, source_sha256: str = "") -> dict[str, Any]:
    """Writes an `onnx-float32` folder for a float sequence classifier: its graph from the inputs the
    tokenizer makes to the logits, with a dynamic batch and length, beside the source's config and tokenizer."""
    import onnx
    import torch

    names = [name for name in ONNX_INPUTS if name in tokenizer.model_input_names]
    if "input_ids" not in names:
        raise InputError(_('the tokenizer does not make input_ids; Steward exports token-id classifiers'))

    class Logits(torch.nn.Module):
        """The inputs by name, in the order the graph lists them, whatever the forward's signature."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> Any:
            return self.model(**dict(zip(names, tensors, strict=True))).logits

    out.mkdir(parents=True, exist_ok=True)
    for name in CARRIED:
        if (source / name).is_file():
            shutil.copy2(source / name, out / name)
    # a copy is traced: tracing leaves the traced module changed (measured: the demo classifier's logits
    # on a padded batch moved by 0.47 afterwards), and the source is measured against the export
    model = copy.deepcopy(model).to("cpu").eval()
    sample = tokenizer(["Steward exports this sentence to ONNX."], return_tensors="pt")
    # TorchScript's exporter, as bench-onnx measured (torch's own warns that it is the legacy one; the
    # tracer's warnings concern branches on shapes that a classifier's padding mask never takes)
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Logits(), tuple(sample[name] for name in names), str(out / ONNX_FILE), dynamo=False,
                          input_names=names, output_names=["logits"], opset_version=ONNX_OPSET,
                          dynamic_axes={**{name: {0: "rows", 1: "tokens"} for name in names}, "logits": {0: "rows"}})
    document = {"format": FORMAT, "method": ONNX_METHOD, "description": METHODS[ONNX_METHOD], "inputs": names,
                "opset": ONNX_OPSET, "source_sha256": source_sha256, "torch": torch.__version__,
                "onnx": onnx.__version__}
    (out / MANIFEST).write_text(json.dumps(document, indent=2), encoding="utf-8")
    check_files(out)  # what Steward wrote passes the check an upload would
    return document


class OnnxSession:
    """An `onnx-float32` folder's graph in onnxruntime, read like a transformers classifier:
    `session(**batch).logits` for a tokenizer's batch (missing inputs: all attended, segment 0).
    The folder must have passed `check_files` (its caller's: parsing and checking an 87 MB graph
    again here would double each load)."""

    def __init__(self, folder: Path, threads: int = 1) -> None:
        import onnxruntime as ort

        self.inputs: list[str] = manifest(folder)["inputs"]
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = max(1, threads), 1
        self.session = ort.InferenceSession(str(folder / ONNX_FILE), options, providers=["CPUExecutionProvider"])
        self.file_bytes = (folder / ONNX_FILE).stat().st_size

    def logits(self, batch: Any) -> Any:
        import numpy as np
        import torch

        ids = torch.as_tensor(batch["input_ids"]).cpu()
        feeds = {}
        for name in self.inputs:
            value = batch.get(name)
            if value is None:
                value = torch.ones_like(ids) if name == "attention_mask" else torch.zeros_like(ids)
            feeds[name] = np.ascontiguousarray(torch.as_tensor(value).cpu().numpy(), dtype=np.int64)
        return torch.from_numpy(self.session.run(["logits"], feeds)[0]).float()

    def __call__(self, **batch: Any) -> Any:
        from types import SimpleNamespace

        return SimpleNamespace(logits=self.logits(batch))


def _tied_keys(model: Any) -> set[str]:
    """Parameters that the architecture ties to another (an output layer sharing the embeddings)."""
    names: set[str] = set()
    seen: dict[int, str] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        if id(parameter) in seen:
            names.add(name)
        seen.setdefault(id(parameter), name)
    return names


def memory_bytes(model: Any) -> int:
    """What the weights hold in memory: parameters and buffers as held (int8 weights at a byte each);
    an ONNX graph's, its file (float32 initializers: the graph's nodes are a few KiB of it)."""
    from inference.ml.predictors import parameter_bytes

    if isinstance(model, OnnxSession):
        return model.file_bytes

    return parameter_bytes(model) + sum(b.numel() * b.element_size() for b in model.buffers())


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


# ---------------------------------------------------------------- measuring what compression cost

Progress = Any  # Callable[[int], None]: rows or texts done


def _median_ms(samples: list[float]) -> float:
    import statistics

    return round(statistics.median(samples) * 1000, 3)


def measure_classifier(source: Any, compressed: Any, tokenizer: Any, texts: list[str], targets: list[int], *,
                       max_length: int = 128, batch_size: int = 32, latency_rows: int = 100,
                       progress: Progress = None) -> dict[str, Any]:
    """Held-out accuracy of both models, how often they agree, and their speed on this worker's CPU:
    the median time of one text alone (how a request is served when traffic is light), interleaved so
    that both see the same load, and rows a second in batches."""
    import time

    import torch

    labels = torch.tensor(targets)
    predicted: dict[str, list[Any]] = {"source": [], "compressed": []}
    probabilities: dict[str, list[Any]] = {"source": [], "compressed": []}
    seconds = {"source": 0.0, "compressed": 0.0}
    models = {"source": source, "compressed": compressed}
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt")
            for name, model in models.items():
                began = time.perf_counter()
                proba = torch.softmax(model(**batch).logits.float(), dim=-1)
                seconds[name] += time.perf_counter() - began
                probabilities[name].append(proba)
                predicted[name].append(proba.argmax(dim=1))
            if progress is not None:
                progress(min(start + batch_size, len(texts)))
        alone: dict[str, list[float]] = {"source": [], "compressed": []}
        for text in texts[:latency_rows]:
            one = tokenizer([text], truncation=True, max_length=max_length, return_tensors="pt")
            for name, model in models.items():
                began = time.perf_counter()
                model(**one)
                alone[name].append(time.perf_counter() - began)
    source_labels, compressed_labels = torch.cat(predicted["source"]), torch.cat(predicted["compressed"])
    source_accuracy = float((source_labels == labels).float().mean())
    compressed_accuracy = float((compressed_labels == labels).float().mean())
    gap = (torch.cat(probabilities["source"]) - torch.cat(probabilities["compressed"])).abs().max()
    latency = {name: _median_ms(values) for name, values in alone.items()}
    return {
        "rows": len(texts),
        "source_accuracy": round(source_accuracy, 6), "compressed_accuracy": round(compressed_accuracy, 6),
        "accuracy_delta_points": round((compressed_accuracy - source_accuracy) * 100, 4),
        "label_agreement": round(float((source_labels == compressed_labels).float().mean()), 6),
        "max_probability_change": round(float(gap), 6),
        "latency_ms": latency, "latency_rows": min(latency_rows, len(texts)),
        "rows_per_second": {name: round(len(texts) / max(s, 1e-9), 2) for name, s in seconds.items()},
        "speedup": round(latency["source"] / max(latency["compressed"], 1e-9), 3),
        "speedup_measure": "median time of one text alone, source / compressed",
    }


def measure_generative(source: Any, compressed: Any, tokenizer: Any, texts: list[str], *, window: int = 256,
                       prompts: int = 40, new_tokens: int = 32, progress: Progress = None) -> dict[str, Any]:
    """Perplexity of both models on held-out texts (every token, the first from the start-of-text
    token), and agreement with the source's greedy outputs: the source continues the first half of
    `prompts` texts greedily; `greedy_agreement` is the share of those tokens the compressed model
    predicts alike, each from the source's own prefix (teacher forcing: one divergence does not
    count twice); `exact_continuations` the share of prompts it continues to the same `new_tokens`
    tokens on its own. Decoding speed is tokens a second of those greedy runs, one request at a time."""
    import math
    import time

    import torch

    from inference.ml.language_models import token_nll

    start = tokenizer.bos_token_id
    if start is None:
        start = tokenizer.eos_token_id
    # one text at a time, as the engine scores a text: no padding, so the figures are those of each text alone
    source_nll, tokens = token_nll(source, tokenizer, texts, max_length=window, batch_size=1)
    compressed_nll, _tokens = token_nll(compressed, tokenizer, texts, max_length=window, batch_size=1, beat=progress)
    if tokens == 0:
        raise InputError(_('no held-out text is long enough to measure perplexity on'))
    done = len(texts)
    with torch.inference_mode():
        agree = total = exact = 0
        seconds = {"source": 0.0, "compressed": 0.0}
        made = {"source": 0, "compressed": 0}
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        used = 0
        for text in texts:
            if used == prompts:
                break
            ids = tokenizer(text, add_special_tokens=False)["input_ids"][:window]
            if len(ids) < 8:
                continue
            used += 1
            prompt = torch.tensor([[start, *ids[:len(ids) // 2]]])
            runs = {}
            for name, model in (("source", source), ("compressed", compressed)):
                began = time.perf_counter()
                out = model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new_tokens,
                                     do_sample=False, pad_token_id=pad)
                seconds[name] += time.perf_counter() - began
                runs[name] = out[0, prompt.shape[1]:].tolist()
                made[name] += len(runs[name])
            if progress is not None:
                progress(done)  # a heartbeat: the greedy runs take seconds each
            reference = runs["source"]
            if not reference:
                continue
            forced = torch.tensor([[*prompt[0].tolist(), *reference]])
            guesses = compressed(forced).logits[0, prompt.shape[1] - 1:-1].argmax(dim=-1).tolist()
            agree += sum(int(g == r) for g, r in zip(guesses, reference, strict=True))
            total += len(reference)
            exact += int(runs["compressed"] == reference)
    speed = {name: round(made[name] / max(seconds[name], 1e-9), 2) for name in seconds}
    source_ppl, compressed_ppl = math.exp(source_nll / tokens), math.exp(compressed_nll / tokens)
    return {
        "texts": len(texts), "tokens": tokens,
        "source_perplexity": round(source_ppl, 4), "compressed_perplexity": round(compressed_ppl, 4),
        "perplexity_ratio": round(compressed_ppl / source_ppl, 4),
        "prompts": used, "new_tokens": new_tokens,
        "greedy_agreement": round(agree / total, 6) if total else None,
        "exact_continuations": round(exact / used, 6) if used else None,
        "tokens_per_second": speed,
        "speedup": round(speed["compressed"] / max(speed["source"], 1e-9), 3),
        "speedup_measure": "greedy tokens a second, one request at a time, compressed / source",
    }

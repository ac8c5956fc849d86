"""Predictors of language models that do not classify: generative models (served by
inference/ml/generation.Generator; registered here for the registry's checks) and sentence encoders
(embeddings, served on the predictions' path). Each registers itself with the registry in predictors.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from inference.ml.loading import BUILDING
from inference.ml.predictors import TEXT_MAX_TOKENS, ArtifactInfo, TextClassifier, parameter_bytes, register_predictor
from inference.ml.schema import InputError, validate_text_inputs
from inference.ml.words import _


class CausalLanguageModel:
    """A Hugging Face causal language model (config, safetensors, tokenizer with its chat template,
    generation config), served by inference/ml/generation.Generator. It does not classify: it is
    registered here for the registry's checks (files, loads, generates a few tokens)."""

    task: ClassVar[str] = "text-generation"
    framework: ClassVar[str] = "transformers"
    REQUIRED: ClassVar[list[str]] = ["config.json"]

    def __init__(self) -> None:
        self.labels: list[str] = []
        self.device = "cpu"

    @classmethod
    def check_files(cls, folder: Path) -> None:
        missing = [name for name in cls.REQUIRED if not (folder / name).is_file()]
        if not any(folder.glob("*.safetensors")):
            if (folder / "pytorch_model.bin").exists():
                raise InputError(_('pickled weights (pytorch_model.bin) are refused: upload safetensors'))
            missing.append("model.safetensors")
        if not (folder / "tokenizer.json").is_file():
            missing.append("tokenizer.json")
        if missing:
            raise InputError(_('the model folder lacks %(value)s') % {"value": ', '.join(missing)})
        from inference.ml.hf_check import check_hf_folder

        check_hf_folder(folder)

    def load(self, folder: Path, device: str) -> None:
        raise InputError(_('a generative model is served by the generation workers, not as a classifier'))

    def validate(self, inputs: list[Any]) -> list[Any]:
        raise InputError(_('a generative model does not classify: use /v1/chat/completions or /v1/completions'))

    def predict_proba(self, inputs: list[Any]) -> Any:
        raise InputError(_('a generative model does not classify: use /v1/chat/completions or /v1/completions'))

    def memory_bytes(self) -> int:
        return 0

    @classmethod
    def inspect(cls, folder: Path) -> ArtifactInfo:
        import torch
        from transformers import AutoTokenizer

        cls.check_files(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
        model = load_causal_lm(folder)
        chat = bool(getattr(tokenizer, "chat_template", None))
        ids: Any
        if chat:
            encoded: Any = tokenizer.apply_chat_template([{"role": "user", "content": "Say hello."}],
                                                         add_generation_prompt=True, tokenize=True, return_dict=True)
            ids = encoded["input_ids"]
        else:
            ids = tokenizer("Hello,", add_special_tokens=True)["input_ids"]
        with torch.inference_mode():
            out = model.generate(torch.tensor([list(ids)]), max_new_tokens=4, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        made = out[0, len(ids):].tolist()
        if not made:
            raise InputError(_('the model generated no token from an example prompt'))
        context = int(getattr(model.config, "max_position_embeddings", 0) or 0)
        return ArtifactInfo(cls.task, cls.framework, [], {"chat_template": chat, "context": context,
                                                          "architecture": type(model).__name__},
                            {"example_tokens": len(made)})


class Int8CausalLanguageModel(CausalLanguageModel):
    """A generative model compressed by Steward (inference/ml/compression.py): int8 Linear layers, served on CPU."""

    framework: ClassVar[str] = "transformers-int8"

    @classmethod
    def check_files(cls, folder: Path) -> None:
        from inference.ml import compression

        compression.check_files(folder)
        if not (folder / "tokenizer.json").is_file():
            raise InputError(_('the model folder lacks tokenizer.json'))


def load_causal_lm(folder: Path, **options: Any) -> Any:
    """A causal language model's float32 weights, or its int8 compressed form (on CPU), in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    from inference.ml import compression

    if compression.is_compressed(folder):
        return compression.load(folder, AutoModelForCausalLM, **options)
    with BUILDING:
        return AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, use_safetensors=True,
                                                    trust_remote_code=False, dtype=torch.float32, **options).eval()


def encode_from_start(tokenizer: Any, texts: list[str], *, max_length: int) -> dict[str, Any]:
    """Token ids from the start-of-text token (or end-of-text where a tokenizer has none), cut to
    `max_length`, padded right, with their mask: every token of a text is then predicted, the first
    from that start."""
    import torch

    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rows = [[start, *tokenizer(text, add_special_tokens=False)["input_ids"]][:max_length] for text in texts]
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def position_nll(logits: Any, target: Any) -> Any:
    """Each position's negative log-likelihood (B x L) from logits (B x L x V), the vocabulary the
    contiguous last dimension: cross-entropy over a transposed (B x V x L) view sums the vocabulary
    along a stride and was measured 2e-4 off per token on SmolLM2's 49,152 entries."""
    from torch.nn import functional as F

    flat = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none")
    return flat.reshape(target.shape)


def text_nll(model: Any, tokenizer: Any, texts: list[str], *, max_length: int, device: str = "cpu",
             batch_size: int = 16, beat: Any = None) -> list[tuple[float, int]]:
    """Each text's summed negative log-likelihood and its number of tokens (see `encode_from_start`;
    padding excluded), in batches; `beat(texts done)` after each batch."""
    import torch

    found: list[tuple[float, int]] = []
    with torch.inference_mode():
        for begin in range(0, len(texts), batch_size):
            encoded = encode_from_start(tokenizer, texts[begin:begin + batch_size], max_length=max_length)
            ids, mask = encoded["input_ids"].to(device), encoded["attention_mask"].to(device)
            padded = bool((mask == 0).any())  # a mask only where there is padding: SDPA's causal path otherwise
            logits = model(input_ids=ids, attention_mask=mask if padded else None).logits[:, :-1].float()
            weights = mask[:, 1:].float()
            nll = (position_nll(logits, ids[:, 1:]) * weights).sum(dim=1)
            found.extend((float(total), int(count)) for total, count in zip(nll.cpu(), weights.sum(dim=1).cpu(),
                                                                            strict=True))
            if beat is not None:
                beat(min(begin + batch_size, len(texts)))
    return found


def token_nll(model: Any, tokenizer: Any, texts: list[str], *, max_length: int, device: str = "cpu",
              batch_size: int = 16, beat: Any = None) -> tuple[float, int]:
    """The summed negative log-likelihood of the texts' tokens and their number (`text_nll` added up);
    exp(sum / count) is perplexity."""
    each = text_nll(model, tokenizer, texts, max_length=max_length, device=device, batch_size=batch_size, beat=beat)
    return sum(total for total, _ in each), sum(count for _, count in each)


class SentenceEncoder:
    """A sentence-transformers folder (a Hugging Face encoder, its tokenizer, `1_Pooling/config.json`,
    and `modules.json` naming a Normalize step where there is one): text in, one vector per text.

    Served like the classifiers (the prediction path, the dynamic batch); its "probabilities" are the
    vectors. Pooling is read from the folder, as sentence-transformers reads it: mean or CLS; any other
    is refused at registration rather than computed differently from what the model's authors meant.
    """

    task: ClassVar[str] = "text-embedding"
    framework: ClassVar[str] = "transformers"
    REQUIRED: ClassVar[list[str]] = ["config.json", "model.safetensors"]

    def __init__(self) -> None:
        self.labels: list[str] = []
        self.device = "cpu"
        self.pooling = "mean"
        self.normalize = False
        self.max_tokens = TEXT_MAX_TOKENS

    @classmethod
    def read_layout(cls, folder: Path) -> tuple[str, bool, int]:
        """(pooling, normalize, max_tokens) from the sentence-transformers files; a plain encoder
        folder without them is pooled by its mean, not normalised, up to TEXT_MAX_TOKENS."""
        pooling, normalize, max_tokens = "mean", False, TEXT_MAX_TOKENS
        pooling_file = folder / "1_Pooling" / "config.json"
        if pooling_file.is_file():
            config = json.loads(pooling_file.read_text())
            modes = [k for k, v in config.items() if k.startswith("pooling_mode_") and v is True]
            if modes == ["pooling_mode_mean_tokens"]:
                pooling = "mean"
            elif modes == ["pooling_mode_cls_token"]:
                pooling = "cls"
            else:
                raise InputError(_('the pooling %(value)s is not supported: mean or CLS only') % {"value": ', '.join(modes) or 'none'})
        modules = folder / "modules.json"
        if modules.is_file():
            kinds = [m.get("type", "") for m in json.loads(modules.read_text()) if isinstance(m, dict)]
            normalize = any(k.endswith(".Normalize") for k in kinds)
        bert = folder / "sentence_bert_config.json"
        if bert.is_file():
            max_tokens = int(json.loads(bert.read_text()).get("max_seq_length") or TEXT_MAX_TOKENS)
        return pooling, normalize, max_tokens

    @classmethod
    def check_files(cls, folder: Path) -> None:
        TextClassifier.check_files(folder)
        cls.read_layout(folder)

    def load(self, folder: Path, device: str) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.check_files(folder)
        self.pooling, self.normalize, self.max_tokens = self.read_layout(folder)
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True, trust_remote_code=False)
        with BUILDING:
            model = AutoModel.from_pretrained(folder, local_files_only=True, use_safetensors=True,
                                              trust_remote_code=False)
        limit = int(getattr(model.config, "max_position_embeddings", 0) or self.max_tokens)
        self.max_tokens = min(self.max_tokens, limit)
        self.device = device
        self.model = model.to(device).eval()

    def validate(self, inputs: list[Any]) -> list[str]:
        return validate_text_inputs(inputs)

    def token_counts(self, texts: list[str]) -> list[int]:
        """Tokens per text as the model reads it (special tokens included), for usage and the length check."""
        return [len(ids) for ids in self.tokenizer(list(texts), add_special_tokens=True)["input_ids"]]

    def predict_proba(self, inputs: list[str]) -> Any:
        import torch

        batch = self.tokenizer(list(inputs), padding=True, truncation=True, max_length=self.max_tokens,
                               return_tensors="pt").to(self.device)
        with torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state.float()
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled.cpu().numpy()

    def memory_bytes(self) -> int:
        return parameter_bytes(self.model)

    @classmethod
    def inspect(cls, folder: Path) -> ArtifactInfo:
        predictor = cls()
        predictor.load(folder, "cpu")
        vectors = predictor.predict_proba(["This is an example."])
        dimensions = int(vectors.shape[1])
        return ArtifactInfo(cls.task, cls.framework, [],
                            {"dimensions": dimensions, "max_tokens": predictor.max_tokens, "pooling": predictor.pooling,
                             "normalized": predictor.normalize},
                            {"dimensions": dimensions})


register_predictor(CausalLanguageModel.task, CausalLanguageModel)  # type: ignore[arg-type]
register_predictor(CausalLanguageModel.task, Int8CausalLanguageModel, accepts_uploads=False)  # type: ignore[arg-type]
register_predictor(SentenceEncoder.task, SentenceEncoder)  # type: ignore[arg-type]

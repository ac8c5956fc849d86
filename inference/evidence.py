"""Evidence about a model version that other apps provide (bias reports, explanations, exports).

The registry sits below the apps that judge a model (STYLE.md: inference <- audit.fairness), so it
cannot ask them directly. They register a provider here when Django starts (Opacus's registry
shape); the model card shows what providers return, and approval refuses a version while any of
them says it blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext

from inference.models import ModelVersion


@dataclass(frozen=True)
class Evidence:
    title: str  # "Bias report"
    summary: str  # "fail: demographic parity ratio 0.31 (sex)"
    verdict: str = ""  # pass | warn | fail | "" (none)
    url: str = ""  # where a person reads it
    blocks_approval: bool = False
    reason: str = ""  # why it blocks, said to the reviewer
    details: dict[str, Any] = field(default_factory=dict)


EvidenceProvider = Callable[[ModelVersion], "Evidence | None"]
_PROVIDERS: dict[str, EvidenceProvider] = {}


def register_evidence_provider(name: str, provider: EvidenceProvider) -> None:
    _PROVIDERS[name] = provider  # re-registering (autoreload, tests) replaces


def version_evidence(version: ModelVersion) -> list[Evidence]:
    found = []
    for provider in _PROVIDERS.values():
        evidence = provider(version)
        if evidence is not None:
            found.append(evidence)
    return found


def _artifact_format(version: ModelVersion) -> Evidence | None:
    """TorchScript, accepted before ONNX replaced it, can run code of its own: said on the card, and a
    version in it that is not yet approved cannot be."""
    if version.framework != "torchscript":
        return None
    return Evidence(
        title=gettext("Artifact format"),
        summary=gettext("TorchScript: a format that can run code of its own. Versions approved in it keep serving; no "
                        "new version is accepted in it. Export the model to ONNX and register it again."),
        verdict="warn",
        blocks_approval=version.status in ("draft", "submitted", "rejected"),
        reason=gettext("TorchScript versions can no longer be approved; register the model as ONNX."),
        details={"framework": version.framework},
    )


register_evidence_provider("artifact-format", _artifact_format)

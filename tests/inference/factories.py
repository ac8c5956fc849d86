"""Models for tests: a tiny tabular ONNX model made on the spot, and the real sentiment model."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from rest_framework.test import APIClient

from inference.ml import artifacts
from inference.ml.predictors import ArtifactInfo
from inference.models import ModelVersion
from inference.services.registry import alias_move, card_clean, model_version_transition, version_store
from inference.services.uploads import model_version_register
from portal.accounts.actor import Actor, actor_for_membership
from portal.accounts.models import Organization
from portal.accounts.roles import Role
from tests.portal.accounts.factories import member, token_for

TINY_SCHEMA = {
    "features": [
        {"name": "income", "type": "number", "min": 0, "max": 1000, "mean": 50.0, "std": 20.0},
        {"name": "region", "type": "category", "values": ["north", "south"]},
    ],
    "labels": ["deny", "grant"],
}

CARD = {
    "intended_use": "tests",
    "out_of_scope_uses": "everything else",
    "training_data": "none: weights set by hand",
    "evaluation_data": "none",
    "limitations": "a toy",
    "ethical_considerations": "none, a toy",
    "owner": "tests",
}


def onnx_linear(weight: list[list[float]], bias: list[float]) -> bytes:
    """An ONNX graph `logits = x @ weight.T + bias` (one Gemm), as torch.onnx.export would write a Linear."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w, b = np.asarray(weight, dtype=np.float32), np.asarray(bias, dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["features", "weight", "bias"], ["logits"], transB=1)], "linear",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["rows", w.shape[1]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["rows", w.shape[0]])],
        [numpy_helper.from_array(w, "weight"), numpy_helper.from_array(b, "bias")],
    )
    return onnx.helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9).SerializeToString()


def tiny_tabular_archive(folder: Path, *, bias: float = 0.0, background: bool = True) -> bytes:
    """An ONNX model whose grant score rises with income: deterministic, instant to load."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(onnx_linear([[-2.0, 0.0, 0.0], [2.0, 0.0, 0.0]], [0.0, bias]))
    (folder / "schema.json").write_text(json.dumps(TINY_SCHEMA))
    if background:
        rows = [{"income": float(i * 7 % 100), "region": "north" if i % 2 else "south"} for i in range(20)]
        (folder / "background.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return artifacts.pack_directory(folder)


def onnx_mlp(first: list[list[float]], second: list[list[float]]) -> bytes:
    """An ONNX graph `logits = relu(x @ first.T) @ second.T`: a model whose features interact, so that
    sampled Shapley values depend on the coalitions drawn."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w1, w2 = np.asarray(first, dtype=np.float32), np.asarray(second, dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["features", "w1"], ["hidden"], transB=1),
         helper.make_node("Relu", ["hidden"], ["active"]),
         helper.make_node("Gemm", ["active", "w2"], ["logits"], transB=1)], "mlp",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["rows", w1.shape[1]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["rows", w2.shape[0]])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")],
    )
    return onnx.helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9).SerializeToString()


def wide_tabular_archive(folder: Path, *, features: int = 21) -> bytes:
    """A small MLP over `features` numbers f00, f01, ...: too many for exact values (explained by sampling)."""
    import numpy as np

    rng = np.random.default_rng(7)
    names = [f"f{i:02d}" for i in range(features)]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(onnx_mlp(rng.normal(size=(8, features)).tolist(),
                                                 rng.normal(size=(2, 8)).tolist()))
    schema = {"features": [{"name": n, "type": "number", "min": -10, "max": 10, "mean": 0.0, "std": 1.0} for n in names],
              "labels": ["deny", "grant"]}
    (folder / "schema.json").write_text(json.dumps(schema))
    background = [dict(zip(names, map(float, rng.normal(size=features).round(3)), strict=True)) for _ in range(20)]
    (folder / "background.jsonl").write_text("".join(json.dumps(row) + "\n" for row in background))
    return artifacts.pack_directory(folder)


def wide_row(features: int = 21) -> dict[str, float]:
    return {f"f{i:02d}": round(((i * 7) % 11 - 5) / 2.5, 2) for i in range(features)}


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in files.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def sentiment_archive() -> bytes:
    """The demo sentiment model with real MiniLM weights (built once per checkout, then cached)."""
    from django.conf import settings

    from inference.ml.demos import SENTIMENT, build_cached

    folder, _ = build_cached(SENTIMENT, lambda *a: None, settings.BUILD_CACHE_DIR)
    return artifacts.pack_directory(folder)


@dataclass
class Served:
    org: Organization
    actors: dict[str, Actor]
    version: ModelVersion


# The sandboxed check of an archive (a child process that loads the model and runs an example: 5 to 10 s
# for the real models) runs once per archive and task per test session; the same bytes registered again
# are stored with what that check found. The check itself is what the upload and registry tests test.
_CHECKED: dict[tuple[str, str], ArtifactInfo] = {}


def register_checked_once(actor: Actor, *, name: str, task: str, archive: bytes,
                          card: dict | None = None) -> ModelVersion:
    card = CARD if card is None else card
    key = (hashlib.sha256(archive).hexdigest(), task)
    if key not in _CHECKED:
        version = model_version_register(actor=actor, name=name, task=task, archive=io.BytesIO(archive), card=card)
        _CHECKED[key] = ArtifactInfo(task=version.task, framework=version.framework, labels=list(version.labels),
                                     input_schema=version.input_schema, background_rows=version.background_rows)
        return version
    with tempfile.TemporaryDirectory(prefix="steward-test-register-") as folder:
        path = Path(folder) / "archive"
        path.write_bytes(archive)
        return version_store(organization=actor.organization, user=actor.user, audit_actor=actor.audit_actor,
                             name=name, task=task, path=path, sha256=key[0], size=len(archive), info=_CHECKED[key],
                             card=card_clean(card), description="")


def serve_model(org: Organization, *, name: str, task: str, archive: bytes, card: dict | None = None) -> Served:
    """A model registered (with `card`, else the tests' card), approved and aliased production, with one
    member per role."""
    actors = {role.value: actor_for_membership(member(role, org), org, role) for role in Role}
    version = register_checked_once(actors["owner"], name=name, task=task, archive=archive, card=card)
    model_version_transition(actor=actors["owner"], version=version, action="submit")
    model_version_transition(actor=actors["reviewer"], version=version, action="approve", comment="ok")
    alias_move(actor=actors["owner"], model=version.model, alias="production", version=version)
    version.refresh_from_db()
    return Served(org=org, actors=actors, version=version)


def bearer_client(served: Served, role: str = "consumer") -> APIClient:
    """An API client with a fresh token of the served organisation's member in `role`."""
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token_for(served.actors[role].user, served.org, role).secret}")
    return api


def csv_upload(rows: list[dict], name: str = "rows.csv") -> io.BytesIO:
    """Rows as an uploaded CSV file (header from the first row's keys)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    data = io.BytesIO(buffer.getvalue().encode())
    data.name = name
    return data


def stored_files(prefix: str) -> set[str]:
    """The files under `prefix/<organisation>/` in the artifact storage (to check nothing was left behind)."""
    from django.core.files.storage import default_storage

    if not default_storage.exists(prefix):
        return set()
    found = set()
    for folder in default_storage.listdir(prefix)[0]:
        found |= {f"{folder}/{name}" for name in default_storage.listdir(f"{prefix}/{folder}")[1]}
    return found

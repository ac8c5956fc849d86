"""The check of an uploaded model: a child process without the portal's environment, stopped at its limits."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from inference.exceptions import InvalidArchive
from inference.ml.sandbox import CheckTimedOut, Limits, inspect_in_sandbox
from inference.ml.schema import InputError
from tests.inference import hostile_models as hostile
from tests.inference.factories import onnx_linear
from tests.waits import patience

GENEROUS = Limits(seconds=300, memory_bytes=4 * 2**30)


def _probes(folder: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"inference.ml.probe" in cmdline and str(folder).encode() in cmdline:
                found.append(int(entry.name))
    return found


def test_a_model_that_runs_too_long_is_stopped_at_the_limit_in_a_child_without_the_portals_secrets(tmp_path) -> None:
    os.environ["SECRET_KEY_CANARY_FOR_TEST"] = "canary-7c1e"  # what a worker's environment holds
    hostile.tabular_archive(tmp_path / "m", hostile.slow_model())
    outcome: dict = {}

    def check() -> None:
        try:
            inspect_in_sandbox("tabular-classification", tmp_path / "m", Limits(seconds=20, memory_bytes=4 * 2**30))
        except BaseException as exc:
            outcome["error"] = exc

    runner = threading.Thread(target=check)
    runner.start()
    try:
        environ = b""
        deadline = time.monotonic() + patience(20)  # until the child exists; the limit only stops a hang
        while not environ and runner.is_alive() and time.monotonic() < deadline:
            pids = _probes(tmp_path / "m")
            if pids:
                environ = Path(f"/proc/{pids[0]}/environ").read_bytes()
            else:
                time.sleep(0.05)
        names = {item.split(b"=", 1)[0].decode() for item in environ.split(b"\0") if item}
        assert names, "the probe was never seen running"
        assert not names & {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "SECRET_KEY_CANARY_FOR_TEST",
                            "AUDIT_SIGNING_KEY_FILE", "ARTIFACT_S3_SECRET_KEY"}
        assert b"canary-7c1e" not in environ
    finally:
        runner.join()
        del os.environ["SECRET_KEY_CANARY_FOR_TEST"]
    assert isinstance(outcome.get("error"), CheckTimedOut)
    assert "20 seconds" in str(outcome["error"])
    assert not _probes(tmp_path / "m")  # killed with its process group, not left running


def test_a_model_that_asks_for_too_much_memory_is_refused(tmp_path) -> None:
    hostile.tabular_archive(tmp_path / "m", hostile.hungry_model())
    with pytest.raises(InputError, match="more memory than a check may use"):
        inspect_in_sandbox("tabular-classification", tmp_path / "m", Limits(seconds=120, memory_bytes=3 * 2**30))


@pytest.mark.parametrize("location", ["CANARY", "../CANARY", "../../CANARY"])
def test_external_data_outside_the_archive_is_refused_without_reading_it(tmp_path, location) -> None:
    canary = tmp_path / "CANARY"
    canary.write_bytes(b"top-secret-canary-value-000000")  # 24 bytes and more: loadable as weights
    location = str(canary) if location == "CANARY" else location
    hostile.tabular_archive(tmp_path / "a" / "m", hostile.external_data_model(location))
    with pytest.raises(InputError, match="outside the archive") as refused:
        inspect_in_sandbox("tabular-classification", tmp_path / "a" / "m", GENEROUS)
    assert "top-secret" not in str(refused.value)


def test_external_data_inside_the_archive_is_accepted(tmp_path) -> None:
    import numpy as np

    weights = np.array([[-2, 0, 0], [2, 0, 0]], dtype=np.float32).tobytes()
    hostile.tabular_archive(tmp_path / "m", hostile.external_data_model("weights.bin"), **{"weights.bin": weights})
    info = inspect_in_sandbox("tabular-classification", tmp_path / "m", GENEROUS)
    assert info.framework == "onnx" and info.labels == ["deny", "grant"]


def test_operators_outside_the_onnx_standard_are_refused(tmp_path) -> None:
    hostile.tabular_archive(tmp_path / "m", hostile.custom_op_model())
    with pytest.raises(InputError, match=r"com\.evil"):
        inspect_in_sandbox("tabular-classification", tmp_path / "m", GENEROUS)


def test_torchscript_is_refused_with_the_way_to_onnx(tmp_path) -> None:
    import torch

    folder = tmp_path / "m"
    hostile.tabular_archive(folder, onnx_linear([[1, 0, 0], [0, 1, 0]], [0, 0]))
    (folder / "model.onnx").unlink()
    torch.jit.script(torch.nn.Linear(3, 2)).save(str(folder / "model.pt"))
    with pytest.raises(InputError, match=r"TorchScript .* no longer accepted.*ONNX"):
        inspect_in_sandbox("tabular-classification", folder, GENEROUS)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"tokenizer_config.json": {"tokenizer_file": "/etc/passwd"}}, "outside the model folder"),
        ({"tokenizer_config.json": {"vocab_file": "../../CANARY"}}, "outside the model folder"),
        ({"config.json": {"model_type": "bert", "auto_map": {"AutoModel": "evil.Model"}}}, "code of its own"),
    ],
)
def test_hugging_face_folders_that_reach_outside_or_ask_for_code_are_refused(tmp_path, files, message) -> None:
    hostile.text_folder_archive(tmp_path / "m", **files)
    with pytest.raises(InputError, match=message):
        inspect_in_sandbox("text-classification", tmp_path / "m", GENEROUS)


def test_python_files_in_a_folder_are_refused(tmp_path) -> None:
    hostile.text_folder_archive(tmp_path / "m")
    (tmp_path / "m" / "modeling_evil.py").write_text("import os\n")
    with pytest.raises(InputError, match="Python code"):
        inspect_in_sandbox("text-classification", tmp_path / "m", GENEROUS)


def test_registration_turns_a_refusal_into_a_sentence(tmp_path, db) -> None:
    import io

    from inference.services.uploads import model_version_register
    from portal.accounts.actor import actor_for_membership
    from tests.portal.accounts.factories import OrganizationFactory, member

    org = OrganizationFactory()
    owner = actor_for_membership(member("owner", org), org, "owner")
    archive = hostile.tabular_archive(tmp_path / "m", hostile.custom_op_model())
    with pytest.raises(InvalidArchive) as refused:
        model_version_register(actor=owner, name="evil", task="tabular-classification", archive=io.BytesIO(archive))
    assert refused.value.message.startswith("Model.onnx uses") and refused.value.message.endswith(".")


def test_the_readmes_export_recipes_give_models_the_check_accepts(tmp_path) -> None:
    """PyTorch (torch.onnx.export, dynamo) and scikit-learn (skl2onnx, probabilities) as the README shows them."""
    import json

    import numpy as np
    import torch
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    from inference.ml.schema import encode_rows
    from inference.ml.training import export_onnx
    from tests.inference.factories import TINY_SCHEMA

    rows = [{"income": float(i), "region": "north" if i % 3 else "south"} for i in range(0, 200, 5)]
    x = np.asarray(encode_rows(TINY_SCHEMA, rows), dtype=np.float32)
    y = np.array([int(r["income"] > 100) for r in rows])
    clf = LogisticRegression().fit(x, y)
    sk = tmp_path / "sk"
    sk.mkdir()
    (sk / "model.onnx").write_bytes(to_onnx(clf, x[:1], options={id(clf): {"zipmap": False}}).SerializeToString())
    (sk / "schema.json").write_text(json.dumps({**TINY_SCHEMA, "output": "probabilities"}))
    info = inspect_in_sandbox("tabular-classification", sk, GENEROUS)
    expected = clf.predict_proba(np.asarray(encode_rows(TINY_SCHEMA, [{"income": 50.0, "region": "north"}]),
                                            dtype=np.float32))[0]
    assert [info.example_output["scores"][label] for label in ("deny", "grant")] == pytest.approx(expected, abs=1e-5)

    pt = tmp_path / "pt"
    pt.mkdir()
    export_onnx(torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)), 3, pt / "model.onnx")
    (pt / "schema.json").write_text(json.dumps(TINY_SCHEMA))
    assert inspect_in_sandbox("tabular-classification", pt, GENEROUS).framework == "onnx"

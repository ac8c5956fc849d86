"""Archives built to attack the portal that checks them: each must be refused or stopped, revealing nothing."""

from __future__ import annotations

import json
from pathlib import Path

from inference.ml import artifacts
from tests.inference.factories import TINY_SCHEMA


def _model(nodes: list, inputs: list, outputs: list, initializers: list, *, domains: tuple = ("",)) -> bytes:
    import onnx
    from onnx import helper

    graph = helper.make_graph(nodes, "hostile", inputs, outputs, initializers)
    opsets = [helper.make_opsetid(domain, 17 if domain == "" else 1) for domain in domains]
    return onnx.helper.make_model(graph, opset_imports=opsets, ir_version=9).SerializeToString()


def _io() -> tuple[list, list]:
    from onnx import TensorProto, helper

    return ([helper.make_tensor_value_info("features", TensorProto.FLOAT, ["rows", 3])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["rows", 2])])


def external_data_model(location: str) -> bytes:
    """A Linear whose weight's bytes are 'stored' in the file at `location` (of the uploader's choosing)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weight = TensorProto(name="weight", data_type=TensorProto.FLOAT, dims=[2, 3])
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "24")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    inputs, outputs = _io()
    return _model([helper.make_node("Gemm", ["features", "weight", "bias"], ["logits"], transB=1)], inputs, outputs,
                  [weight, numpy_helper.from_array(np.zeros(2, dtype=np.float32), "bias")])


def custom_op_model() -> bytes:
    from onnx import helper

    inputs, outputs = _io()
    return _model([helper.make_node("ReadFile", ["features"], ["logits"], domain="com.evil")], inputs, outputs, [],
                  domains=("", "com.evil"))


def slow_model() -> bytes:
    """Loops (almost) for ever on any input: a check must stop it at its time limit."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Add", ["acc_in", "one"], ["acc_out"])],
        "spin",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, ["rows", 2])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, ["rows", 2])],
        [numpy_helper.from_array(np.float32(1.0), "one")],
    )
    inputs, outputs = _io()
    nodes = [
        helper.make_node("Gemm", ["features", "weight", "bias"], ["start"], transB=1),
        helper.make_node("Loop", ["trips", "keep_going", "start"], ["logits"], body=body),
    ]
    return _model(nodes, inputs, outputs, [
        numpy_helper.from_array(np.zeros((2, 3), dtype=np.float32), "weight"),
        numpy_helper.from_array(np.zeros(2, dtype=np.float32), "bias"),
        numpy_helper.from_array(np.array(2**62, dtype=np.int64), "trips"),
        numpy_helper.from_array(np.array(True), "keep_going"),
    ])


def hungry_model() -> bytes:
    """Asks for a 64 GB tensor on any input: a check must stop it at its memory limit."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    inputs, outputs = _io()
    nodes = [
        helper.make_node("ConstantOfShape", ["shape"], ["huge"],
                         value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
        helper.make_node("ReduceSum", ["huge"], ["total"], keepdims=0),
        helper.make_node("Gemm", ["features", "weight", "bias"], ["base"], transB=1),
        helper.make_node("Add", ["base", "total"], ["logits"]),
    ]
    return _model(nodes, inputs, outputs, [
        numpy_helper.from_array(np.array([4_000_000, 4_000], dtype=np.int64), "shape"),
        numpy_helper.from_array(np.zeros((2, 3), dtype=np.float32), "weight"),
        numpy_helper.from_array(np.zeros(2, dtype=np.float32), "bias"),
    ])


def tabular_archive(folder: Path, model: bytes, **extra: bytes) -> bytes:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.onnx").write_bytes(model)
    (folder / "schema.json").write_text(json.dumps(TINY_SCHEMA))
    for name, data in extra.items():
        (folder / name).write_bytes(data)
    return artifacts.pack_directory(folder)


def text_folder_archive(folder: Path, **json_files: dict) -> bytes:
    """A Hugging Face folder's files, one of them crafted (weights need not be real: it is refused first)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"config.json": {"model_type": "bert"}, "tokenizer_config.json": {}, **json_files}
    for name, document in files.items():
        (folder / name).write_text(json.dumps(document))
    (folder / "model.safetensors").write_bytes(b"\0" * 16)
    (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n")
    return artifacts.pack_directory(folder)

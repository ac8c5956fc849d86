"""What an uploaded ONNX graph may contain before onnxruntime sees it.

ONNX is data: a graph of operators from published operator sets, run by onnxruntime's own
kernels. Two things could still reach outside it, and both are refused here: operators of a
custom domain (a custom-op library would be native code) and tensors whose bytes live in an
"external data" file, whose path the uploader chooses (an absolute path or one with `..` would
make the runtime read a file of the host, such as the portal's secrets, as weights).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from inference.ml.schema import InputError
from inference.ml.words import _

# The operator sets onnxruntime implements itself and that exporters (torch.onnx, skl2onnx) emit.
STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})


def _subgraphs(node: Any) -> Iterator[Any]:
    import onnx

    for attribute in node.attribute:
        if attribute.type == onnx.AttributeProto.GRAPH:
            yield attribute.g
        elif attribute.type == onnx.AttributeProto.GRAPHS:
            yield from attribute.graphs


def _graphs(graph: Any) -> Iterator[Any]:
    """The graph and every graph nested in its nodes (the bodies of If, Loop and Scan)."""
    yield graph
    for node in graph.node:
        for sub in _subgraphs(node):
            yield from _graphs(sub)


def _tensors(graph: Any) -> Iterator[Any]:
    """Every tensor stored in a graph: initializers, sparse initializers, constants in attributes."""
    import onnx

    for inner in _graphs(graph):
        yield from inner.initializer
        for sparse in inner.sparse_initializer:
            yield sparse.values
            yield sparse.indices
        for node in inner.node:
            for attribute in node.attribute:
                if attribute.type == onnx.AttributeProto.TENSOR:
                    yield attribute.t
                elif attribute.type == onnx.AttributeProto.TENSORS:
                    yield from attribute.tensors


def _external_location(tensor: Any, folder: Path) -> None:
    import onnx

    if tensor.data_location != onnx.TensorProto.EXTERNAL:
        return
    entries = {entry.key: entry.value for entry in tensor.external_data}
    location = entries.get("location", "")
    relative = PurePosixPath(location.replace("\\", "/"))
    if not location or relative.is_absolute() or ".." in relative.parts or ":" in location:
        raise InputError(
            _('tensor %(name)s keeps its data in a file outside the archive; external data must be a file inside the archive, named by a relative path') % {"name": f"{tensor.name!r}"}
        )
    target = (folder / relative).resolve()
    if not target.is_relative_to(folder.resolve()) or not target.is_file() or target.is_symlink():
        raise InputError(_('tensor %(name)s names an external data file that the archive does not hold') % {"name": f"{tensor.name!r}"})


def check_onnx(path: Path) -> Any:
    """Parses `path` without loading external data and refuses what could reach outside the archive.

    Returns the parsed model (its weights, external data excepted, are in memory already).
    """
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # protobuf raises DecodeError and others for bytes that are not ONNX
        raise InputError(_('model.onnx is not an ONNX model')) from None
    if model.functions:
        raise InputError(_('model.onnx defines functions of its own; export it with standard operators only (torch.onnx.export inlines them by default)'))
    domains = {entry.domain for entry in model.opset_import}
    unknown = sorted(domains - STANDARD_DOMAINS)
    if unknown:
        raise InputError(_('model.onnx uses operator sets outside the ONNX standard: %(value)s') % {"value": ', '.join(unknown)})
    for graph in _graphs(model.graph):
        for node in graph.node:
            if node.domain not in STANDARD_DOMAINS:
                raise InputError(
                    _('model.onnx uses the operator %(op_type)s of domain %(domain)s, which is not a standard ONNX operator') % {"op_type": f"{node.op_type!r}", "domain": f"{node.domain!r}"}
                )
    for tensor in _tensors(model.graph):
        _external_location(tensor, path.parent)
    try:
        onnx.checker.check_model(str(path))  # by path: external data is looked for beside it
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else "invalid graph"
        raise InputError(_('model.onnx is not a valid ONNX graph: %(first)s') % {"first": first}) from None
    return model

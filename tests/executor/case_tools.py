"""What both kernel case runners need: attributes and opsets as the importer reads them."""

from __future__ import annotations

import onnx

from npuc.ir.onnx_io import attr_from_proto


def node_attrs(node: onnx.NodeProto) -> dict:
    """The node's attributes as kernels receive them: the importer's own conversion."""
    return {a.name: attr_from_proto(a, {}, None, {}) for a in node.attribute}


def model_opset(model: onnx.ModelProto, domain: str = "") -> int:
    """The opset the model imports for ``domain`` (1 when it imports none)."""
    for imp in model.opset_import:
        if imp.domain == domain or (domain == "" and imp.domain == "ai.onnx"):
            return imp.version
    return 1

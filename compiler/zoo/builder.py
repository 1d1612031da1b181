"""Write ONNX graphs with the names and shapes that ``torch.onnx.export`` gives them.

The zoo's models stand in for real exports, so the passes that will meet real exports
are tested on graphs that look the same: node names are module scopes followed by the op
type (``/layer1/layer1.0/conv1/Conv``), node outputs are ``<node name>_output_<i>``,
small constants are ``Constant`` nodes in the scope that uses them, and parameters are
initializers named by their state-dict key (``layer1.0.conv1.weight``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
# The IR version torch writes for opset 17; newer ones would shut out older runtimes.
IR_VERSION = 8
PRODUCER = "npuc.zoo"
BATCH = "batch"
# External tensors start on page boundaries so that each maps into memory on its own.
EXTERNAL_ALIGNMENT = 4096

# Parameters above this many values may be kept beside the proto (``arrays``); onnx's
# checker sees the model without them (``onnx_checker.without_weights`` leaves out every
# initializer of more than 1024 values), so it never sees an initializer without data.
ARRAY_SIDE_LIMIT = 1024

Dim = int | str | None


class GraphBuilder:
    """Collects the nodes, parameters, inputs and outputs of one model.

    ``rng`` is the only source of randomness, so a builder seeded the same way and
    called in the same order gives byte-identical models.
    """

    def __init__(self, seed: int, batch: int | None = None, arrays: dict | None = None,
                 draws=None):
        self.rng = np.random.default_rng(seed)
        # a :class:`~npuc.compiler.zoo.draws.Draws`: every draw goes through it (replayed
        # from the cache instead of drawn, or recorded for it)
        self.draws = draws
        # When given, parameters of more than ARRAY_SIDE_LIMIT values are put here rather
        # than copied into the proto (see :meth:`param`).
        self.arrays = arrays
        # A symbolic batch dimension unless a fixed one is asked for.
        self.batch: int | str = BATCH if batch is None else int(batch)
        self._nodes: list[onnx.NodeProto] = []
        # Parameters go straight into the final proto: copying 100M+ floats between
        # messages (as make_graph and make_model do) would double the build time.
        self._model = onnx.ModelProto()
        self._inputs: list[onnx.ValueInfoProto] = []
        self._outputs: list[onnx.ValueInfoProto] = []
        self._scope: list[str] = []
        self._taken: dict[str, int] = {}
        self.external: str | None = None
        self._offset = 0

    # -- naming -------------------------------------------------------------------------
    @contextmanager
    def scope(self, *parts: str) -> Iterator[None]:
        """Name the nodes made inside after the module path ``parts`` (one entry per level)."""
        self._scope.extend(parts)
        try:
            yield
        finally:
            del self._scope[len(self._scope) - len(parts):]

    def _node_name(self, op_type: str) -> str:
        base = "/" + "/".join([*self._scope, op_type])
        count = self._taken.get(base, 0)
        self._taken[base] = count + 1
        # torch numbers repeats of a name in the same scope: Constant, Constant_1, ...
        return base if count == 0 else f"{base}_{count}"

    # -- graph contents -----------------------------------------------------------------
    def op(self, op_type: str, *inputs: str, outputs: int = 1, name: str | None = None,
           **attrs) -> str | list[str]:
        """Add a node and return its output name (a list when ``outputs`` > 1).

        ``name`` renames the (single) output, which is how graph outputs get their names.
        """
        node_name = self._node_name(op_type)
        outs = [f"{node_name}_output_{i}" for i in range(outputs)]
        if name is not None:
            outs = [name]
        self._nodes.append(helper.make_node(op_type, list(inputs), outs, name=node_name,
                                            **attrs))
        return outs[0] if outputs == 1 else outs

    def const(self, value, dtype=np.float32) -> str:
        """A ``Constant`` node holding ``value``, as torch emits for literals in code."""
        array = np.asarray(value, dtype=dtype)
        node_name = self._node_name("Constant")
        out = f"{node_name}_output_0"
        tensor = numpy_helper.from_array(array, name="")
        self._nodes.append(helper.make_node("Constant", [], [out], name=node_name,
                                            value=tensor))
        return out

    def param(self, name: str, array: np.ndarray) -> str:
        """Store ``array`` as the initializer ``name`` (a state-dict key) and return it.

        With an ``arrays`` dict (a compile that never needs the ONNX form's weights), a
        large parameter goes there and its initializer holds no data: copying it into
        the proto and out again cost more than drawing it."""
        array = np.ascontiguousarray(array)
        tensor = self._model.graph.initializer.add()
        tensor.name = name
        tensor.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
        tensor.dims.extend(array.shape)
        if self.arrays is not None and array.size > ARRAY_SIDE_LIMIT:
            self.arrays[name] = array
        else:
            tensor.raw_data = array.tobytes()
        return name

    def weight(self, name: str, shape: Sequence[int], make) -> str:
        """A float32 parameter of ``shape``: ``make()`` gives its values, unless the
        builder keeps weights as external zeros (:meth:`keep_weights_external`), in which
        case no value is made and the initializer points into the external data file."""
        if self.external is None:
            return self.param(name, make())
        tensor = self._model.graph.initializer.add()
        tensor.name = name
        tensor.data_type = TensorProto.FLOAT
        tensor.dims.extend(shape)
        length = 4 * int(np.prod(shape, dtype=np.int64))
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", self.external), ("offset", str(self._offset)),
                           ("length", str(length))):
            tensor.external_data.add(key=key, value=value)
        # page-aligned, so that each tensor maps on its own
        self._offset += -(-length // EXTERNAL_ALIGNMENT) * EXTERNAL_ALIGNMENT
        return name

    def keep_weights_external(self, location: str) -> None:
        """Make :meth:`weight` point into the file ``location`` (beside the model) rather
        than hold values: a model too big for memory, whose weights read as zeros."""
        self.external = location
        self._offset = 0

    def input(self, name: str, elem_type: int, shape: Sequence[Dim]) -> str:
        """Declare a graph input; ``None`` in ``shape`` is the batch dimension."""
        self._inputs.append(helper.make_tensor_value_info(name, elem_type,
                                                          self._dims(shape)))
        return name

    def output(self, name: str, elem_type: int, shape: Sequence[Dim]) -> str:
        """Declare a graph output; ``None`` in ``shape`` is the batch dimension."""
        self._outputs.append(helper.make_tensor_value_info(name, elem_type,
                                                           self._dims(shape)))
        return name

    def _dims(self, shape: Sequence[Dim]) -> list[int | str]:
        return [self.batch if d is None else d for d in shape]

    # -- weights --------------------------------------------------------------------------
    def normal(self, shape: Sequence[int], std: float, mean: float = 0.0) -> np.ndarray:
        """float32 samples of N(mean, std²); drawn in float32 so big models build fast."""
        def draw():
            array = self.rng.standard_normal(tuple(shape), dtype=np.float32)
            array *= np.float32(std)
            if mean:
                array += np.float32(mean)
            return array
        return self._draw(["normal", shape, std, mean], draw)

    def uniform(self, shape: Sequence[int], low: float, high: float) -> np.ndarray:
        """float32 samples of U(low, high)."""
        return self._draw(["uniform", shape, low, high],
                          lambda: self.rng.uniform(low, high, tuple(shape)).astype(np.float32))

    def _draw(self, request: list, draw) -> np.ndarray:
        if self.draws is None:
            return draw()
        method, shape, *parameters = request
        return self.draws.take([method, [int(n) for n in shape], *map(float, parameters)],
                               draw)

    def kaiming(self, shape: Sequence[int], gain: float = 2.0) -> np.ndarray:
        """He-normal conv or linear weights, fan-in mode: std = sqrt(gain / fan_in).

        Fan-in (not torchvision's fan-out) keeps the activations' scale from layer to
        layer without training, which matters for depthwise convs whose fan-out is 9·C
        but fan-in only 9. ``gain`` 2 suits a conv followed by ReLU, 1 a linear one.
        """
        fan_in = int(np.prod(shape[1:]))
        return self.normal(shape, np.sqrt(gain / fan_in))

    # -- result ---------------------------------------------------------------------------
    def model(self, graph_name: str, doc: str = "", opset: int = OPSET) -> onnx.ModelProto:
        """The finished model: opset 17 unless asked, producer ``npuc.zoo``."""
        model = self._model
        opset_id = helper.make_opsetid("", opset)
        model.ir_version = IR_VERSION if opset <= OPSET else \
            helper.find_min_ir_version_for([opset_id])
        model.producer_name = PRODUCER
        model.opset_import.append(opset_id)
        graph = model.graph
        graph.name = graph_name
        graph.doc_string = doc
        graph.node.extend(self._nodes)
        graph.input.extend(self._inputs)
        graph.output.extend(self._outputs)
        return model


def parameter_count(model: onnx.ModelProto) -> int:
    """Number of trainable values: float initializers except BatchNorm running statistics."""
    total = 0
    for tensor in model.graph.initializer:
        if tensor.data_type != TensorProto.FLOAT or "running_" in tensor.name:
            continue
        total += int(np.prod(tensor.dims, dtype=np.int64))
    return total

"""The verifier: every invariant of the IR, checked, with the offending node named.

- SSA: every value is defined once, by a graph input, a constant or a node output;
- order: every node reads only values defined before it (so the graph has no cycle);
- use lists agree with the inputs that reference each value;
- each node matches its operator's schema (input and output counts, known and required
  attributes, attribute kinds) when the operator has one.
"""

from __future__ import annotations

import numpy as np

from .errors import VerifyError
from .graph import Graph, Node, subgraphs
from .schema import get_schema

_KIND_CHECKS = {
    "int": lambda a: isinstance(a, (int, np.integer)) and not isinstance(a, bool),
    "float": lambda a: isinstance(a, (float, int, np.floating, np.integer)),
    "string": lambda a: isinstance(a, str),
    "ints": lambda a: isinstance(a, (list, tuple)) and all(
        isinstance(x, (int, np.integer)) for x in a),
    "floats": lambda a: isinstance(a, (list, tuple)) and all(
        isinstance(x, (float, int, np.floating, np.integer)) for x in a),
    "strings": lambda a: isinstance(a, (list, tuple)) and all(isinstance(x, str) for x in a),
    "tensor": lambda a: isinstance(a, np.ndarray),
    "graph": lambda a: isinstance(a, Graph),
}


def verify(graph: Graph, check_schemas: bool = True) -> None:
    """Raise VerifyError at the first broken invariant; return None when all hold."""
    _verify(graph, set(), check_schemas)


def _verify(graph: Graph, outer: set[int], check_schemas: bool) -> None:
    defined: set[int] = set(outer)
    names: set[str] = set()

    def define(v, what):
        if id(v) in defined and id(v) not in outer:
            raise VerifyError(f"value %{v.name} ({what}) is defined twice")
        if v.name in names:
            raise VerifyError(f"two values are named %{v.name} ({what})")
        defined.add(id(v))
        names.add(v.name)

    for v in graph.inputs:
        define(v, "graph input")
        if v.producer is not None:
            raise VerifyError(f"graph input %{v.name} has a producer")
    for v in graph.constants.values():
        define(v, "constant")
        if v.const is None:
            raise VerifyError(f"constant %{v.name} has no data")
    count = 0
    prev = None
    for node in graph.nodes:
        count += 1
        if node.prev is not prev or node.graph is not graph:
            raise VerifyError(f"{node.describe()} is not linked into the graph correctly")
        prev = node
        for i, v in enumerate(node.inputs):
            if v is None:
                continue
            if id(v) not in defined:
                where = "defined later (a cycle or bad order)" if v.producer is not None \
                    else "not defined in this graph"
                raise VerifyError(f"{node.describe()} reads %{v.name}, which is {where}")
            if (node, i) not in v.uses:
                raise VerifyError(f"{node.describe()} reads %{v.name} but is not in its uses")
        for sub in subgraphs(node):
            _verify(sub, defined, check_schemas)
        for k, v in enumerate(node.outputs):
            if v is None:
                continue
            if v.producer is not node or v.index != k:
                raise VerifyError(f"{node.describe()}: output %{v.name} does not point back "
                                  "to its producer")
            define(v, f"output of {node.describe()}")
        if check_schemas:
            check_node(node)
    if count != len(graph):
        raise VerifyError(f"graph '{graph.name}' counts {len(graph)} nodes but links {count}")
    for v in graph.values():
        for user, i in v.uses:
            if user.input(i) is not v:
                raise VerifyError(f"%{v.name} lists {user.describe()} as a user, which does "
                                  "not read it")
    for v in graph.outputs:
        if id(v) not in defined:
            raise VerifyError(f"graph output %{v.name} is not defined")


def check_node(node: Node) -> None:
    """Check a node against its operator's schema (a node without a schema passes)."""
    opset = node.graph.opset_of(node.domain) if node.graph is not None else None
    schema = get_schema(node.op_type, node.domain, opset)
    if schema is None:
        return
    n_in = len(node.inputs)
    while n_in and node.inputs[n_in - 1] is None:
        n_in -= 1
    if not schema.min_inputs <= n_in <= schema.max_inputs:
        raise VerifyError(f"{node.describe()} has {n_in} inputs; {node.op_type} takes "
                          f"{_range(schema.min_inputs, schema.max_inputs)}")
    if not schema.min_outputs <= len(node.outputs) <= schema.max_outputs:
        raise VerifyError(f"{node.describe()} has {len(node.outputs)} outputs; {node.op_type} "
                          f"gives {_range(schema.min_outputs, schema.max_outputs)}")
    for name, value in node.attrs.items():
        spec = schema.attrs.get(name)
        if spec is None:
            raise VerifyError(f"{node.describe()} has an unknown attribute '{name}'")
        check = _KIND_CHECKS.get(spec.type)
        if check is not None and not check(value):
            raise VerifyError(f"{node.describe()}: attribute '{name}' should be "
                              f"{spec.type}, got {value!r:.40}")
    for name, spec in schema.attrs.items():
        if spec.required and name not in node.attrs:
            raise VerifyError(f"{node.describe()} lacks the required attribute '{name}'")


def _range(lo: int, hi: int) -> str:
    if lo == hi:
        return str(lo)
    if hi >= 2**31 - 1:
        return f"at least {lo}"
    return f"{lo} to {hi}"

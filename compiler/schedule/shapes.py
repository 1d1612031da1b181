"""Giving a model's symbolic dimensions their values: ``--shape``, the batch, the inputs.

A compiled program has static shapes, so every symbolic dimension of a model's inputs
needs a value. It comes, first to last, from

- ``--shape NAME=1x3x736x736``: the whole shape of input ``NAME``;
- ``--shape SYMBOL=128``: every dimension named ``SYMBOL``;
- the arrays given as inputs (verify's ``--inputs``, the first calibration sample);
- the batch (``--batch``, default 1) for axis 0 of an input;

and a dimension left without a value is an error that names it, never a silent 1.
Anonymous dimensions (``?``, ``-1``, no name) can only be set through their input's shape.

Several values for one name (``--shape seq=128,512,2048``) ask for several shape sets,
one program each (buckets): :func:`parse_shapes` returns one :class:`ShapeSet` for every
combination of the values given.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from npuc.ir.errors import NpucError
from npuc.ir.onnx_types import dim_from_proto

MAX_SETS = 64  # programs one compile may make: more is almost surely a typo


@dataclass(frozen=True)
class ShapeSet:
    """One choice of shapes: whole input shapes and symbol values, by name."""

    values: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def as_dict(self) -> dict[str, tuple[int, ...]]:
        return dict(self.values)

    def label(self) -> str:
        """``seq=128,x=1x3x48x320``: how the manifest and messages name this set."""
        return ",".join(f"{k}={'x'.join(map(str, v))}" for k, v in self.values)


def parse_shapes(specs) -> list[ShapeSet]:
    """The shape sets ``--shape`` flags ask for (one empty set when there are none).

    Each spec is ``NAME=DIMS[,DIMS...]`` where DIMS is ``N`` or ``N1xN2x...``; a name given
    twice is an error. Several DIMS for a name make one set per combination."""
    if not specs:
        return [ShapeSet()]
    if isinstance(specs, ShapeSet):
        return [specs]
    choices: dict[str, list[tuple[int, ...]]] = {}
    for spec in ([specs] if isinstance(specs, str) else specs):
        name, sep, rest = spec.partition("=")
        name = name.strip()
        if not sep or not name or not rest.strip():
            raise NpucError(f"--shape {spec}: write NAME=DIMS, e.g. --shape x=1x3x224x224 "
                            "or --shape seq=128")
        if name in choices:
            raise NpucError(f"--shape {spec}: '{name}' is given twice; list several values "
                            f"in one flag instead ({name}=A,B)")
        choices[name] = [_dims(spec, part) for part in rest.split(",")]
    count = 1
    for values in choices.values():
        count *= len(values)
    if count > MAX_SETS:
        raise NpucError(f"--shape asks for {count} shape sets; at most {MAX_SETS} programs "
                        "are compiled at once")
    names = list(choices)
    return [ShapeSet(tuple(zip(names, combo)))
            for combo in itertools.product(*(choices[n] for n in names))]


def _dims(spec: str, text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.strip().lower().split("x"))
    except ValueError:
        dims = ()
    if not dims or any(d < 0 for d in dims):
        raise NpucError(f"--shape {spec}: '{text}' is not a shape; write sizes joined by "
                        "'x' (1x3x224x224) or one size (128)")
    return dims


def resolve(signature, shapes: ShapeSet | None = None, batch: int | None = 1, given=None,
            where: str = "the model", strict: bool = True):
    """Concrete shapes for a model's inputs; ``(shapes by input name, notes)``.

    ``signature`` lists ``(input name, dims)`` with dims an int, a symbol name or None;
    ``given`` maps input names to the shapes of arrays the user gave. Raises a one-line
    :class:`NpucError` naming every dimension left without a value and the flag that
    sets it; unless not ``strict``, when such dimensions stay as they are (and a ``batch``
    of None leaves axis 0 alone): a model specialised only where asked."""
    signature = [(n, list(d)) for n, d in signature if d is not None]
    wanted = shapes.as_dict() if shapes is not None else {}
    input_names = {n for n, _ in signature}
    symbol_names = {d for _, dims in signature for d in dims if isinstance(d, str)}
    for name in wanted:
        if name not in input_names and name not in symbol_names:
            raise NpucError(f"--shape {name}=...: {where} has no input or named dimension "
                            f"'{name}' (inputs: {', '.join(sorted(input_names)) or 'none'}; "
                            f"named dimensions: {', '.join(sorted(symbol_names)) or 'none'})")
    symbols: dict[str, tuple[int, str]] = {}
    for name, size in wanted.items():
        if name not in input_names:
            if len(size) != 1:
                raise NpucError(f"--shape {name}={'x'.join(map(str, size))}: '{name}' is a "
                                "dimension, give it one size")
            symbols[name] = (size[0], "--shape")
    out, notes = {}, []
    whole = {n: (tuple(wanted[n]), "--shape") for n in input_names if n in wanted}
    for n, s in (given or {}).items():
        if n in input_names and n not in whole:
            whole[n] = (tuple(s), "the inputs given")
    for name, dims in signature:
        if name in whole:
            out[name] = _take_whole(name, dims, *whole[name], symbols, notes)
    for name, dims in signature:  # the batch: axis 0, unless set another way
        if name not in out and dims and not isinstance(dims[0], int) and batch is not None:
            sym = dims[0]
            if sym is None or sym not in symbols:
                dims[0] = batch
                if sym is not None:
                    symbols[sym] = (batch, "the batch")
                notes.append(f"input '{name}' axis 0 ('{sym or '?'}') fixed to {batch}, the "
                             "batch")
    missing = []
    for name, dims in signature:
        if name in out:
            continue
        for axis, d in enumerate(dims):
            if isinstance(d, str) and d in symbols:
                dims[axis] = symbols[d][0]
                notes.append(f"input '{name}' axis {axis} ('{d}') fixed to {dims[axis]} "
                             f"({symbols[d][1]})")
            elif not isinstance(d, int):
                missing.append((name, axis, d))
        out[name] = tuple(dims)
    if missing and strict:
        raise NpucError(_missing_message(where, signature, missing, out))
    return out, notes


def _take_whole(name, dims, size, source, symbols, notes) -> tuple[int, ...]:
    if len(size) != len(dims):
        raise NpucError(f"input '{name}' has rank {len(dims)} ({_show(dims)}); {source} "
                        f"gives it shape {list(size)}")
    for axis, (d, s) in enumerate(zip(dims, size)):
        if isinstance(d, int) and d != s:
            raise NpucError(f"input '{name}' axis {axis} is {d} in the model ({_show(dims)}); "
                            f"{source} gives {s}")
        if isinstance(d, str):
            seen = symbols.setdefault(d, (s, f"input '{name}' axis {axis}"))
            if seen[0] != s:
                raise NpucError(f"input '{name}' axis {axis} ('{d}') is {s} from {source} "
                                f"but '{d}' is {seen[0]} from {seen[1]}")
    notes.append(f"input '{name}' shape {_show(dims)} fixed to {list(size)} ({source})")
    return tuple(size)


def _show(dims) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in dims) + "]"


def _missing_message(where, signature, missing, partial) -> str:
    listed = "; ".join(f"input '{n}' axis {a} ({'anonymous' if d is None else repr(d)})"
                       for n, a, d in missing)
    fixes = []
    for name, _ in signature:
        if any(m[0] == name for m in missing):
            shape = "x".join(str(d) if isinstance(d, int) else f"<{i}>"
                             for i, d in enumerate(partial[name]))
            fixes.append(f"--shape {name}={shape}")
    named = sorted({d for _, _, d in missing if d is not None})
    fixes += [f"--shape {s}=<size>" for s in named[:2]]
    return (f"{where}: {len(missing)} symbolic dimension{'s' * (len(missing) > 1)} without "
            f"a value ({listed}); npuc does not guess them: set them with "
            f"{' or '.join(fixes)} (<i> is the size of axis i)")


def proto_signature(proto) -> list[tuple[str, list]]:
    """``(name, dims)`` of an ONNX model's inputs that are not initializers."""
    inits = {t.name for t in proto.graph.initializer}
    out = []
    for vi in proto.graph.input:
        if vi.name in inits or not vi.type.HasField("tensor_type"):
            continue
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            out.append((vi.name, None))
            continue
        out.append((vi.name, [dim_from_proto(d) for d in tt.shape.dim]))
    return out


def set_proto_shapes(proto, shapes: dict[str, tuple[int, ...]]) -> None:
    """Write concrete input shapes into ``proto``; drop the shapes recorded for the rest.

    Shapes the exporter recorded inside the graph were computed for symbolic inputs
    ('batch', 'unk__3'): dropped, so that shape inference computes them again."""
    for vi in proto.graph.input:
        if vi.name in shapes:
            dims = vi.type.tensor_type.shape.dim
            for d, size in zip(dims, shapes[vi.name]):
                d.Clear()
                d.dim_value = size
    del proto.graph.value_info[:]
    for vi in proto.graph.output:
        for d in vi.type.tensor_type.shape.dim:
            if not d.HasField("dim_value") or d.dim_value < 0:
                d.Clear()

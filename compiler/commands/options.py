"""The command-line options several ``npuc`` commands share, and how they are read.

Like every module of :mod:`npuc.compiler.commands`, its top imports only the standard
library, so that ``npuc --help`` answers at once.
"""

from __future__ import annotations

QUANTIZE = ("auto", "int8", "fp8", "bf16", "fp16", "none")


SHAPE_HELP = ("a symbolic dimension's value: NAME=1x3x736x736 sets input NAME's shape, "
              "SYMBOL=128 every dimension named SYMBOL; repeatable. Several values "
              "(seq=128,512) compile one program per shape set")


def add_shape_option(p) -> None:
    """``--shape NAME=DIMS``, for every command that fixes a model's shapes."""
    p.add_argument("--shape", action="append", metavar="NAME=DIMS", help=SHAPE_HELP)


def specialise_from_args(graph, args):
    """``graph`` with the input shapes ``--shape`` gives set (one shape set only)."""
    if not getattr(args, "shape", None):
        return graph
    from npuc.compiler.schedule.prepare import specialise
    from npuc.compiler.schedule.shapes import parse_shapes
    from npuc.ir.errors import NpucError

    sets = parse_shapes(args.shape)
    if len(sets) > 1:
        raise NpucError(f"--shape asks for {len(sets)} shape sets; this command takes one")
    specialise(graph, sets[0])
    return graph


def add_common(p) -> None:
    """The options compile, verify and explain share."""
    p.add_argument("model", metavar="MODEL", help="an .onnx file, an .npuir file or zoo:NAME")
    p.add_argument("--target", "-t", required=True, metavar="T",
                   help="a chip name (npuc targets lists them) or a chip .toml file")
    p.add_argument("-O", dest="opt_level", type=int, default=2, choices=[0, 1, 2, 3],
                   metavar="N", help="optimization level 0-3 (default 2)")
    p.add_argument("--quantize", default="auto", choices=QUANTIZE,
                   help="precision: the chip's preferred one (auto, the default), a given one, "
                        "or none (float32)")
    p.add_argument("--calibration", metavar="PATH|random:N",
                   help="calibration inputs: an .npz file, a folder of them, or random:N")
    p.add_argument("--schedule-in", metavar="JSON",
                   help="a schedule file whose tiles and CPU placements to obey")
    p.add_argument("--batch", type=int, default=1, metavar="N",
                   help="batch size the symbolic batch dimension is fixed to (default 1)")
    add_shape_option(p)


def add_fanout(p) -> None:
    """``--workers N`` and ``--ray [ADDRESS]``: where calibration (and other fanned-out
    work) runs."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, default=1, metavar="N",
                   help="run calibration (and verify's samples) on N local worker processes "
                        "(same result)")
    g.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on a Ray cluster (pip install 'npuc[ray]'): ADDRESS, or 'auto', "
                        "or a local one when none is given (write --ray=ADDRESS, or put "
                        "--ray after MODEL)")


def fanout_of(args):
    """The :class:`Fanout` the options ask for, or None for one process."""
    from npuc.compiler.parallel import Fanout

    f = Fanout(workers=args.workers, ray=args.ray)
    return f.start() if f.parallel else None


def add_chips(p) -> None:
    """``--chips N``: one program per chip (shared by compile and verify)."""
    p.add_argument("--chips", type=int, default=1, metavar="N",
                   help="split the model over N chips, one program each, exchanging "
                        "tensors over the chip's link (default 1)")
    p.add_argument("--parallel", default="auto", choices=("auto", "tensor", "pipeline"),
                   help="with --chips: weights split by columns with all-gathers (tensor), "
                        "or consecutive stages with send/recv (pipeline); auto: tensor for "
                        "decoders, pipeline otherwise")


def add_accuracy_options(p) -> None:
    """``--accuracy`` and ``--preprocess``, shared with compile and verify."""
    p.add_argument("--accuracy", default="auto", metavar="REQ",
                   help="what the quantized model must keep, judged on the calibration "
                        "samples: e.g. 'answer<=1%%', 'argmax<=1%%', 'ctc<=0%%', 'sqnr>=30', "
                        "'cosine>=0.999', comma-separated; layers move to wider formats "
                        "until it holds. 'off' turns it off; default: answer<=1%% when real "
                        "calibration data is given")
    p.add_argument("--preprocess", metavar="SPEC",
                   help="how calibration images become inputs: resize=HxW,mean=a:b:c,"
                        "std=a:b:c,scale=255,layout=nchw|nhwc,color=rgb|bgr|gray")


def parse_layers(items) -> dict:
    """``["conv1=bf16", ...]`` -> ``{"conv1": "bf16"}``."""
    from npuc.ir.errors import NpucError

    out = {}
    for item in items:
        node, sep, spec = item.rpartition("=")
        if not sep or not node or not spec:
            raise NpucError(f"--layer {item}: write NODE=SCHEME, e.g. fc1=w4a16-g128")
        out[node] = spec
    return out

"""The ``npuc`` command.

Each subcommand is a module in ``npuc.compiler.commands`` with ``add_parser(subparsers)``
and ``run(args) -> int``. Module tops import only the standard library, so that
``npuc --help`` answers at once; heavy imports happen inside ``run``.

Mistakes in the user's input are :class:`NpucError`: printed as one line, exit code 2.
``-v`` shows the traceback as well.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys

COMMANDS = ["convert", "run", "opt", "quantize", "compile", "verify", "explain", "report",
            "estimate", "compare", "targets", "matrix"]

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    from npuc import __version__

    parser = argparse.ArgumentParser(
        prog="npuc",
        description="An NPU compiler and graph optimizer for FuriosaAI Warboy and RNGD, "
                    "Rebellions ATOM, Sapeon X220 and X330. A MODEL is an .onnx file, an "
                    ".npuir text IR file, or zoo:NAME for a built-in model.")
    parser.add_argument("--version", action="version", version=f"npuc {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show details (and tracebacks) of errors")
    _add_limits(parser, None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"npuc.compiler.commands.{name}")
        p = module.add_parser(sub)
        p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                       help="show details (and tracebacks) of errors")
        _add_limits(p, argparse.SUPPRESS)
        p.set_defaults(_run=module.run)
    return parser


def _add_limits(p, default) -> None:
    p.add_argument("--max-tensor-bytes", metavar="N", default=default,
                   help="refuse any tensor larger than N bytes (suffix K, M, G; default 4G, "
                        "or NPUC_MAX_TENSOR_BYTES)")
    p.add_argument("--max-loop-iterations", metavar="N", default=default,
                   help="refuse a Loop running more than N iterations (default 10000, or "
                        "NPUC_MAX_LOOP_ITERATIONS)")


def _apply_limits(args) -> None:
    from npuc.ir.limits import parse_size, reset_limits, set_limits

    reset_limits()

    tensor, loop = getattr(args, "max_tensor_bytes", None), getattr(args, "max_loop_iterations",
                                                                    None)
    set_limits(None if tensor is None else parse_size(tensor, "--max-tensor-bytes"),
               None if loop is None else parse_size(loop, "--max-loop-iterations"))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return EXIT_USAGE
    from npuc.compiler.allocator import reuse_freed_memory
    from npuc.ir.errors import NpucError

    reuse_freed_memory()
    try:
        _apply_limits(args)
        return int(args._run(args) or 0)
    except NpucError as e:
        if args.verbose:
            import traceback

            traceback.print_exc()
        print(f"npuc: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("npuc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            return _internal(args, e)
        # a full disk is the machine's limit, not a bug (outputs are written whole or not
        # at all: ir/safeio.py); temporary files go to TMPDIR
        where = f" writing {e.filename}" if e.filename else ""
        print(f"npuc: error: no space left on device{where} (free some space, or point "
              "TMPDIR at a larger disk)", file=sys.stderr)
        return EXIT_USAGE
    except MemoryError:  # the machine's limit, not a bug: say which limit to lower
        print("npuc: error: out of memory (this machine or its memory limit is too small for "
              "this model; lower --max-tensor-bytes to be stopped earlier)", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:  # a bug in npuc, not the user's mistake
        return _internal(args, e)


def _internal(args, e: Exception) -> int:
    if args.verbose:
        import traceback

        traceback.print_exc()
    print(f"npuc: internal error: {type(e).__name__}: {e} (this is a bug in npuc; "
          "run again with -v for the traceback and report it)", file=sys.stderr)
    return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())

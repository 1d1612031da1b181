"""A chip vendor's lowering hooks, applied to the commands lowering made.

A target built by a vendor package may carry hooks (:meth:`npuc.targets.Target.with_lowering`):
``{op: hook}``. Each ``compute`` command of a node of that op is given to
``hook(node, command)``, which returns the commands that take its place: the same command
on another engine or with attributes the chip's runtime reads, a barrier before it,
several commands. What it returns must be a program's commands (see :mod:`npuc.compiler.lower`);
the simulator runs them like any others, so ``npuc verify`` checks a hook too.
"""

from __future__ import annotations

from npuc.ir.errors import NpucError
from npuc.targets.placement import op_key

COMMAND_OPS = ("dma_load", "dma_store", "sync", "compute", "cpu")


def apply_hooks(target, commands: list[dict], nodes: dict) -> list[dict]:
    """``commands`` with each ``compute`` command of a hooked op replaced by what the
    target's hook returns for it."""
    if not target.lowering:
        return commands
    out: list[dict] = []
    for cmd in commands:
        node = nodes.get(cmd.get("node")) if cmd["op"] == "compute" else None
        hook = target.lowering.get(op_key(node)) if node is not None else None
        if hook is None:
            out.append(cmd)
            continue
        out += _checked(_call(hook, node, cmd, target), node, target)
    return out


def _call(hook, node, cmd: dict, target) -> object:
    try:
        return hook(node, dict(cmd))
    except NpucError:
        raise
    except Exception as exc:  # the vendor's bug: say whose it is
        raise NpucError(f"{target.name}'s lowering hook for {op_key(node)} failed on "
                        f"{node.describe()}: {type(exc).__name__}: {exc}") from exc


def _checked(result, node, target) -> list[dict]:
    where = f"{target.name}'s lowering hook for {op_key(node)} ({node.describe()})"
    if not isinstance(result, (list, tuple)):
        raise NpucError(f"{where} returned a {type(result).__name__}; it must return a list "
                        "of commands")
    for cmd in result:
        if not isinstance(cmd, dict) or cmd.get("op") not in COMMAND_OPS:
            raise NpucError(f"{where} returned {cmd!r:.80}, which is not a command (a dict "
                            f"whose op is one of {', '.join(COMMAND_OPS)})")
    return list(result)

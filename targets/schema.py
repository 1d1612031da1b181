"""The chip file schema (version 1), as data.

Every table and key a chip file may contain is declared here once, with its type and the
sentence that documents it. The strict validator (:mod:`npuc.targets.validate`) walks a
file against :data:`SCHEMA`, and :func:`reference_markdown` writes the schema reference of
``docs/targets.md`` from the same declarations, so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .constraints import CHECKS
from .precision import PRECISIONS

SCHEMA_VERSION = 1

KIND_NAMES = {
    "str": "a string", "int": "an integer", "number": "a number", "bool": "true or false",
    "str_list": "a list of strings", "int_list": "a list of integers",
    "scalar": "a string, number or boolean",
    "scalar_list": "a list of strings, numbers or booleans",
    "value": "a string, number, boolean or a list of them",
}

_PLURAL = {"str": "strings", "number": "numbers", "int": "integers", "str_list": "lists of strings"}


@dataclass(frozen=True)
class Key:
    """A key with a value of ``kind`` (one of :data:`KIND_NAMES`)."""

    kind: str
    doc: str
    required: bool = True
    choices: tuple = ()
    length: int | None = None  # exact length, for lists
    positive: bool = False     # a number (or every number of a list) must be above 0


@dataclass(frozen=True)
class Table:
    """A table whose keys are fixed by the schema."""

    doc: str
    keys: dict = field(default_factory=dict)
    required: bool = True


@dataclass(frozen=True)
class Map:
    """A table whose keys the file chooses; every value is of kind ``value``."""

    doc: str
    value: str
    key_choices: tuple = ()
    required: bool = True
    positive: bool = False


@dataclass(frozen=True)
class Rows:
    """An array of tables (``[[name]]``), each with the fixed ``keys``."""

    doc: str
    keys: dict = field(default_factory=dict)
    required: bool = False


_LIMIT_KEYS = {
    "op": Key("str", "The operator the limit applies to; it must be in `supported`."),
    "message": Key("str", "The sentence shown to the user when a node breaks the limit and "
                          "is placed on the CPU, e.g. `Conv group must be at most 128`."),
    "attr": Key("str", "The attribute the check reads.", required=False),
    "default": Key("value", "The attribute's value when a node does not set it (the ONNX "
                            "default is used when this is absent).", required=False),
    "max": Key("number", "", required=False),
    "min": Key("number", "", required=False),
    "equals": Key("scalar", "", required=False),
    "one_of": Key("scalar_list", "", required=False),
    "axis_in": Key("int_list", "", required=False),
    "input_rank_max": Key("int", "", required=False),
    "batch_max": Key("int", "", required=False),
    "after": Key("str_list", "", required=False),
    "input_precisions": Key("str_list", "", required=False, choices=PRECISIONS),
}
for _key, _check in CHECKS.items():  # a check key's documentation is its check's docstring
    _LIMIT_KEYS[_key] = Key(_LIMIT_KEYS[_key].kind, _check.doc, False, _LIMIT_KEYS[_key].choices)

SCHEMA = Table("A chip.", {
    "schema_version": Key("int", "The version of this schema: 1.", choices=(SCHEMA_VERSION,)),
    "name": Key("str", "The name used with `--target`."),
    "description": Key("str", "One line saying what the chip is."),
    "kind": Key("str", "`npu` for an accelerator, `cpu` for the host that runs what the "
                       "accelerator cannot (default `npu`).", required=False,
                choices=("npu", "cpu")),
    "estimated": Key("str_list", "Dotted paths of the values that are estimates rather than "
                                 "published figures (a table's path covers all its keys).",
                     required=False),
    "assumptions": Map("For each estimated path (or a table holding it), the assumption "
                       "behind the estimate.", "str", required=False),
    "compute": Table("The compute engines.", {
        "units": Key("int", "How many copies of the MAC array work in parallel (slices, "
                            "engines, cores); they split the output positions.", positive=True),
        "mac_array": Key("int_list", "The MAC array of one unit, `[rows, cols]`: rows span "
                                     "output channels, cols span the reduction.", length=2, positive=True),
        "clock_hz": Key("number", "The clock frequency in Hz.", positive=True),
        "vector_elements_per_cycle": Key("number", "Elements per cycle of elementwise and "
                                                   "reduction work, all units together.", positive=True),
        "peak_ops_per_s": Map("Peak operations per second (a MAC is 2) by precision.",
                              "number", key_choices=PRECISIONS, positive=True),
    }),
    "memory": Table("On-chip and off-chip memory.", {
        "sram_bytes": Key("int", "On-chip SRAM, all of it, in bytes.", positive=True),
        "sram_banks": Key("int", "How many SRAM banks (or slices) the SRAM is split into.", positive=True),
        "dram_bytes": Key("int", "Off-chip DRAM in bytes.", positive=True),
        "dram_bandwidth_bytes_per_s": Key("number", "DRAM bandwidth in bytes per second.", positive=True),
        "dma_alignment_bytes": Key("int", "Alignment in bytes of every DMA transfer.", positive=True),
        "host_bandwidth_bytes_per_s": Key("number", "Bandwidth of the link to the host "
                                                    "(PCIe), one direction, in bytes per "
                                                    "second; inputs, outputs and tensors "
                                                    "passed to host CPU groups cross it.",
                                          required=False, positive=True),
    }),
    "quantization": Table("The precisions the chip computes in and how to quantize for it.", {
        "dtypes": Key("str_list", "Precisions the chip computes in.", choices=PRECISIONS),
        "preferred": Key("str", "The precision to compile to by default.", choices=PRECISIONS),
        "weights": Key("str", "Weight scales: `per-channel` or `per-tensor`.",
                       choices=("per-channel", "per-tensor")),
        "weights_symmetric": Key("bool", "Whether weight zero points are 0."),
        "weights_narrow_range": Key("bool", "Whether int8 weights use [-127, 127] (default "
                                            "false: [-128, 127]).", required=False),
        "activations": Key("str", "Activation zero points: `symmetric` (0) or `asymmetric`.",
                           choices=("symmetric", "asymmetric")),
        "calibration": Key("str_list", "Precisions that need calibration data.",
                           choices=PRECISIONS),
    }),
    "operators": Table("The operators the chip runs and their limits.", {
        "supported": Key("str_list", "Operators the chip runs (`domain::Op` outside the ONNX "
                                     "domain; `*` for all of them). The rest go to the CPU."),
        "limit": Rows("A limit on a supported operator. Exactly one check key (`max`, "
                      "`min`, `equals`, `one_of`, `axis_in`, `input_rank_max`, "
                      "`batch_max`, `after`, `input_precisions`) says what is tested.",
                      _LIMIT_KEYS),
        "fused": Rows("A fused operator made by the optimizer, placed like its base.", {
            "op": Key("str", "The fused operator, e.g. `npuc::FusedConv`."),
            "base": Key("str", "The supported operator it extends; its limits apply."),
            "epilogue_attr": Key("str", "The attribute naming the ops fused after the base; "
                                        "each must be in `fusion.epilogues` for the base.",
                                 required=False),
        }),
    }),
    "fusion": Table("What the chip runs as one kernel.", {
        "epilogues": Map("For each anchor operator, the operators that may be fused after "
                         "it.", "str_list"),
        "elementwise_chains": Key("bool", "Whether runs of elementwise operators fuse."),
        "max_epilogues": Key("int", "The most operators fused after one anchor (default 4).",
                             required=False),
    }),
    "link": Table("The chip-to-chip link that collectives of a model split over several "
                  "chips travel on (absent: the chip is used alone).", {
        "kind": Key("str", "What the link is, e.g. `PCIe Gen5 x16 peer-to-peer`."),
        "bandwidth_bytes_per_s": Key("number", "Bytes per second one chip sends to the "
                                               "next, in one direction."),
        "latency_s": Key("number", "Seconds from one chip's send to the next chip's receive "
                                   "of a small message."),
        "topology": Key("str", "How chips are connected: `ring` (each to the next, as on a "
                               "PCIe switch with peer-to-peer) or `host` (through host "
                               "memory: every transfer crosses the link twice).",
                        choices=("ring", "host")),
    }, required=False),
    "power": Table("The board's power, for energy estimates (absent: energy unknown).", {
        "board_watts": Key("number", "The board's power at full load (its TDP), in watts."),
    }, required=False),
    "layout": Table("The data layout the chip prefers.", {
        "preferred": Key("str", "The activation layout.", choices=("NCHW", "NHWC", "native")),
        "channel_alignment": Key("int", "Channels are padded to a multiple of this.", positive=True),
        "conversion_last_axis_multiple": Key("int", "Layout conversions run on the chip only "
                                                    "when the last axis is a multiple of this "
                                                    "(default 1).", required=False, positive=True),
    }),
})


def iter_keys(spec=SCHEMA, prefix: str = ""):
    """Yield ``(dotted path, spec)`` for every table and key of the schema."""
    for name, sub in spec.keys.items():
        path = f"{prefix}.{name}" if prefix else name
        yield path, sub
        if isinstance(sub, (Table, Rows)):
            yield from iter_keys(sub, path)


def reference_markdown() -> str:
    """The schema reference section of ``docs/targets.md``: one row per key."""
    rows = ["| key | type | required | meaning |", "|---|---|---|---|"]
    for path, spec in iter_keys():
        if isinstance(spec, Table):
            kind = "table"
        elif isinstance(spec, Rows):
            kind = "array of tables"
        elif isinstance(spec, Map):
            kind = "table of " + _PLURAL[spec.value]
        else:
            kind = KIND_NAMES[spec.kind]
        doc = spec.doc
        if getattr(spec, "choices", ()):
            doc += " One of: " + ", ".join(f"`{c}`" for c in spec.choices) + "."
        if getattr(spec, "positive", False):
            doc += " Above 0."
        if getattr(spec, "key_choices", ()):
            doc += " Keys: " + ", ".join(f"`{c}`" for c in spec.key_choices) + "."
        required = "yes" if spec.required else "no"
        rows.append(f"| `{path}` | {kind} | {required} | {doc.strip()} |")
    return "\n".join(rows) + "\n"

"""Running a decoder artifact as a server does: sequences in rows of the one KV cache,
prompts prefilled into free rows, rounds of decode steps at the smallest batch that covers
the sequences in flight.

An artifact of :func:`npuc.compiler.decoder_artifact.compile_decoder` holds prefill
programs (one per prompt length, at the prefill batch ``pb``) and decode programs (one per
batch size), sharing a device-resident cache of ``rows`` sequences (the largest decode
batch) and ``max_seq`` positions. :class:`DecoderRuntime` keeps which row holds which
sequence and which cache positions (columns) each has filled:

- :meth:`~DecoderRuntime.prefill` puts ``pb`` new prompts of ``s`` tokens into the lowest
  free rows (the program's ``cache_row`` input names the first one), at columns
  ``0..s-1`` of those rows: a free row's old contents are never read again;
- :meth:`~DecoderRuntime.decode` gives every sequence in flight its next token in one
  program run: the decode program of the smallest batch ``b`` with ``b > `` the highest
  row in use (rows are taken lowest first, so that is the fewest rows that cover them);
  rows ``0..b-1`` are its leading rows of the cache. The step's keys and values go to
  one column ``c`` for all rows (``cache_position`` is one per step), the first column
  past every sequence's last one; a sequence that joined later has unfilled columns
  before ``c``, which its ``attention_mask`` row masks out, and its ``position_ids`` count
  its own tokens, so each sequence computes what it would alone. Rows not in use get a
  mask of column ``c`` only and their outputs are dropped;
- :meth:`~DecoderRuntime.release` frees a finished sequence's row.

A sequence whose next column would pass ``max_seq`` cannot step (a server would evict or
compact it first): that is a one-line error. :meth:`DecoderRuntime.simulated` runs the
programs in npuc's simulator with one DRAM arena kept across them, as the chip keeps its
cache.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from npuc.compiler.decoder_onnx import prompt_feeds
from npuc.ir.errors import NpucError


@dataclass
class Sequence:
    """One sequence in flight: its cache row and the columns its tokens fill, in order."""

    row: int
    columns: list = field(default_factory=list)


class DecoderRuntime:
    """The rows, columns and program choice of a decoder artifact's programs; ``run(i,
    feeds)`` runs program ``i`` and returns its outputs by name."""

    def __init__(self, programs: list[dict], roles: list[str], run):
        self.programs, self.roles, self.run = programs, list(roles), run
        state = programs[-1]["state"]
        self.max_seq, self.rows = int(state["max_seq"]), int(state.get("rows", 1))
        self.decoders = sorted((int(p["state"]["batch"]), i) for i, (p, r) in
                               enumerate(zip(programs, roles)) if r == "decode")
        self.prefills = {self._length(p): i for i, (p, r) in enumerate(zip(programs, roles))
                         if r == "prefill"}
        if not self.decoders or not self.prefills:
            raise NpucError("a decoder artifact has prefill and decode programs; this one "
                            f"has {', '.join(roles) or 'none'}")
        self.live: dict[int, Sequence] = {}

    @classmethod
    def simulated(cls, programs: list[dict], roles: list[str], weights, target=None):
        """The programs in npuc's simulator, the DRAM arena (and the cache in it) kept
        from one program to the next."""
        from npuc.compiler.executor.simulator import simulate

        dram = np.zeros(max(max(p["memory"]["dram_bytes"] for p in programs), 1), np.uint8)

        def run(i, feeds):
            return simulate(programs[i], weights, feeds, target=target, dram=dram)

        return cls(programs, roles, run)

    @classmethod
    def load(cls, path: str):
        """The artifact folder ``path`` (written by ``npuc compile --max-seq``),
        simulated."""
        from npuc.compiler.executor.artifact import load_folder

        programs, blob, manifest = load_folder(path)
        if manifest is None or any("role" not in p for p in manifest["programs"]):
            raise NpucError(f"{path}: not a decoder artifact (compile with --max-seq)")
        return cls.simulated(programs, [p["role"] for p in manifest["programs"]], blob)

    # -- requests --------------------------------------------------------------------------

    def prefill(self, ids) -> tuple[list[int], np.ndarray]:
        """Prefill the prompts ``ids`` (``[pb, s]`` token ids) into free rows: ``(their
        rows, the last token's logits [pb, vocab])``."""
        ids = np.asarray(ids, np.int64)
        index = self.prefills.get(ids.shape[-1]) if ids.ndim == 2 else None
        if index is None:
            raise NpucError(f"no prefill program takes prompts of shape {list(ids.shape)}; "
                            f"the artifact's take {sorted(self.prefills)} tokens")
        program = self.programs[index]
        b, s = program["inputs"]["input_ids"]["shape"]
        if ids.shape[0] != b:
            raise NpucError(f"the prefill program takes {b} prompt(s) at once, not "
                            f"{ids.shape[0]}")
        first = self._free_rows(b, "cache_row" in program["inputs"])
        feeds = dict(prompt_feeds(ids), cache_position=np.arange(s, dtype=np.int64),
                     cache_row=np.asarray([first], np.int64))
        logits = self._logits(index, feeds)
        rows = list(range(first, first + b))
        for r in rows:
            self.live[r] = Sequence(r, list(range(s)))
        return rows, logits

    def decode_program(self, rows=None) -> int:
        """The decode program for ``rows`` (the rows in flight): the smallest batch that
        covers the highest of them."""
        rows = sorted(self.live) if rows is None else sorted(rows)
        need = rows[-1] + 1 if rows else 1
        for b, i in self.decoders:
            if b >= need:
                return i
        raise NpucError(f"row {need - 1} is past the largest decode batch "
                        f"{self.decoders[-1][0]}")

    def decode(self, tokens: dict) -> dict:
        """One round: each sequence in flight (its row -> its next token id) steps once;
        each row's next-token logits."""
        if set(tokens) != set(self.live):
            raise NpucError(f"a decode round steps every sequence in flight (rows "
                            f"{sorted(self.live)}), not rows {sorted(tokens)}")
        index = self.decode_program()
        b = int(self.programs[index]["state"]["batch"])
        column = max(seq.columns[-1] + 1 for seq in self.live.values())
        if column >= self.max_seq:
            raise NpucError(f"the KV cache is full: a step needs column {column} of "
                            f"{self.max_seq} (--max-seq)")
        ids = np.zeros((b, 1), np.int64)
        mask = np.zeros((b, self.max_seq), np.int64)
        positions = np.zeros((b, 1), np.int64)
        mask[:, column] = 1
        for r, seq in self.live.items():
            ids[r, 0] = int(tokens[r])
            mask[r, seq.columns] = 1
            positions[r, 0] = len(seq.columns)
        feeds = {"input_ids": ids, "attention_mask": mask, "position_ids": positions,
                 "cache_position": np.asarray([column], np.int64)}
        logits = self._logits(index, feeds)
        for seq in self.live.values():
            seq.columns.append(column)
        return {r: logits[r] for r in sorted(self.live)}

    def release(self, row: int) -> None:
        """The sequence in ``row`` has finished: its row is free."""
        if self.live.pop(row, None) is None:
            raise NpucError(f"row {row} holds no sequence")

    # -- helpers ---------------------------------------------------------------------------

    def _free_rows(self, b: int, any_row: bool) -> int:
        """The first of ``b`` consecutive free rows, lowest first (row 0 when the prefill
        program writes the leading rows only)."""
        starts = range(self.rows - b + 1) if any_row else range(1)
        for first in starts:
            if not any(r in self.live for r in range(first, first + b)):
                return first
        raise NpucError(f"no {b} free row(s) in the KV cache of {self.rows} rows "
                        f"({len(self.live)} sequences in flight)")

    def _logits(self, index: int, feeds: dict) -> np.ndarray:
        wanted = self.programs[index]["inputs"]
        out = self.run(index, {k: v for k, v in feeds.items() if k in wanted})
        return np.asarray(out["logits"])[:, -1, :]

    @staticmethod
    def _length(program: dict) -> int:
        return int(program["inputs"]["input_ids"]["shape"][-1])

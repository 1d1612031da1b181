"""A model over several chips: each chip gets its own program, and the programs exchange
tensors with ``send``/``recv`` commands priced from the chip's ``[link]``.

- :mod:`.partition`: the graph cut into consecutive stages of balanced estimated time
  (pipeline parallelism), each a graph of its own;
- :mod:`.compile`: ``compile_chips``: load, optimize and quantize once, then schedule and
  lower each stage for its chip, and add the transfers;
- :mod:`.simulate`: ``simulate_chips`` runs every chip's program, delivering what one
  chip sends to the chip that receives it, and ``verify_chips`` compares the result with
  the single-chip IR.
"""

"""A model over several chips: each chip gets its own program, and the programs exchange
tensors with commands priced from the chip's ``[link]``: ``all_gather`` and
``all_reduce`` between the segments of a tensor-parallel split, ``send``/``recv`` between pipeline stages.

- :mod:`.tensor`, :mod:`.tensor_compile`: weight products split by columns (and their
  readers by rows) over the chips (tensor parallelism), compiled and simulated segment
  by segment; :mod:`.heads`: attentions split by heads;
- :mod:`.partition`: the graph cut into consecutive stages of balanced estimated time
  (pipeline parallelism), each a graph of its own;
- :mod:`.compile`: ``compile_chips``: load, optimize and quantize once, then schedule and
  lower each chip's part, and add the transfers;
- :mod:`.simulate`: ``simulate_chips`` runs every chip's program, delivering what one
  chip sends to the chip that receives it, and ``verify_chips`` compares the result with
  the single-chip IR.
"""

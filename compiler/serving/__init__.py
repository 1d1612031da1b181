"""Serving estimates built on the per-program cost model: throughput over batch sizes for
vision and encoder models, a continuous-batching model for decoders, several chips
(tensor and pipeline parallelism with collectives priced from the chip's link), capacity
(cards for a load at a latency target) and energy from the board's power.

- :mod:`.profile`: what a decoder is made of, read from its graph without its weights;
- :mod:`.collectives`: all-reduce and send/recv times on a chip's link;
- :mod:`.decoder`: the continuous-batching serving model of a decoder;
- :mod:`.vision`: latency per batch size from compiled programs, offline throughput;
- :mod:`.capacity`: cards for a load, energy per inference or per token;
- :mod:`.estimate`: one entry point, ``estimate(model, target, ...)``;
- :mod:`.table`, :mod:`.report`: the terminal table and ``npuc compare``'s HTML report.
"""

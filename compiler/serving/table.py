"""The terminal table of an estimate (and of a comparison of several)."""

from __future__ import annotations


def _ms(seconds) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.3f} ms"


def _num(value, unit="") -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}{unit}" if value < 1e6 else f"{value:,.0f}{unit}"


def _joules(value) -> str:
    if value is None:
        return "-"
    if value < 1e-3:
        return f"{value * 1e6:.3f} uJ"
    return f"{value * 1e3:.3f} mJ" if value < 1 else f"{value:.3f} J"


def rows(e: dict) -> list[tuple[str, str]]:
    """(label, value) pairs of one estimate."""
    out = [("target", f"{e['chips']} x {e['target']}"), ("precision", e["precision"])]
    if e["kind"] == "decoder":
        s = e["serving"]
        w = e["workload"]
        out += [("workload", f"{w['input_tokens']} in / {w['output_tokens']} out tokens"),
                ("parallelism", f"tp {s['tp']} x pp {s['pp']} x dp {s['dp']}"),
                ("output tokens/s", _num(e["output_tokens_per_s"])),
                ("time to first token", _ms(e["time_to_first_token_s"])),
                ("time per output token", _ms(e["time_per_output_token_s"])),
                ("sequences in flight", str(e["max_sequences"])),
                ("KV cache", f"{e['kv_precision']}, "
                             f"{s['kv_bytes_per_token_per_chip'] / 1024:.1f} KiB/token/chip"),
                ("bound by", s["stage"]["bound"] + (
                    f", all-reduce {_ms(s['stage']['all_reduce_s'])}/stage"
                    if s["tp"] > 1 else "")),
                ("energy", _joules(e["joules_per_token"]) + " per token")]
    else:
        o = e["offline"]
        out += [("single-stream latency", _ms(e["single_stream_latency_s"]))]
        out += [(f"batch {r['batch']}", f"{_ms(r['latency_s'])}, "
                                        f"{_num(r['samples_per_s'])}/s"
                 + ("" if r["fits"] else " (does not fit DRAM)")) for r in e["batches"]]
        if o["fits"]:
            out += [("offline samples/s", f"{_num(o['samples_per_s'])} (batch {o['batch']})"),
                    ("energy", _joules(e["joules_per_inference"]) + " per inference")]
        else:
            out += [("offline", "no batch fits" + (" the latency target"
                                                   if e["latency_target_s"] else ""))]
    cpu = e["cpu"]
    share = " of the graph as imported, before fusion" if cpu["time_fraction"] is None \
        else f", {cpu['time_fraction']:.1%} of time"
    out.append(("on the CPU", f"{cpu['nodes']} nodes{share}"))
    if "accuracy" in e:
        a = e["accuracy"]
        out.append(("accuracy", f"SQNR {a['sqnr_db_min']:.1f} dB, cosine "
                                f"{a['cosine_min']:.5f} ({'ok' if a['passed'] else 'FAIL'})"))
    if "cards_for_load" in e:
        out.append((f"cards for {e['qps']:g} req/s", str(e["cards_for_load"])))
    out.append(("board power", e["board_power"]))
    return out


def render(estimates: list[dict]) -> str:
    """One column per estimate, one line per figure."""
    table = [rows(e) for e in estimates]
    labels = [label for label, _ in table[0]]
    for t in table[1:]:
        labels += [label for label, _ in t if label not in labels]
    values = [dict(t) for t in table]
    width = max(len(x) for x in labels)
    cols = [max(len(v.get(x, "-")) for x in labels) for v in values]
    lines = []
    for x in labels:
        cells = [v.get(x, "-").ljust(c) for v, c in zip(values, cols)]
        lines.append(f"{x.ljust(width)}  " + "  ".join(cells).rstrip())
    return "\n".join(lines)

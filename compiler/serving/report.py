"""The HTML report of ``npuc compare``: the side-by-side table and three plots (latency
against batch, the roofline of each chip, cards needed against the load), drawn with
matplotlib as inline SVG made deterministic (fixed hash salt, no date), so the same
estimates give the same bytes.
"""

from __future__ import annotations

import html
import io

from .table import rows

_STYLE = ("body{font-family:sans-serif;margin:2em;max-width:70em}"
          "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3em .6em;"
          "text-align:left}figure{display:inline-block;margin:1em}")


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "npuc"
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(figsize=(6, 4))


def _svg(plt, fig) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _label(e: dict) -> str:
    return f"{e['chips']} x {e['target']}" if e["chips"] > 1 else e["target"]


def latency_plot(estimates: list[dict]) -> str:
    """Latency per batch (per output token against sequences in flight for decoders)."""
    plt, fig, ax = _figure()
    decoder = estimates[0]["kind"] == "decoder"
    for e in estimates:
        if decoder:
            pts = [(r["sequences"], r["time_per_output_token_s"]) for r in e["serving"]["curve"]]
        else:
            pts = [(r["batch"], r["latency_s"]) for r in e["batches"]]
        ax.plot([p[0] for p in pts], [p[1] * 1e3 for p in pts], marker="o", label=_label(e))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequences in flight" if decoder else "batch size")
    ax.set_ylabel("time per output token (ms)" if decoder else "latency per batch (ms)")
    ax.set_title("latency against batch")
    ax.legend()
    return _svg(plt, fig)


def _roof_points(e: dict) -> tuple[float, float, list[tuple[float, float]]]:
    if e["kind"] == "decoder":
        s = e["serving"]
        peak, bw = e["peak_ops_per_s"], e["dram_bandwidth_bytes_per_s"]
        stage = s["stage"]
        seconds = max(stage["compute_s"], stage["memory_s"])
        pts = [(stage["flops"] / stage["bytes"], stage["flops"] / seconds)] if seconds else []
        return peak, bw, pts
    summary = e["roofline_summary"]
    pts = [(layer["intensity"], layer["ops_count"] / layer["estimated_s"])
           for layer in summary["layers"]
           if layer["device"] == "npu" and layer.get("intensity") and layer["estimated_s"]]
    return summary["peak_ops_per_s"], summary["dram_bandwidth_bytes_per_s"], pts


def roofline_plot(estimates: list[dict]) -> str:
    """Each chip's roof (peak and DRAM bandwidth) and its work: the groups of the batch-1
    program, or a decoder's serving round."""
    plt, fig, ax = _figure()
    for i, e in enumerate(estimates):
        peak, bw, pts = _roof_points(e)
        color = f"C{i}"
        xs = [0.1 * 10 ** (k / 20) for k in range(121)]
        ax.loglog(xs, [min(peak, bw * x) for x in xs], color=color, label=_label(e))
        if pts:
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=8, color=color)
    ax.set_xlabel("operations per DRAM byte")
    ax.set_ylabel("operations per second")
    ax.set_title("roofline (one chip each)")
    ax.legend()
    return _svg(plt, fig)


def cards_plot(estimates: list[dict], qps: float | None) -> str:
    """Cards that serve a load, from nothing to twice the given one (or 20 replicas of
    the fastest chip's rate)."""
    from .capacity import cards

    rates = [_rate(e) for e in estimates]
    top = 2 * qps if qps else 20 * max(r for r, _ in rates if r) if any(
        r for r, _ in rates) else 1.0
    loads = [top * k / 40 for k in range(1, 41)]
    plt, fig, ax = _figure()
    for e, (rate, per) in zip(estimates, rates):
        if rate:
            ax.step(loads, [cards(q, rate, per) for q in loads], where="post", label=_label(e))
    if qps:
        ax.axvline(qps, color="gray", linestyle="--", label=f"{qps:g} req/s")
    ax.set_xlabel("load (requests per second)")
    ax.set_ylabel("cards")
    ax.set_title("cards needed")
    ax.legend()
    return _svg(plt, fig)


def _rate(e: dict) -> tuple[float, int]:
    """Requests per second of one replica, and the cards of a replica."""
    if e["kind"] == "decoder":
        s = e["serving"]
        return e["requests_per_s"] / s["dp"], s["tp"] * s["pp"]
    return (e.get("samples_per_s") or 0.0) / e["chips"], 1


def _table(estimates: list[dict]) -> str:
    table = [dict(rows(e)) for e in estimates]
    labels = []
    for t in table:
        labels += [x for x in t if x not in labels]
    head = "".join(f"<th>{html.escape(_label(e))}</th>" for e in estimates)
    body = "".join("<tr><th>" + html.escape(x) + "</th>" +
                   "".join(f"<td>{html.escape(t.get(x, '-'))}</td>" for t in table) + "</tr>"
                   for x in labels)
    return f"<table><tr><th></th>{head}</tr>{body}</table>"


def _cpu(estimates: list[dict]) -> str:
    items = []
    for e in estimates:
        reasons = e["cpu"]["reasons"]
        text = "; ".join(f"{', '.join(r['ops'])}: {r['reason']}" for r in reasons) or \
            "nothing: every node runs on the chip"
        note = f" ({e['cpu']['note']})" if e["cpu"].get("note") else ""
        items.append(f"<li><b>{html.escape(_label(e))}</b>: {html.escape(text + note)}</li>")
    return "<ul>" + "".join(items) + "</ul>"


def render_html(comparison: dict) -> str:
    """The whole page for a comparison (``npuc compare``'s JSON)."""
    estimates = comparison["estimates"]
    title = f"npuc compare: {comparison['model']}"
    figures = [("latency", latency_plot(estimates)), ("roofline", roofline_plot(estimates)),
               ("cards", cards_plot(estimates, comparison.get("qps")))]
    figs = "".join(f'<figure id="plot-{name}">{svg}<figcaption>{name}</figcaption></figure>'
                   for name, svg in figures)
    errors = "".join(f"<li>{html.escape(t)}: {html.escape(msg)}</li>"
                     for t, msg in sorted(comparison.get("errors", {}).items()))
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}"
            f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
            f"{_table(estimates)}<h2>Plots</h2>{figs}<h2>Work on the CPU, and why</h2>"
            f"{_cpu(estimates)}" + (f"<h2>Chips that cannot run it</h2><ul>{errors}</ul>"
                                    if errors else "") + "</body></html>\n")

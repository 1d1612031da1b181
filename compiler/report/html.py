"""The HTML report: one self-contained page (no scripts, no external files)."""

from __future__ import annotations

from html import escape

from .roofline import roofline_svg
from .tradeoff import tradeoff_svg

_STYLE = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
          "td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}"
          "td.n{text-align:right}.cpu{background:#fee}")


def _fmt_bytes(n) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return str(n)


def write_report(summary: dict, decisions: list, use_matplotlib: bool | None = False) -> str:
    """The page for a compilation's ``summary`` and ``decisions`` (from decisions.json)."""
    s = summary
    head = [
        ("model", s["model"]), ("target", s["target"]),
        ("computes in", s["precision"]), ("estimated at", s["estimated_at"]),
        ("estimated latency", f"{s['estimated_latency_s'] * 1e3:.4f} ms"),
        ("SRAM peak", f"{_fmt_bytes(s['sram_peak_bytes'])} of {_fmt_bytes(s['sram_bytes'])}"),
        ("DRAM traffic", _fmt_bytes(s["dram_traffic_bytes"])),
        ("weights", _fmt_bytes(s["weights_bytes"])),
        ("nodes on NPU / CPU", f"{s['nodes_on_npu']} / {s['nodes_on_cpu']}"),
        ("groups", s["groups"]), ("tensors kept on chip", s["resident_tensors"]),
    ]
    if "max_seq" in s:  # a decoder's program with its KV cache as device state
        head[5:5] = [
            ("estimated per token", f"{s['estimated_latency_s'] / s['tokens_per_run'] * 1e3:.4f}"
                                    f" ms ({s['tokens_per_run']} token(s) per run, batch "
                                    f"{s['batch']})"),
            ("KV cache", f"{_fmt_bytes(s['kv_cache_bytes'])}: {s['kv_cache_rows']} rows x "
                         f"{s['max_seq']} positions, device state")]
    rows = []
    for layer in s["layers"]:
        tile = layer["tile"]
        tile_text = "whole" if tile is None else f"{tile['count']} x {tile['rows']} on axis " \
                                                 f"{tile['axis']}"
        rows.append(
            f'<tr class="{escape(layer["device"])}"><td>{escape(layer["group"])}</td>'
            f'<td>{escape(layer["device"])}</td><td>{escape(" + ".join(layer["ops"]))}</td>'
            f'<td>{escape(layer["nodes"][0])}</td><td>{escape(tile_text)}</td>'
            f'<td class="n">{layer["estimated_s"] * 1e6:.3f}</td>'
            f'<td class="n">{layer["roofline_s"] * 1e6:.3f}</td>'
            f'<td>{escape(str(layer["bound"]))}</td>'
            f'<td class="n">{layer["macs"]}</td><td class="n">{layer["dram_bytes"]}</td>'
            f'<td class="n">{layer["utilisation"]:.0%}</td>'
            f'<td>{escape(layer["reason"])}</td></tr>')
    decided = "".join(
        f"<tr><td>{escape(d['stage'])}</td><td>{escape(d['subject'])}</td>"
        f"<td>{escape(d['action'])}</td><td>{escape(d['reason'])}</td></tr>"
        for d in decisions)
    table = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in head)
    curve = tradeoff_svg(decisions)
    if curve:
        curve = "<h2>Accuracy and latency</h2>\n" + curve + "\n"
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>npuc report: {escape(s['model'])} on {escape(s['target'])}</title>"
        f"<style>{_STYLE}</style></head><body>\n"
        f"<h1>{escape(s['model'])} on {escape(s['target'])}</h1>\n<table>{table}</table>\n"
        "<h2>Roofline</h2>\n" + roofline_svg(s, use_matplotlib) + "\n" + curve +
        "<h2>Layers</h2>\n<table><tr><th>group</th><th>device</th><th>ops</th>"
        "<th>first node</th><th>tile</th><th>estimate (us)</th><th>roofline (us)</th>"
        "<th>bound</th><th>MACs</th><th>DRAM bytes</th><th>MAC use</th><th>why</th></tr>\n"
        + "\n".join(rows) + "</table>\n<h2>Decisions</h2>\n<table><tr><th>stage</th>"
        "<th>subject</th><th>action</th><th>reason</th></tr>\n" + decided +
        "</table>\n</body></html>\n")

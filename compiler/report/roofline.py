"""The roofline plot, as an SVG string to put inline in the report.

Each NPU group is a point: operational intensity (operations per byte of DRAM traffic)
against attained performance (operations over its estimated time). The roof is the
chip's peak and its DRAM bandwidth. matplotlib draws it when installed (with its SVG
made deterministic); otherwise a small hand-written SVG does.
"""

from __future__ import annotations

import io
import math

# Log axes need positive, finite coordinates: figures beyond this range (a zero or
# subnormal intensity, a rate that overflows) are pinned to it rather than drawn as nan.
_LO, _HI = 1e-30, 1e30


def _pin(v: float) -> float:
    return min(max(v, _LO), _HI) if math.isfinite(v) else _HI


def _points(summary) -> list[tuple[float, float, str]]:
    pts = []
    for layer in summary["layers"]:
        if layer["device"] != "npu" or not layer.get("intensity") or not layer["estimated_s"]:
            continue
        if layer["intensity"] <= 0 or layer["ops_count"] <= 0:  # nothing to place on a log axis
            continue
        rate = layer["ops_count"] / layer["estimated_s"]
        pts.append((_pin(layer["intensity"]), _pin(rate), layer["group"]))
    return pts


def roofline_svg(summary, use_matplotlib: bool | None = None) -> str:
    """The plot for ``summary``; ``use_matplotlib=None`` uses it when importable."""
    if use_matplotlib is not False:
        try:
            return _matplotlib(summary)
        except ImportError:
            if use_matplotlib:
                raise
    return _hand_written(summary)


def _matplotlib(summary) -> str:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "npuc"
    import matplotlib.pyplot as plt

    peak, bw = summary["peak_ops_per_s"], summary["dram_bandwidth_bytes_per_s"]
    peak, bw = _pin(peak) if peak > 0 else 0.0, _pin(bw) if bw > 0 else 0.0
    pts = _points(summary)
    fig, ax = plt.subplots(figsize=(6, 4))
    lo = _pin(min([p[0] for p in pts] + [0.1]) / 2)
    hi = _pin(max([p[0] for p in pts] + [peak / bw * 4 if bw else 10, 1.0]))
    xs = [lo * (hi / lo) ** (i / 99) for i in range(100)]
    ax.set_xscale("log")
    ax.set_yscale("log")
    if peak > 0 and bw > 0:  # a chip without a figure for this precision has no roof
        ax.plot(xs, [min(peak, bw * x) for x in xs], color="black", label="roof")
    if pts:
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=10, color="tab:blue",
                   label="groups")
    ax.set_xlabel("operations per DRAM byte")
    ax.set_ylabel("operations per second")
    ax.set_title(f"roofline: {summary['target']} at {summary['estimated_at']}")
    ax.legend()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _hand_written(summary) -> str:
    peak, bw = summary["peak_ops_per_s"], summary["dram_bandwidth_bytes_per_s"]
    peak, bw = _pin(peak) if peak > 0 else 0.0, _pin(bw) if bw > 0 else 0.0
    pts = _points(summary)
    w, h, pad = 520, 340, 50
    xlo = math.log10(_pin(min([p[0] for p in pts] + [0.1]) / 2))
    xhi = math.log10(_pin(max([p[0] for p in pts] + [peak / bw * 4 if bw else 10, 1.0])))
    ylo = math.log10(max(min([p[1] for p in pts] + [peak / 1e4]), 1.0) / 2)
    yhi = math.log10(_pin(max(peak, 1.0) * 2))

    def x(v):
        return pad + (math.log10(v) - xlo) / (xhi - xlo or 1) * (w - 2 * pad)

    def y(v):
        return h - pad - (math.log10(max(v, 1e-30)) - ylo) / (yhi - ylo or 1) * (h - 2 * pad)

    knee = min(max(peak / bw if bw else 10 ** xhi, 10 ** xlo), 10 ** xhi)
    roof = [(10 ** xlo, _pin(bw * 10 ** xlo)), (knee, _pin(peak)), (10 ** xhi, _pin(peak))]
    path = " ".join(f"{x(a):.1f},{y(b):.1f}" for a, b in roof)
    dots = "".join(f'<circle cx="{x(a):.1f}" cy="{y(b):.1f}" r="3" fill="#1f77b4">'
                   f'<title>{n}</title></circle>' for a, b, n in pts)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}">'
            f'<rect width="{w}" height="{h}" fill="white"/>'
            f'<polyline points="{path}" fill="none" stroke="black"/>{dots}'
            f'<text x="{w // 2}" y="{h - 10}" text-anchor="middle">operations per DRAM byte '
            f'(log)</text><text x="12" y="{h // 2}" transform="rotate(-90 12 {h // 2})" '
            f'text-anchor="middle">operations per second (log)</text></svg>')

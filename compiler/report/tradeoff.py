"""The accuracy/latency trade-off of the accuracy recovery, as an inline SVG.

Each step the recovery kept (decision log, stage ``accuracy``) is a point: its
cumulative estimated latency cost on x, the share of calibration samples whose answer
changed (left axis, red) and the lowest output SQNR (right axis, blue) on y.
"""

from __future__ import annotations

from html import escape

W, H, PAD = 520, 260, 48


def tradeoff_points(decisions: list) -> list[dict]:
    """The kept steps of the recovery, in order: latency cost, changed share, SQNR."""
    pts = []
    for d in decisions:
        data = d.get("data", {})
        if d.get("stage") == "accuracy" and data.get("kept") and "sqnr_db" in data:
            pts.append({"label": f"{d['subject']}: {d['action']}",
                        "cost_s": data.get("total_latency_cost_s", 0.0),
                        "changed": data.get("changed_share", 0.0),
                        "sqnr": data["sqnr_db"]})
    return pts


def tradeoff_svg(decisions: list) -> str:
    """The curve, or '' when no recovery ran."""
    pts = tradeoff_points(decisions)
    if not pts:
        return ""
    xmax = max(p["cost_s"] for p in pts) or 1e-9
    smin = min(p["sqnr"] for p in pts)
    smax = max(p["sqnr"] for p in pts)
    span = (smax - smin) or 1.0
    cmax = max(max(p["changed"] for p in pts), 0.01)

    def x(v):
        return PAD + (W - 2 * PAD) * v / xmax

    def y_share(v):
        return H - PAD + (2 * PAD - H) * v / cmax

    def y_db(v):
        return H - PAD + (2 * PAD - H) * (v - smin) / span

    red = " ".join(f"{x(p['cost_s']):.1f},{y_share(p['changed']):.1f}" for p in pts)
    blue = " ".join(f"{x(p['cost_s']):.1f},{y_db(p['sqnr']):.1f}" for p in pts)
    dots = "".join(
        f'<circle cx="{x(p["cost_s"]):.1f}" cy="{y_db(p["sqnr"]):.1f}" r="3" fill="#36c">'
        f'<title>{escape(p["label"])}: {p["sqnr"]:.1f} dB, {p["changed"]:.1%} changed, '
        f'+{p["cost_s"] * 1e6:.3f} us</title></circle>' for p in pts)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}">'
        f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" stroke="#000"/>'
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{H - PAD}" stroke="#000"/>'
        f'<polyline points="{red}" fill="none" stroke="#c33"/>'
        f'<polyline points="{blue}" fill="none" stroke="#36c"/>{dots}'
        f'<text x="{W / 2:.0f}" y="{H - 12}" text-anchor="middle" font-size="11">estimated '
        f'latency cost (0 to {xmax * 1e6:.3g} us)</text>'
        f'<text x="4" y="{PAD - 8}" font-size="11" fill="#c33">answers changed '
        f'(0 to {cmax:.1%})</text>'
        f'<text x="{W - 4}" y="{PAD - 8}" text-anchor="end" font-size="11" fill="#36c">'
        f'lowest output SQNR ({smin:.1f} to {smax:.1f} dB)</text></svg>')

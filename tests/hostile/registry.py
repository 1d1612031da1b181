"""The registry of hostile cases (see cases_outputs.py and cases_inputs.py)."""

CASES: dict = {}


def case(fn):
    """Register a case builder ``(folder: Path) -> dict`` under its function name."""
    CASES[fn.__name__] = fn
    return fn

"""Shared test configuration: show the conformance count at the end of every run."""


def pytest_terminal_summary(terminalreporter):
    from tests.conformance import harness

    summary = getattr(harness, "LAST_SUMMARY", None)
    if summary:
        terminalreporter.write_sep("=", summary)

"""Shared test configuration: the zoo's cache in a temporary folder of the run (tests do
not write into the user's ~/.cache), and the conformance count shown at the end."""

import os
import shutil
import tempfile

_made = []


def pytest_configure(config):
    if "NPUC_ZOO_CACHE" not in os.environ:  # subprocesses of the tests inherit it
        path = tempfile.mkdtemp(prefix="npuc-test-zoo-")
        os.environ["NPUC_ZOO_CACHE"] = path
        _made.append(path)


def pytest_unconfigure(config):
    for path in _made:
        shutil.rmtree(path, ignore_errors=True)
        os.environ.pop("NPUC_ZOO_CACHE", None)


def pytest_terminal_summary(terminalreporter):
    from tests.conformance import harness

    summary = getattr(harness, "LAST_SUMMARY", None)
    if summary:
        terminalreporter.write_sep("=", summary)

"""Run hostile cases through ``npuc``'s command line in one process under a memory cap.

``python -m tests.hostile.runner CASES.json RESULTS.json``: the address space is capped
(``resource.setrlimit``) before npuc is imported, every case gets a timeout (SIGALRM),
and the folder each case works in is compared before and after, so that a file changed
outside the case's allowed outputs is reported.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import signal
import sys
import time

MEMORY_CAP = 6 << 30


class CaseTimeout(BaseException):
    """A case ran past its time (BaseException: npuc's handlers must not swallow it)."""


def _alarm(signum, frame):
    raise CaseTimeout()


def snapshot(root: str) -> dict:
    """Every path under ``root`` with what identifies its content."""
    seen = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            link = os.readlink(path) if os.path.islink(path) else None
            seen[path] = (st.st_mode, st.st_size, st.st_mtime_ns, link)
    return seen


def changed_outside(before: dict, after: dict, allowed: list[str]) -> list[str]:
    def ok(path):
        return any(path == a or path.startswith(a.rstrip("/") + "/") for a in allowed)

    paths = set(before) | set(after)
    return sorted(p for p in paths if before.get(p) != after.get(p) and not ok(p))


def prepare(case: dict) -> None:
    """The steps a case needs before its command: an earlier npuc run, a planted symlink,
    a file turned into a FIFO, a field of a JSON file edited."""
    from npuc.compiler.cli import main

    root = case["root"]
    if case.get("setup"):
        cwd = os.getcwd()
        os.chdir(root)
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                assert main(case["setup"]) == 0, case["setup"]
        finally:
            os.chdir(cwd)
    if case.get("plant"):
        link, target = case["plant"]
        os.symlink(os.path.join(root, target), os.path.join(root, link))
        with open(os.path.join(root, target), "w") as f:
            f.write("keep me")
    if case.get("fifo"):
        os.remove(os.path.join(root, case["fifo"]))
        os.mkfifo(os.path.join(root, case["fifo"]))
    if case.get("edit"):
        name, key, value = case["edit"]
        path = os.path.join(root, name)
        with open(path) as f:
            data = json.load(f)
        data[key] = value
        with open(path, "w") as f:
            json.dump(data, f)


def _in_child(main, case: dict):
    """Run a case with a file size limit in a forked child, so that the limit touches no
    file but the case's own (no bytecode or JIT cache written half)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: limit, run, report, and leave without cleanup
        os.close(read)
        resource.setrlimit(resource.RLIMIT_FSIZE, (case["fsize"], case["fsize"]))
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                code = main(case["argv"])
        except BaseException as e:  # noqa: BLE001 - reported to the parent as it is
            code, err = repr(e), err
        os.write(write, json.dumps([code, err.getvalue()]).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        data = f.read()
    os.waitpid(pid, 0)
    code, text = json.loads(data) if data else ("child died", "")
    sys.stderr.write(text)
    return code


def run_case(case: dict) -> dict:
    from npuc.compiler.cli import main

    prepare(case)
    before = snapshot(case["root"])
    old_env = {k: os.environ.get(k) for k in case.get("env", {})}
    os.environ.update(case.get("env", {}))
    cwd = os.getcwd()
    os.chdir(case["cwd"])
    err, out = io.StringIO(), io.StringIO()
    signal.alarm(case.get("timeout", 30))
    t0 = time.perf_counter()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = _in_child(main, case) if case.get("fsize") else main(case["argv"])
    except CaseTimeout:
        code = "timeout"
    except SystemExit as e:
        code = e.code
    finally:
        signal.alarm(0)
        os.chdir(cwd)
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    after = snapshot(case["root"])
    return {"code": code, "stderr": err.getvalue(), "stdout": out.getvalue(),
            "seconds": time.perf_counter() - t0,
            "changed": changed_outside(before, after, case.get("allowed", []))}


def main() -> None:
    cases_path, results_path = sys.argv[1:3]
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    sys.dont_write_bytecode = True
    signal.signal(signal.SIGALRM, _alarm)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a full "disk" is an error, not a kill
    with open(cases_path) as f:
        cases = json.load(f)
    results = {case["id"]: run_case(case) for case in cases}
    if os.environ.get("NPUC_HOSTILE_TIMES"):
        for name, r in sorted(results.items(), key=lambda kv: -kv[1]["seconds"]):
            print(f"{r['seconds']:7.2f} s  {name}", file=sys.stderr)
    with open(results_path, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()

"""pytest plugin: each test's outcome and the requirement ids it cites (`@pytest.mark.req("SR-012")`),
written as JSON for tools/trace.py (`--req-report FILE`). Loaded by the root conftest.py.

The ids travel as user_properties, which pytest-xdist carries from its workers to the controller,
so the report is written once, by the process that sees every test's result."""

import json
import os
import pathlib

PROPERTY = "req"


def pytest_addoption(parser):
    parser.getgroup("trace", "requirement traceability").addoption(
        "--req-report", default=None, metavar="FILE",
        help="write every test's outcome and its @pytest.mark.req ids to FILE (JSON) for tools/trace.py")


_RESULTS: dict = {}  # nodeid -> {"outcome", "req", "skip"}: this process's view of the run


def pytest_configure(config):
    _RESULTS.clear()


def pytest_collection_modifyitems(items):
    for item in items:
        ids = [i for mark in item.iter_markers("req") for i in mark.args]
        if ids:
            item.user_properties.append((PROPERTY, " ".join(dict.fromkeys(ids))))


def _outcome(previous, report):
    # a test is "failed" if any phase failed, "passed" if its call passed, else "skipped"
    if report.failed or previous == "failed":
        return "failed"
    if report.when == "call" and report.passed:
        return "passed"
    if report.skipped and previous is None:
        return "skipped"
    return previous


def pytest_runtest_logreport(report):
    entry = _RESULTS.setdefault(report.nodeid, {"outcome": None, "req": [], "skip": ""})
    entry["outcome"] = _outcome(entry["outcome"], report)
    if report.skipped and not entry["skip"]:
        entry["skip"] = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr or "")
    for name, value in report.user_properties:
        if name == PROPERTY:
            entry["req"] = sorted(set(entry["req"]) | set(value.split()))


def _full_run(config):
    """Did this run select every test (no paths, -k, -m, --deselect, --lf, --sw)? A partial run cannot
    show that each requirement has a passing test."""
    o = config.option
    narrowed = (o.keyword, o.markexpr, getattr(o, "deselect", None), getattr(o, "lf", False),
                getattr(o, "stepwise", False), getattr(o, "ignore", None), getattr(o, "ignore_glob", None))
    return config.args_source == config.ArgsSource.TESTPATHS and not any(narrowed)


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    path = config.getoption("--req-report")
    if not path or hasattr(config, "workerinput"):  # an xdist worker: its controller writes the file
        return
    out = pathlib.Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {"args": list(config.invocation_params.args), "exitstatus": int(exitstatus), "full": _full_run(config),
              "micropython": os.environ.get("MESOINJECT_MICROPYTHON", ""),
              "tests": _RESULTS}
    out.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")

"""Runs pytest inside a Bazel py_test and fails when no test ran.

Why: pytest exits 5 when it collects nothing, and a misnamed file or function would
otherwise pass silently. JUnit XML goes where Bazel collects it.
"""

from __future__ import annotations

import os
import sys

import pytest


def main() -> int:
    args = ["-p", "no:cacheprovider", "-q", *sys.argv[1:]]
    if os.environ.get("TEST_TMPDIR"):  # pytest's tmp_path inside the test's own tmp dir
        args.append(f"--basetemp={os.environ['TEST_TMPDIR']}/pytest")
    xml = os.environ.get("XML_OUTPUT_FILE")
    if xml:
        args.append(f"--junitxml={xml}")
    code = pytest.main(args)
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        print("pytest_test: no tests were collected; failing", file=sys.stderr)
        return 1
    return int(code)


if __name__ == "__main__":
    sys.exit(main())

"""pytest_test: one py_test per pytest file, so `bazel test` reports each file."""

load("@rules_python//python:defs.bzl", "py_test")
load("@pip//:requirements.bzl", "requirement")

def pytest_test(name, srcs, deps = [], args = [], data = [], **kwargs):
    """A py_test that runs pytest on `srcs`.

    Args:
        name: target name.
        srcs: the pytest files (and helpers they import).
        deps: the code under test and third-party packages; pytest is added.
        args: extra pytest arguments.
        data: runtime files.
        **kwargs: passed to py_test (size, tags, env, timeout, ...).
    """
    py_test(
        name = name,
        srcs = ["//tools/pytest:runner.py"] + srcs,
        main = "//tools/pytest:runner.py",
        args = args + ["$(rootpath %s)" % src for src in srcs if src.endswith("_test.py")],
        data = data,
        deps = deps + ["//tools/pytest:runner", requirement("pytest")],
        **kwargs
    )

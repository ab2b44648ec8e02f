"""Writes the Grafana dashboards' JSON into dashboards/generated/.

    tools/bazel run //dashboards:generate

Why committed output: Grafana provisioning (the compose stack) mounts plain JSON files, and
a reviewer sees in the diff what a panel change does. `generated_test` fails when the
committed files and the generator disagree.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dashboards.grafana import file_name, render
from dashboards.panels import DASHBOARDS

GENERATED_DIR = Path("dashboards/generated")


def default_output_dir() -> Path:
    """The workspace's dashboards/generated under `bazel run`, else relative to here."""
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
    return Path(workspace) / GENERATED_DIR if workspace else GENERATED_DIR


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="generate", description=__doc__)
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="where to write (default: the workspace's dashboards/generated)",
    )
    args = parser.parse_args(argv)
    out = args.output_dir or default_output_dir()
    out.mkdir(parents=True, exist_ok=True)
    for dashboard in DASHBOARDS:
        path = out / file_name(dashboard)
        text = render(dashboard)
        changed = not path.exists() or path.read_text() != text
        if changed:
            path.write_text(text)
        print(f"{path}: {'written' if changed else 'unchanged'} ({len(dashboard.panels)} panels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The `tapedeck` command line."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tapedeck")
    parser.parse_args(argv)
    return 0

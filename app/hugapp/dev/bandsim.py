"""`hugbutton band sim`: a virtual band (the real firmware on a simulated board) in an airspace."""

from __future__ import annotations

import argparse

from hugsim.band.process import main_from_cli


def main(args: argparse.Namespace) -> int:
    return main_from_cli(args)

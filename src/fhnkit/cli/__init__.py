"""The `fhnkit` command line (`fhnkit --help`): validate, plan, simulate, train, evaluate, benchmark."""

from .parser import build_parser, main

__all__ = ["build_parser", "main"]

"""MkDocs hook: the CLI reference, generated from the argparse parsers at build time.

A page that holds the line ``<!-- cli-reference -->`` gets it replaced by one section per
sub-command of ``bnnlogic.cli.build_parser()`` (nested sub-commands too): its description,
usage and a table of its arguments with their help and defaults.  ``render()`` is also what
the tests call, so the reference cannot drift from the parsers.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

MARKER = "<!-- cli-reference -->"


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return [(name, p) for s in subs for name, p in sorted(s.choices.items())]


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _arguments(parser: argparse.ArgumentParser) -> list[str]:
    fmt = parser._get_formatter()
    rows = []
    for a in parser._actions:
        if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction, argparse._VersionAction)):
            continue
        if a.option_strings:
            meta = "" if a.nargs == 0 else " " + fmt._format_args(a, a.dest.upper())
            name = ", ".join(f"`{o}{meta}`" for o in a.option_strings)
        else:
            name = f"`{a.metavar or a.dest}`"
        helptext = fmt._expand_help(a) if a.help else ""
        default = a.default
        hidden = default is None or default is False or default is argparse.SUPPRESS or a.nargs == 0
        shown = "" if a.required or not a.option_strings or hidden else f"`{default}`"
        rows.append(f"| {name} | {_cell(helptext)} | {shown} |")
    if not rows:
        return []
    return ["| argument | meaning | default |", "|---|---|---|", *rows, ""]


def _section(path: str, parser: argparse.ArgumentParser, level: int) -> list[str]:
    out = [f"{'#' * level} `{path}`", ""]
    if parser.description:
        out += [_cell(parser.description), ""]
    usage = " ".join(parser.format_usage().split())
    out += ["```text", usage, "```", ""]
    out += _arguments(parser)
    for name, sub in _subcommands(parser):
        out += _section(f"{path} {name}", sub, level + 1)
    return out


def render() -> str:
    """The whole reference as markdown."""
    from bnnlogic.cli import build_parser

    root = build_parser()
    out = [_cell(root.description or ""), "", "| command | what it does |", "|---|---|"]
    helps = {c.dest: c.help for s in root._actions if isinstance(s, argparse._SubParsersAction)
             for c in s._choices_actions}
    out += [f"| [`bnnlogic {n}`](#bnnlogic-{n}) | {_cell(helps.get(n, ''))} |" for n, _ in _subcommands(root)]
    out.append("")
    for name, sub in _subcommands(root):
        out += _section(f"bnnlogic {name}", sub, 2)
    return "\n".join(out)


def on_page_markdown(markdown: str, page, config, files) -> str:
    return markdown.replace(MARKER, render()) if MARKER in markdown else markdown

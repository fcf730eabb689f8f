"""Untrusted text (persona names and goals, model output, run ids) reaches the
terminal and the report only escaped: no escape sequences, no forged lines,
no bidi reordering, no Rich markup, no broken markdown tables."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest
from rich.console import Console

from orchestrator.analysis.report import md_table
from orchestrator.analysis.viewer import messages_table, summarise, summary_table
from orchestrator.live_view import render_row, render_summary
from orchestrator.records import MessageRow
from orchestrator.runner import run_simulation
from orchestrator.safe_text import markup, md, text, visible
from orchestrator.typing import RunSummary
from tests.helpers import cli
from tests.reliability_helpers import resolved

HOSTILE = [
    "\x1b]0;pwned\x07Ada",  # OSC: sets the window title
    "\x1b[2J\x1b[HBob",  # clears the screen
    "Cy\nTICK 999 | forged",  # a forged line
    "Dee\u202eevil",  # right-to-left override
    "\x9b31mEve",  # C1 CSI
    "[bold red]Fay[/]",  # Rich markup
    "Gus | col",  # a markdown cell separator
]


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b]0;t\x07x", "\\x1b]0;t\\x07x"),
        ("a\nb\r\tc", "a\\nb\\r\\tc"),
        ("x\u202ey\u2066z\u200ew", "x\\u202ey\\u2066z\\u200ew"),
        ("line\u2028sep", "line\\u2028sep"),
        ("\x9b31m", "\\x9b31m"),
        ("👩\u200d💻 می\u200cخواهم", "👩\u200d💻 می\u200cخواهم"),  # ZWJ/ZWNJ stay
        ("plain café", "plain café"),
        (None, ""),
    ],
)
def test_visible_escapes_what_moves_the_cursor_or_reorders(raw, shown):
    assert visible(raw) == shown


def test_markup_and_markdown_escapes():
    assert markup("[bold]x[/]") == "\\[bold]x\\[/]"
    assert md("a|b*c_") == "a\\|b\\*c\\_"
    assert visible("x" * 10, limit=5) == "xxxx…"
    assert text("[red]x").plain == "[red]x"


def _shown(renderable, width: int = 200) -> str:
    console = Console(width=width, record=True, color_system=None, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


@pytest.fixture(scope="module")
def real_row(tmp_path_factory) -> MessageRow:
    """A row as a mock run makes it (whatever fields MessageRow has today)."""
    seen: list[MessageRow] = []

    class Recorder:
        def start(self, **_):
            pass

        def on_tick(self, result):
            seen.extend(result.rows)

        def finish(self, summary):
            pass

    root = tmp_path_factory.mktemp("row")
    run_simulation(resolved(root, "row", ticks=1, agents=2), Recorder())
    return seen[0]


def _row(base: MessageRow, name: str, goal: str, content: str) -> MessageRow:
    return replace(base, agent_name=name, goal=goal, content=content, action="SAY")


@pytest.mark.parametrize("name", HOSTILE)
def test_live_view_row_shows_hostile_names_inert(real_row, name):
    shown = _shown(render_row(_row(real_row, name, f"goal of {name}", f"hello from {name}")))
    assert "\x1b" not in shown and "\x9b" not in shown and "\u202e" not in shown
    assert len(shown.rstrip("\n").split("\n")) == 2  # the row and its goal line: none forged
    assert "TICK 999" not in shown.split("\n")[0][:9]


def test_summary_panel_shows_paths_literally():
    summary = RunSummary(
        run_id="r",
        status="interrupted",
        ticks=1,
        agents=1,
        total_s=1.0,
        ticks_this_session=1,
        run_dir="/data/[bold]runs[/]/r",
        resume_command="steersim --resume r --storage-root '/data/[bold]runs[/]'",
    )
    shown = _shown(render_summary(summary))
    assert "/data/[bold]runs[/]/r" in shown


def test_viewer_table_and_summary_show_names_literally(real_row):
    rows = [_row(real_row, n, "g", "c") for n in HOSTILE]
    df = pd.DataFrame([r.__dict__ for r in rows])
    df.loc[0, "action"] = "[blink]SAY[/]"
    shown = _shown(messages_table(df, None), width=300) + _shown(summary_table(summarise(df, 7)))
    assert "[bold red]Fay[/]" in shown and "[blink]SAY[/]" in shown
    assert "\x1b" not in shown and "\u202e" not in shown and "\\u202e" in shown


def test_report_table_cells_cannot_break_the_table():
    table = md_table(["agent", "actions"], [["Gus | col\nTICK 9", 3], ["[x](http://e)", 1]])
    lines = table.split("\n")
    assert len(lines) == 4 and all(line.count(" | ") == 1 for line in lines[2:])
    assert "\\|" in lines[2] and "\\[x\\](http://e)" in lines[3]


def test_live_run_with_hostile_personas_prints_nothing_raw(write_yaml, tmp_path):
    personas = ", ".join(
        f'{{name: "{n}", goal: "{g}"}}'
        for n, g in [
            ("\\e]0;pwned\\aAda", "win \\e[2J"),
            ("Cy\\nTICK 999 | forged", "go \\u202eevil"),
            ("[bold red]Fay[/]", "[link=http://x]click[/]"),
        ]
    )
    cfg = write_yaml("c.yaml", f"population: {{agents: 4, traits: [{personas}]}}\nticks: 2\n")
    proc = cli(str(cfg), "--mock-model", "--live", "--set", f"storage.root={tmp_path}/st")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out
    assert sum(line.startswith("TICK ") for line in out.splitlines()) == 2
    assert "TICK 999" not in [line[:8] for line in out.splitlines()]

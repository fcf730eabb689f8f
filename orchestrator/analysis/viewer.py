"""Looking at a run's messages: filters (agent, tick, action), summary
counts of what matched, and Rich renderables of both. Pure functions of a
DataFrame; the view_results script prints what they return."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from orchestrator.dumps_reader import TRAIT_COLUMNS
from orchestrator.safe_text import text, visible

CONTENT_CHARS = 100


@dataclass(frozen=True, kw_only=True)
class MessageFilter:
    agent: str | None = None  # agent name or id, case-insensitive
    tick: int | None = None
    action: str | None = None  # MOVE | SAY | WORK | REST | IDLE | REFLECT, case-insensitive

    def apply(self, messages: pd.DataFrame) -> pd.DataFrame:
        keep = pd.Series(True, index=messages.index)
        if self.agent is not None:
            who = self.agent.casefold()
            keep &= (messages["agent_name"].str.casefold() == who) | (
                messages["agent_id"].str.casefold() == who
            )
        if self.tick is not None:
            keep &= messages["tick"] == self.tick
        if self.action is not None:
            keep &= messages["action"].str.upper() == self.action.upper()
        return messages[keep]


@dataclass(frozen=True, kw_only=True)
class Summary:
    rows: int  # rows that matched
    total_rows: int  # rows read
    ticks: int
    agents: int
    actions: dict[str, int]  # matched rows per action, most frequent first
    parse_failures: int
    completion_tokens: int


def summarise(matched: pd.DataFrame, total_rows: int) -> Summary:
    counts = matched["action"].value_counts()
    return Summary(
        rows=len(matched),
        total_rows=total_rows,
        ticks=int(matched["tick"].nunique()),
        agents=int(matched["agent_id"].nunique()),
        actions={str(k): int(v) for k, v in counts.items()},
        parse_failures=int((~matched["parse_ok"]).sum()),
        completion_tokens=int(matched["completion_tokens"].sum()),
    )


def _what(row: pd.Series) -> Text:
    if row["action"] == "MOVE":
        return Text(f"→ {visible(row['target'])}")
    return Text(visible(row["content"] or "", CONTENT_CHARS))


def steering_cell(row: pd.Series) -> str:
    """The five applied coefficients in E A C O N order, one decimal each."""
    return " ".join(f"{float(row[c]):+.1f}" for c in TRAIT_COLUMNS)


def messages_table(matched: pd.DataFrame, limit: int | None, *, title: str = "") -> Table:
    """The first `limit` matched rows (all when None) as a Rich table."""
    shown = matched if limit is None else matched.head(limit)
    table = Table(title=text(title) if title else None, show_lines=False, expand=False)
    table.add_column("tick", justify="right", no_wrap=True)
    table.add_column("agent", style="cyan", no_wrap=True)
    table.add_column("where", no_wrap=True, max_width=12)
    table.add_column("action", style="magenta", no_wrap=True)
    table.add_column("content / target", min_width=24, ratio=1)
    table.add_column(" E    A    C    O    N", style="dim", no_wrap=True)
    table.add_column("ok", justify="center", no_wrap=True)
    for _, row in shown.iterrows():
        ok = Text("✓", style="green") if row["parse_ok"] else Text("✗", style="red")
        table.add_row(  # Text cells: names and text from the dumps are never markup
            str(row["tick"]),
            text(row["agent_name"]),
            text(row["location"]),
            text(row["action"]),
            _what(row),
            steering_cell(row),
            ok,
        )
    return table


def summary_table(s: Summary) -> Table:
    table = Table(title="summary", show_header=False, expand=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    table.add_row("rows matched", f"{s.rows:,} of {s.total_rows:,}")
    table.add_row("ticks", f"{s.ticks:,}")
    table.add_row("agents", f"{s.agents:,}")
    for action, n in s.actions.items():
        table.add_row(text(f"  {action}"), f"{n:,}")
    table.add_row("parse failures", f"{s.parse_failures:,}")
    table.add_row("completion tokens", f"{s.completion_tokens:,}")
    return table


def render(
    matched: pd.DataFrame, total_rows: int, limit: int | None, *, title: str = ""
) -> RenderableType:
    """The messages table (first `limit` rows) and the summary of everything matched."""
    parts: list[RenderableType] = []
    if len(matched):
        parts.append(messages_table(matched, limit, title=title))
        if limit is not None and len(matched) > limit:
            parts.append(
                Text(
                    f"… {len(matched) - limit:,} more rows (raise --limit to see them)", style="dim"
                )
            )
    else:
        parts.append(Text("no rows match the filters", style="yellow"))
    parts.append(summary_table(summarise(matched, total_rows)))
    return Group(*parts)

"""The replay page: its data matches the dumps, it is safe with hostile text
(persona names and model outputs stay text), it is self-contained and
reproducible, and in a real browser (headless Chromium, driven by
Playwright) it renders without console errors, moves with the slider and
shows the prompt behind an agent's action."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pytest

from agents.mock_backend import MockBackend
from agents.typing import Generation, Request
from orchestrator.replay import REPLAY_FILE, write_replay
from orchestrator.replay.data import build_replay_data
from orchestrator.replay.page import render, script_json
from tests.analysis_helpers import QuietView, make_mock_run
from tests.conftest import CONFIGS, REPO

HOSTILE_NAME = "<img src=x onerror=alert(1)>"
HOSTILE_GOAL = "<b>take over</b> & <script>alert(2)</script>"
HOSTILE_SAY = "</script><script>alert(1)</script>"
ASSETS = REPO / "orchestrator" / "replay" / "assets"
TICKS, AGENTS = 8, 8


class HostileOutput:
    """The mock backend, except that the first agent always says HOSTILE_SAY."""

    name = "mock"

    def __init__(self) -> None:
        self.inner = MockBackend()

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        gens = self.inner.generate(requests)
        return [
            Generation(
                text=f"SAY {HOSTILE_SAY}",
                prompt_tokens=g.prompt_tokens,
                completion_tokens=g.completion_tokens,
                latency_s=g.latency_s,
                steer=g.steer,
                steer_layers=g.steer_layers,
            )
            if r.kind != "reflection" and r.prompt[0].content.startswith(f"You are {HOSTILE_NAME},")
            else g
            for r, g in zip(requests, gens, strict=True)
        ]

    def describe(self) -> dict:
        return {"backend": "mock"}

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short mock run whose first persona has a hostile name and goal and
    always says HOSTILE_SAY."""
    from orchestrator.config_loader import load_config
    from orchestrator.runner import run_simulation

    root = tmp_path_factory.mktemp("replay")
    personas = json.dumps([{"name": HOSTILE_NAME, "goal": HOSTILE_GOAL, "E": 0.9, "home": "cafe"}])
    resolved = load_config(
        CONFIGS / "run.fast.yaml",
        [
            "model.backend=mock",
            f"ticks={TICKS}",
            f"population.agents={AGENTS}",
            f"population.traits={personas}",
            "world.locations=[cafe,park,library]",
            "run_id=hostile",
            f"storage.root={root}",
        ],
    )
    run_simulation(resolved, QuietView(), backend=HostileOutput())
    return root / "dumps" / "hostile"


def _unpack(b64: str) -> dict:
    return json.loads(gzip.decompress(base64.b64decode(b64)))


def _embedded(html: str, block: str) -> object:
    m = re.search(rf'<script type="application/json" id="{block}">(.*?)</script>', html, re.S)
    assert m, block
    return json.loads(m.group(1))


# -- the data ------------------------------------------------------------------


def test_data_holds_every_row_with_its_prompt(hostile_run: Path) -> None:
    data = build_replay_data(hostile_run)
    parts = list(data.parts())
    msgs = pd.read_parquet(hostile_run / "messages")
    prompts = pd.read_parquet(hostile_run / "prompts").set_index(["tick", "request_id"])
    assert data.meta["ticks"] == list(range(TICKS))
    assert sum(len(p["rows"]) for p in parts) == len(msgs) > 0
    names = [a["name"] for a in data.meta["agents"]]
    for part in parts:
        assert len(part["pos"]) == AGENTS and None not in part["pos"]
        for row in part["rows"]:
            want = prompts.loc[(part["tick"], row["r"])]
            assert row["p"]["u"] == want["user"] and row["p"]["s"] == want["system"]
            assert [m[0] for m in row["p"]["m"]] == list(want["memory_ids"])
            assert row["p"]["s"].startswith(f"You are {names[row['a']]},")
    hostile = data.meta["agents"][0]
    assert (hostile["name"], hostile["goal"]) == (HOSTILE_NAME, HOSTILE_GOAL)
    said = [r["c"] for p in parts for r in p["rows"] if r["a"] == 0 and r["act"] == "SAY"]
    assert said and set(said) == {HOSTILE_SAY}
    acted = {t for t in msgs[msgs["agent_id"] == "agent-000"]["tick"]}
    assert hostile["acts"] == sorted(acted)
    # each plan in an agent's timeline is the one its prompts showed from then on
    plans = [
        (a, t, plan) for a, agent in enumerate(data.meta["agents"]) for t, plan in agent["plans"]
    ]
    assert plans
    systems = {
        (p["tick"], r["a"]): r["p"]["s"] for p in parts for r in p["rows"] if r["k"] != "reflection"
    }
    for a, tick, plan in plans:
        assert f"Your current plan: {plan}" in systems[(tick, a)]


def test_memories_shown_are_the_recorded_ones(hostile_run: Path) -> None:
    parts = build_replay_data(hostile_run).parts()
    memories = pd.read_parquet(hostile_run / "memories").set_index("memory_id")
    shown = [m for p in parts for r in p["rows"] for m in r["p"]["m"]]
    assert shown
    for mid, _score, made, kind, importance, text in shown:
        assert (made, kind, text) == (
            memories.loc[mid, "tick"],
            memories.loc[mid, "kind"],
            memories.loc[mid, "text"],
        )
        assert importance == pytest.approx(memories.loc[mid, "importance"], abs=0.01)


def test_positions_rebuilt_for_old_runs_match_the_recorded_ones(
    hostile_run: Path, tmp_path: Path
) -> None:
    """A run made before positions/ existed: everyone starts at home and a MOVE
    takes effect the next tick; that gives exactly what the run records now."""
    old = tmp_path / "old"
    shutil.copytree(hostile_run, old, ignore=shutil.ignore_patterns("positions", "prompts"))
    recorded, rebuilt = build_replay_data(hostile_run), build_replay_data(old)
    assert [p["pos"] for p in rebuilt.parts()] == [p["pos"] for p in recorded.parts()]
    assert rebuilt.meta["recorded"] == {"prompts": False, "memories": True, "positions": False}
    assert all("p" not in r for p in rebuilt.parts() for r in p["rows"])


# -- the page ------------------------------------------------------------------


def test_script_json_cannot_end_its_block() -> None:
    value = {"name": HOSTILE_NAME, "said": HOSTILE_SAY, "x": "<!-- a & b -->\u2028"}
    text = script_json(value)
    assert not re.search(r"[<>&\u2028]", text)
    assert json.loads(text) == value


def test_page_embeds_data_only_as_escaped_json(hostile_run: Path) -> None:
    html = render(build_replay_data(hostile_run))
    # markup appears only as the template's own: one script block of code
    assert html.count("<script") == 3 and html.count("</script>") == 3
    assert "<img" not in html and "<b>" not in html and HOSTILE_SAY not in html
    meta = _embedded(html, "replay-meta")
    assert meta["agents"][0]["name"] == HOSTILE_NAME
    packed = _embedded(html, "replay-ticks")
    assert len(packed) == TICKS and _unpack(packed[2])["tick"] == 2


def test_page_allows_only_its_own_inline_script_and_style(hostile_run: Path) -> None:
    html = render(build_replay_data(hostile_run))
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    script = re.search(r"<script>(.*?)</script>", html, re.S).group(1)
    style = re.search(r"<style>(.*?)</style>", html, re.S).group(1)

    def sha(text: str) -> str:
        return base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()

    assert "default-src 'none'" in csp and "require-trusted-types-for 'script'" in csp
    assert f"script-src 'sha256-{sha(script)}'" in csp
    assert f"style-src 'sha256-{sha(style)}'" in csp
    assert "http" not in html.replace('http-equiv="Content-Security-Policy"', "").replace(
        "http://www.w3.org/2000/svg", ""
    )  # nothing to load from anywhere


def test_page_script_never_parses_html() -> None:
    code = (ASSETS / "replay.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in code, sink
    assert "</" not in code  # it is inlined into a <script> element


def test_page_is_reproducible(hostile_run: Path, tmp_path: Path) -> None:
    a = write_replay(hostile_run, tmp_path / "a.html")
    b = write_replay(hostile_run, tmp_path / "b.html")
    assert a.path.read_bytes() == b.path.read_bytes()
    assert (a.agents, a.ticks) == (AGENTS, TICKS)


def test_replay_command_writes_into_the_run_folder(tmp_path: Path) -> None:
    from tests.helpers import cli

    run = make_mock_run(tmp_path / "st", run_id="cmd", ticks=3, agents=5)
    proc = cli("replay", "cmd", "--storage-root", str(tmp_path / "st"))
    assert proc.returncode == 0, proc.stderr
    assert (run / REPLAY_FILE).is_file() and "replay of 5 agents x 3 ticks" in proc.stdout
    bad = cli("replay", str(tmp_path / "nowhere"))
    assert bad.returncode == 2 and bad.stderr.startswith("error:")
    assert len(bad.stderr.strip().splitlines()) == 1


# -- in a real browser -----------------------------------------------------------

BROWSER_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser_page(tmp_path: Path):
    """A page of headless Chromium (Debian's), with everything it reports."""
    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.skip("no chromium on PATH (apt-get install chromium; .ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    seen: dict[str, list] = {"errors": [], "dialogs": [], "requests": []}
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"),  # a fresh profile
            executable_path=chromium,
            headless=True,
            args=BROWSER_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = context.new_page()
            page.on(
                "console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None
            )
            page.on("pageerror", lambda e: seen["errors"].append(str(e)))
            page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
            page.on("request", lambda r: seen["requests"].append(r.url))
            yield page, seen
        finally:
            context.close()


def test_replay_in_a_browser(browser_page, hostile_run: Path) -> None:
    page, seen = browser_page
    html = write_replay(hostile_run).path
    page.goto(html.as_uri())
    page.wait_for_selector("body[data-ready='1']", timeout=30_000)
    assert page.locator("#map circle.agent").count() == AGENTS
    assert page.locator("#tick-label").inner_text() == f"tick 0 / {TICKS - 1}"

    # the slider moves the page to another tick
    page.fill("#tick-slider", "3")
    page.wait_for_selector("body[data-tick='3']")
    assert page.locator("#tick-label").inner_text() == f"tick 3 / {TICKS - 1}"
    msgs = pd.read_parquet(hostile_run / "messages")
    at3 = msgs[(msgs["tick"] == 3) & (msgs["event_kind"] != "reflection")]
    assert page.locator("#events .line").count() == len(msgs[msgs["tick"] == 3])

    # clicking an agent shows the prompt behind its action
    row = at3.iloc[-1]
    index = int(row["agent_id"].split("-")[1])
    page.click(f"#map circle[data-agent='{index}']")
    page.wait_for_selector("#agent-body:not([hidden]) .prompt-user")
    prompts = pd.read_parquet(hostile_run / "prompts")
    want = prompts[(prompts["tick"] == 3) & (prompts["request_id"] == row["request_id"])].iloc[0]
    assert page.locator("#agent-body h3").inner_text() == row["agent_name"]
    assert page.locator("#agent-body .prompt-user").first.inner_text() == want["user"]
    assert page.locator("#agent-body table.recalled tr").count() == len(want["memory_ids"]) + 1

    # the hostile name, goal and output are shown as text, never as markup
    page.keyboard.press("ArrowRight")
    page.wait_for_selector("body[data-tick='4']")
    page.click("#map circle[data-agent='0']")
    page.wait_for_selector("#agent-body:not([hidden])")
    assert page.locator("#agent-body h3").inner_text() == HOSTILE_NAME
    assert HOSTILE_GOAL in page.locator("#agent-body").inner_text()
    hostile_ticks = sorted(set(msgs[msgs["agent_id"] == "agent-000"]["tick"]))
    page.fill("#tick-slider", str(hostile_ticks[0]))
    page.wait_for_selector(f"body[data-tick='{hostile_ticks[0]}']")
    assert HOSTILE_SAY in page.locator("#events").inner_text()
    assert page.locator("img").count() == 0

    # the trait filter dims everyone else
    page.select_option("#filter-trait", "E")
    page.fill("#filter-value", "0.5")
    agents = pd.read_parquet(hostile_run / "agents.parquet")
    shown = page.locator("#map circle.agent:not(.dim)").count()
    assert shown == int((agents["E"] > 0.5).sum()) >= 1

    assert seen["dialogs"] == []
    assert seen["errors"] == []
    assert set(seen["requests"]) == {html.as_uri()}  # the page loads nothing else

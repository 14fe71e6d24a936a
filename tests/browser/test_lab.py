"""What a user sees in JupyterLab: cells typed and run in headless Chromium, asserted on the rendered DOM.

One Lab server and one page for the module (see conftest.py); the tests run in order
in one notebook, as a user would: load tiny, stream a cell, look at its decode order,
interrupt a long cell, run the next one, meet an error, use the generator panel.
"""

from __future__ import annotations

import re

import pytest
from held_network import HeldChild

pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]  # JupyterLab's start-up counts in the first

#: The README's example.
STREAM_CELL = "%%diffuse --steps 32 --max-new-tokens 64 --seed 0 --out story\ndef fibonacci(n):"
#: Every distinct live canvas of one cell, in the order the page rendered them (results excluded).
RECORD_CANVASES = """cell => {
    window.__canvases = [];
    new MutationObserver(() => {
        for (const canvas of cell.querySelectorAll('.yipyap-canvas:not(.yipyap-result)')) {
            if (canvas.textContent !== window.__canvases.at(-1)) window.__canvases.push(canvas.textContent);
        }
    }).observe(cell, {subtree: true, childList: true, characterData: true});
}"""
WAIT = 120_000  # ms: the most any one step below may take on two busy cores


def run_cell(page, code: str):
    """Type `code` into the last (empty) cell and run it with Shift+Enter; the cell's locator.

    The locator holds the cell's index: Shift+Enter appends a new last cell.
    """
    cells = page.locator(".jp-Notebook .jp-Cell")
    cell = cells.nth(cells.count() - 1)
    cell.locator(".cm-content").click()
    page.keyboard.insert_text(code)
    page.keyboard.press("Shift+Enter")
    return cell


def is_finished(cell) -> bool:
    """The cell's prompt shows an execution count (no longer `[*]`)."""
    return re.fullmatch(r"\[\d+\]:", cell.locator(".jp-InputPrompt").inner_text().strip()) is not None


def finished(cell) -> None:
    """Wait until the cell's prompt shows an execution count (no longer `[*]`)."""
    from playwright.sync_api import expect

    expect(cell.locator(".jp-InputPrompt")).to_have_text(re.compile(r"\[\d+\]:"), timeout=WAIT)


def outputs(cell) -> list[str]:
    return cell.locator(".jp-OutputArea-output").all_inner_texts()


@pytest.fixture(scope="module", autouse=True)
def tiny_loaded(page) -> None:
    """The magics loaded and `tiny` on the CPU before any test, so each test stands alone in any order."""
    cell = run_cell(page, "%load_ext yipyap_jupyter\n%diffuse load tiny --device cpu")
    finished(cell)
    assert "on cpu" in outputs(cell)[0]


def test_a_streaming_cell_ends_as_its_last_canvas_showed(page) -> None:
    cells = page.locator(".jp-Notebook .jp-Cell")
    cells.nth(cells.count() - 1).evaluate(RECORD_CANVASES)
    cell = run_cell(page, STREAM_CELL)
    finished(cell)
    canvases = page.evaluate("window.__canvases")
    assert len(canvases) >= 2 and "▒" in canvases[1], "the display updated in place, masks first"
    assert "▒" not in canvases[-1]
    result = cell.locator(".yipyap-result")
    assert result.count() == 1 and len(outputs(cell)) == 1  # the live display gave way to the result
    assert result.text_content() == canvases[-1].rstrip()  # prompt + continuation, exactly as last drawn
    assert result.text_content().startswith("def fibonacci(n):")
    assert re.search(r"\d+ tokens · 32 steps · [\d.]+ s · tiny · cpu", outputs(cell)[0])


def test_the_decode_order_view_renders(page) -> None:
    finished(run_cell(page, STREAM_CELL))
    cell = run_cell(page, "story.decode_order()")
    finished(cell)
    view = cell.locator(".yipyap-decode-order")
    assert view.count() == 1 and view.locator("span[title^='step ']").count() > 0
    assert view.locator("span[title*=' · confidence 0.']").count() > 0  # hover: the step and its confidence
    assert cell.locator("svg.yipyap-chart rect").count() == 32  # one bar per step


def test_an_interrupt_shows_one_line_and_the_next_cell_runs(page, gate: HeldChild) -> None:
    from playwright.sync_api import expect

    gate.hold(free=1)  # step 1 goes through, step 2 waits: the cell is running when the interrupt comes
    try:
        cell = run_cell(page, "%%diffuse --steps 400 --max-new-tokens 400 --seed 1\nclass Stack:")
        expect(cell.locator(".yipyap-footer")).to_contain_text("step 1/400", timeout=WAIT)
        gate.wait_held(2)
        page.locator("[data-jp-item-name='interrupt'] button, [data-jp-item-name='interrupt']").first.click()
        gate.step_until(lambda: is_finished(cell))  # the interrupt lands while steps go one at a time
    finally:
        gate.open()
    finished(cell)
    text = "\n".join(outputs(cell))
    assert re.search(r"stopped at step \d+ of 400", text)
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    error = cell.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
    assert error.count() == 1 and len(error.inner_text().strip().splitlines()) == 1
    cell = run_cell(page, "%%diffuse --steps 8 --max-new-tokens 8 --seed 2\nimport os")
    finished(cell)
    assert re.search(r"\d+ tokens · 8 steps · [\d.]+ s · tiny · cpu", outputs(cell)[0])


def test_an_error_shows_once(page) -> None:
    cell = run_cell(page, "%%diffuse --steps 64 --max-new-tokens 8\nhello")
    finished(cell)
    text = "\n".join(outputs(cell))
    assert len(outputs(cell)) == 1 and text.count("validation error") == 1, text


def test_the_panel_generates_stops_and_shows_steps(page, gate: HeldChild) -> None:
    from playwright.sync_api import expect

    cell = run_cell(page, "from yipyap_jupyter.kernel.panels import TextGeneratorPanel\n"
                          "panel = TextGeneratorPanel()\npanel")
    finished(cell)
    widget = cell.locator(".jupyter-widgets").first
    widget.wait_for(timeout=WAIT)
    status = cell.locator(".widget-html").last  # the live view's status lines, under its canvas and bar

    def knob(label: str):
        return cell.locator(".widget-text", has=page.locator(f"label:text-is('{label}')")).locator("input")

    cell.locator(".widget-textarea textarea").fill("def parse(line):")
    knob("max new tokens").fill("400")
    knob("steps").fill("400")
    gate.hold(free=1)  # step 1 goes through, step 2 waits: the run is going when Stop comes
    try:
        cell.locator("button", has_text="Generate").click()
        expect(status).to_contain_text("step 1/400", timeout=WAIT)
        gate.wait_held(2)
        cell.locator("button", has_text="Stop").click()
        gate.step_until(lambda: "stopped at step" in status.inner_text())  # Stop lands while steps go one at a time
    finally:
        gate.open()
    expect(status).to_contain_text(re.compile(r"stopped at step \d+ of 400"), timeout=WAIT)
    knob("max new tokens").fill("16")
    knob("steps").fill("16")
    cell.locator("button", has_text="Generate").click()
    expect(status).to_contain_text(re.compile(r"tokens · 16 steps · [\d.]+ s · tiny · cpu"), timeout=WAIT)
    assert cell.locator(".yipyap-result").text_content().startswith("def parse(line):")
    cell.locator("button", has_text="decode order").click()
    expect(cell.locator(".yipyap-decode-order")).to_have_count(1, timeout=WAIT)
    assert cell.locator("svg.yipyap-chart rect").count() == 16


def test_download_bars_line_up(page) -> None:
    cell = run_cell(page, "from yipyap_jupyter.kernel.panels import ModelManagementPanel\nModelManagementPanel()")
    finished(cell)
    bars = cell.locator(".widget-hprogress")
    bars.first.wait_for(timeout=WAIT)
    lefts = {round(bars.nth(i).bounding_box()["x"]) for i in range(bars.count())}
    assert bars.count() > 3 and len(lefts) == 1, lefts  # every row's bar starts at the same x

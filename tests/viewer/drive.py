"""Drive nerfstudio's viewer page (viser's React GUI) in headless Chromium: buttons, number fields, dropdowns."""

from __future__ import annotations

import json
import time

from tests.viewer.cdp import Browser


def _find_input_js(label: str) -> str:
    """JS expression: the first text input in the GUI row labelled ``label``."""
    return f"""(() => {{
      const lab = Array.from(document.querySelectorAll('label')).find(l => l.innerText.trim() === {json.dumps(label)});
      if (!lab) return null;
      let row = lab.parentElement;
      for (let i = 0; i < 4 && row; i++, row = row.parentElement) {{
        const inp = Array.from(row.querySelectorAll('input')).find(e => e.type === 'text');
        if (inp) return inp;
      }}
      return null;
    }})()"""


def wait_for(browser: Browser, expression: str, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while not browser.eval(expression):
        if time.time() > deadline:
            raise TimeoutError(f"the viewer page never satisfied: {expression}")
        time.sleep(0.5)


def click_button(browser: Browser, text: str) -> None:
    ok = browser.eval(
        f"(() => {{ const b = Array.from(document.querySelectorAll('button')).find(b => b.innerText.trim() === "
        f"{json.dumps(text)}); if (!b) return false; b.click(); return true; }})()"
    )
    if not ok:
        raise LookupError(f"no button {text!r} in the viewer")


def set_field(browser: Browser, label: str, value: str) -> None:
    """Type ``value`` into the text/number field of the row ``label`` and commit it with Enter."""
    found = browser.eval(f"(() => {{ const e = {_find_input_js(label)}; if (!e) return false; e.focus(); e.select();"
                         " return true; })()")  # fmt: skip
    if not found:
        raise LookupError(f"no field {label!r} in the viewer")
    browser.call("Input.insertText", text=value)
    for kind in ("keyDown", "keyUp"):
        browser.call("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter", windowsVirtualKeyCode=13)
    browser.eval(f"{_find_input_js(label)}.blur()")


def select_option(browser: Browser, label: str, option: str) -> None:
    """Open the dropdown of row ``label`` and click ``option``."""
    box = browser.eval(f"(() => {{ const r = {_find_input_js(label)}.getBoundingClientRect();"
                       " return [r.x + r.width / 2, r.y + r.height / 2]; })()")  # fmt: skip
    for kind in ("mousePressed", "mouseReleased"):
        browser.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)
    wait_for(browser, "document.querySelectorAll('[role=option]').length > 0", 10)
    find = (
        f"Array.from(document.querySelectorAll('[role=option]')).find(o => o.innerText.trim() === {json.dumps(option)})"
    )
    if not browser.eval(f"(() => {{ const o = {find}; if (!o) return false; o.scrollIntoView(); return true; }})()"):
        raise LookupError(f"no option {option!r} in {label!r}")
    pos = browser.eval(
        f"(() => {{ const r = {find}.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
    )
    for kind in ("mousePressed", "mouseReleased"):
        browser.call("Input.dispatchMouseEvent", type=kind, x=pos[0], y=pos[1], button="left", clickCount=1)

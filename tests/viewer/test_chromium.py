"""The viewer as a user meets it: ns-viewer on localhost for a tiny ns-train run, opened in headless Chromium.

Screenshots at Time 0 and Time 1 from a training frame's pose, with the 'groups' output, and with the 'relevancy'
output after typing a query into the "Text query" box (the run trains a feature field on a cache of random tiny
CLIP features): none is blank, the two times differ in part of the picture (what the deformation and temporal
visibility change), the group view differs from RGB, and the relevancy map is not flat. Skipped only when
/usr/bin/chromium is absent (``.ci/run`` installs it)."""

from __future__ import annotations

import copy
import dataclasses
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from tests.viewer.cdp import CHROMIUM, Browser, free_port

pytest.importorskip("nerfstudio")
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium at /usr/bin/chromium")

from tests.viewer.drive import click_button, select_option, set_field, wait_for  # noqa: E402

STEPS = 30


@pytest.fixture(scope="module")
def ns_config(tiny_scene: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few steps of ns-train semdyn-cpu on the tiny street, with a feature field; its config.yml."""
    from semdyn.data import read_sequence
    from semdyn.method_config import semdyn_cpu_method
    from tests.viewer.test_query import with_feature_field

    config = copy.deepcopy(semdyn_cpu_method.config)
    config.pipeline.datamanager.data = tiny_scene
    config.output_dir = tmp_path_factory.mktemp("ns_viewer_run")
    config.max_num_iterations = STEPS
    config.steps_per_eval_image = config.steps_per_eval_all_images = 10 * STEPS
    scene = config.pipeline.model.scene
    scene.init = dataclasses.replace(scene.init, initial_opacity=0.5)  # visible after a few steps
    frames = [f.image_path for f in read_sequence(tiny_scene).frames]
    config.pipeline.model.semantics = with_feature_field(tmp_path_factory.mktemp("clip_cache"), frames)
    config.vis = "tensorboard"
    config.set_timestamp()
    config.save_config()
    trainer = config.setup(local_rank=0, world_size=1)
    trainer.setup()
    trainer.train()
    return config.get_base_dir() / "config.yml"


def _viewport(path: Path, panel_width: int = 320) -> np.ndarray:
    import imageio.v2 as imageio

    image = imageio.imread(path)[..., :3].astype(np.float64)
    return image[60:, : image.shape[1] - panel_width]  # the render, without the top bar and the control panel


def _settled(browser: Browser, path: Path, previous: np.ndarray | None, timeout: float = 120.0) -> np.ndarray:
    """The viewport once the CPU viewer has finished (a preview, then the full resolution: slower on a busy
    machine): after 10 s, until two shots 2 s apart agree and, given ``previous``, it no longer looks like that;
    the last shot after ``timeout`` seconds (the asserts then say what is wrong)."""
    time.sleep(10)
    deadline, last = time.time() + timeout, None
    while True:
        shot = _viewport(browser.screenshot(path))
        steady = last is not None and float(np.abs(shot - last).mean()) < 0.5
        moved = previous is None or float(np.abs(shot - previous).mean()) > 5.0
        if (steady and moved) or time.time() > deadline:
            return shot
        last = shot
        time.sleep(2)


def test_viewer_in_headless_chromium(ns_config: Path, tmp_path: Path) -> None:
    port = free_port()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    viewer = subprocess.Popen(
        [str(Path(sys.executable).parent / "ns-viewer"), "--load-config", str(ns_config),
         "--viewer.websocket-port", str(port)],
        stdout=open(tmp_path / "viewer.log", "w"), stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    browser = None
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://localhost:{port}", timeout=2)
                break
            except OSError:
                assert viewer.poll() is None, (tmp_path / "viewer.log").read_text()[-2000:]
                assert time.time() < deadline, "ns-viewer did not serve its page"
                time.sleep(1)
        browser = Browser(1200, 800)
        browser.goto(f"http://localhost:{port}")
        wait_for(browser, "Array.from(document.querySelectorAll('button')).some(b => b.innerText.trim() === "
                          "'View from frame')", 120)  # fmt: skip
        click_button(browser, "Hide Train Cams")
        set_field(browser, "Frame", "0")
        click_button(browser, "View from frame")
        shots: dict[str, np.ndarray] = {}
        previous = None
        for name, action, changes in (
            ("t0", lambda: set_field(browser, "Time", "0"), False),
            ("t1", lambda: set_field(browser, "Time", "1"), False),
            ("groups", lambda: select_option(browser, "Output type", "groups"), True),
            (
                "relevancy",
                lambda: (
                    select_option(browser, "Output type", "relevancy"),
                    set_field(browser, "Text query", "a photo of a car"),
                ),
                True,
            ),
        ):
            action()
            shots[name] = _settled(browser, tmp_path / f"{name}.png", previous if changes else None)
            previous = shots[name]
    finally:
        if browser is not None:
            browser.close()
        viewer.terminate()
        viewer.wait(timeout=30)
    for name, image in shots.items():
        assert image.std() > 3.0, f"{name}: the viewport is blank"
    changed = np.abs(shots["t0"] - shots["t1"]).max(-1) > 8
    assert 0.001 < changed.mean() < 0.6, f"time 0 vs 1: {changed.mean():.4f} of the pixels changed"
    assert np.abs(shots["groups"] - shots["t1"]).mean() > 5.0
    assert np.abs(shots["relevancy"] - shots["groups"]).mean() > 5.0

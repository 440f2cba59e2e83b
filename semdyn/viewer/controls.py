"""The semdyn panel of nerfstudio's viewer: freeze time, hide groups or classes, view from a frame, text query.

:class:`ViewerControls` is an ``nn.Module`` without parameters held by the model, so that nerfstudio's viewer finds
its elements (it collects every ``ViewerElement`` attribute of the pipeline's modules) and rerenders when one
changes. Outside the viewer the elements keep their defaults, so rendering is unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from nerfstudio.viewer.viewer_elements import (
    ViewerButton,
    ViewerCheckbox,
    ViewerControl,
    ViewerNumber,
    ViewerSlider,
    ViewerText,
)
from torch import nn


@dataclass
class ObjectPath:
    """One rigid object's path as the viewer draws it."""

    node: int
    """The object's index in the scene graph."""
    label: str
    """Its class."""
    positions: np.ndarray
    """[M, 3] its trajectory's origin at M times (dataparser units)."""
    color: tuple[int, int, int]
    """RGB 0-255 (its group's colour)."""
    text: str
    """A line for the list: Gaussians, seen interval."""


VIEWER_SCALE = 10.0
"""nerfstudio's viewer draws the scene 10x larger than the dataparser's units (VISER_NERFSTUDIO_SCALE_RATIO)."""

log = logging.getLogger("semdyn")


def parse_ids(text: str) -> set[int]:
    """``"1, 4 7"`` -> {1, 4, 7}; words that are not integers are skipped (with one log line)."""
    out = set()
    for word in text.replace(",", " ").split():
        try:
            out.add(int(word))
        except ValueError:
            log.warning("viewer: %r is not a group id", word)
    return out


class ViewerControls(nn.Module):
    """Elements of the semdyn panel (names as shown in the viewer)."""

    def __init__(
        self,
        camera_to_worlds: np.ndarray | None = None,
        on_query: Callable[[str], object] | None = None,
        tracks: Callable[[], list[ObjectPath]] | None = None,
    ) -> None:
        """camera_to_worlds: [F, 4, 4] OpenGL poses of the sequence's frames in the dataparser's units (for
        "View from frame"), or None. on_query: called with the new text when "Text query" changes in the viewer
        (before the rerender it triggers), e.g. to encode it. tracks: gives the scene graph's object paths for
        "Draw object tracks"."""
        super().__init__()
        self._poses = camera_to_worlds
        self._tracks = tracks
        self.draw_tracks = ViewerButton("Draw object tracks", cb_hook=lambda _: self.show_tracks())
        self.control = ViewerControl()
        self.frame = ViewerNumber("Frame", 0, hint="Index of a frame of the sequence")
        self.view_frame = ViewerButton("View from frame", cb_hook=lambda _: self.view_from_frame())
        self.freeze_time = ViewerCheckbox("Freeze time", False, hint="Render every view at the frozen time below")
        self.frozen_time = ViewerSlider("Frozen time", 0.5, 0.0, 1.0, 0.01, hint="Normalised time (0 = first frame)")
        self.hide_groups = ViewerText("Hide groups", "", hint="Group ids to hide, e.g. '3, 7'")
        self.hide_classes = ViewerText("Hide classes", "", hint="Class names to hide, e.g. 'car, truck'")
        self.query = ViewerText(
            "Text query",
            "",
            cb_hook=lambda element: on_query(element.value) if on_query is not None else None,
            hint="A CLIP text query, e.g. 'car': the 'relevancy' output (needs a feature field)",
        )

    def view_from_frame(self) -> None:
        """Move every connected viewer's camera to the pose of frame ``Frame`` (as clicking its frustum does)."""
        viewer = getattr(self.control, "viewer", None)
        if viewer is None or self._poses is None or len(self._poses) == 0:
            return
        import viser.transforms as vtf

        c2w = self._poses[int(np.clip(int(self.frame.value), 0, len(self._poses) - 1))]
        wxyz = (vtf.SO3.from_matrix(c2w[:3, :3]) @ vtf.SO3.from_x_radians(np.pi)).wxyz
        for client in viewer.viser_server.get_clients().values():
            with client.atomic():
                client.camera.wxyz, client.camera.position = wxyz, c2w[:3, 3] * VIEWER_SCALE

    def show_tracks(self) -> list[ObjectPath]:
        """Draw every rigid object's path (its trajectory's origin over the times it was seen) as a coloured line
        with a label in every connected viewer, and log the list; returns the paths."""
        paths = self._tracks() if self._tracks is not None else []
        for p in paths:
            log.info("viewer: object %d (%s): %s", p.node, p.label, p.text)
        viewer = getattr(self.control, "viewer", None)
        if viewer is None:
            return paths
        scene = viewer.viser_server.scene
        for p in paths:
            if len(p.positions) < 2:
                continue
            pts = np.asarray(p.positions, dtype=np.float64) * VIEWER_SCALE
            scene.add_spline_catmull_rom(f"/semdyn_tracks/{p.node}", pts, line_width=3.0, color=p.color)
            scene.add_label(f"/semdyn_tracks/{p.node}_label", f"{p.node} {p.label}", position=tuple(pts[0]))
        return paths

    def time(self, camera_time: float) -> float:
        """The time to render: the frozen time when frozen, else the camera's (the Time slider)."""
        return float(self.frozen_time.value) if self.freeze_time.value else camera_time

    def query_text(self) -> str:
        """The text query ("" when none)."""
        return self.query.value.strip()

    def hidden_groups(self) -> set[int]:
        return parse_ids(self.hide_groups.value)

    def hidden_classes(self, class_names: Sequence[str]) -> set[int]:
        """Indices into ``class_names`` of the classes named in the text box (case-insensitive)."""
        wanted = {w.strip().lower() for w in self.hide_classes.value.split(",") if w.strip()}
        return {i for i, name in enumerate(class_names) if name.lower() in wanted}

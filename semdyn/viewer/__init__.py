"""Viewer extras: stable id colours, extra outputs (groups, classes, deformation), hiding, controls, and the text
query's lazily loaded CLIP encoder (:mod:`semdyn.viewer.query`, for the ``relevancy`` output).

:mod:`semdyn.viewer.controls` imports nerfstudio; the rest does not.
"""

from semdyn.viewer.colors import heat_map, id_colors
from semdyn.viewer.extras import EXTRA_OUTPUTS, render_extras, render_view, visible_mask

__all__ = ["EXTRA_OUTPUTS", "heat_map", "id_colors", "render_extras", "render_view", "visible_mask"]

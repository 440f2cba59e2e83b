"""MLP deformation field (as in Deformable-3DGS): positional encoding of (x, t) -> MLP -> dx, dr, ds heads.

Centres are normalised to [-1, 1] by the scene box (clamped, as for the HexPlane) before the encoding
gamma(p) = (p, sin(2^k pi p), cos(2^k pi p)) for k < L; time in [0, 1] is encoded the same way. The MLP
has ``depth`` ReLU layers of ``width`` with the encoded input concatenated again after each layer in
``skip_layers``; each head is one zero-initialised linear layer, so the field starts as the exact identity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from semdyn.deform.field import Deformation, DeformationField, heads_to_deformation, make_head, normalize_to_aabb
from semdyn.errors import InputError


@dataclass
class MLPDeformConfig:
    """MLP deformation field (the Deformable-3DGS ablation). Defaults are the paper's; see :meth:`small`."""

    position_frequencies: int = 10
    """Frequencies L of the positional encoding of the normalised centre."""
    time_frequencies: int = 6
    """Frequencies of the positional encoding of the time."""
    depth: int = 8
    """ReLU layers of the MLP."""
    width: int = 256
    """Width of every MLP layer."""
    skip_layers: tuple[int, ...] = (4,)
    """Layers (0-based, < depth - 1) after which the encoded input is concatenated to the hidden state."""
    deform_position: bool = True
    """Predict the position offset dx (off: dx = 0)."""
    deform_rotation: bool = True
    """Predict the rotation delta dr (off: dr = identity)."""
    deform_scale: bool = True
    """Predict the log-scale delta ds (off: ds = 0)."""

    @classmethod
    def small(cls) -> MLPDeformConfig:
        """A CPU preset: 4 layers of 64 with a skip after layer 2 (about 40x fewer FLOPs than the default)."""
        return cls(depth=4, width=64, skip_layers=(2,))

    def setup(self, aabb: Tensor) -> MLPDeformField:
        """The field over the scene box ``aabb`` [2, 3] (scene units)."""
        return MLPDeformField(self, aabb)

    def validate(self) -> None:
        """Raise :class:`InputError` naming the first option out of range."""
        checks = [
            ("position_frequencies", self.position_frequencies >= 0, "at least 0"),
            ("time_frequencies", self.time_frequencies >= 0, "at least 0"),
            ("depth", self.depth >= 1, "at least 1"),
            ("width", self.width >= 1, "at least 1"),
            ("skip_layers", all(0 <= s < self.depth - 1 for s in self.skip_layers), f"in [0, {self.depth - 1})"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise InputError(f"MLPDeformConfig.{name} must be {expected}, got {getattr(self, name)!r}")


def positional_encoding(p: Tensor, frequencies: int) -> Tensor:
    """gamma(p) = (p, sin(2^k pi p), cos(2^k pi p)) for k < frequencies; [M, C] -> [M, C * (1 + 2 * frequencies)]."""
    if frequencies == 0:
        return p
    freqs = math.pi * 2.0 ** torch.arange(frequencies, dtype=p.dtype, device=p.device)
    angles = (p[..., None] * freqs).flatten(-2)  # [M, C * F]
    return torch.cat((p, torch.sin(angles), torch.cos(angles)), dim=-1)


class MLPDeformField(DeformationField):
    """gamma(x), gamma(t) -> MLP with skips -> linear heads for dx, dr, ds."""

    def __init__(self, config: MLPDeformConfig, aabb: Tensor) -> None:
        super().__init__(aabb)
        config.validate()
        self.config = config
        self.in_dim = 3 * (1 + 2 * config.position_frequencies) + (1 + 2 * config.time_frequencies)
        w = config.width
        self.layers = nn.ModuleList([nn.Linear(self.in_dim, w)])
        for i in range(config.depth - 1):
            self.layers.append(nn.Linear(w + (self.in_dim if i in config.skip_layers else 0), w))
        self.dx_head = make_head(w, 3, 0) if config.deform_position else None
        self.dr_head = make_head(w, 4, 0) if config.deform_rotation else None
        self.ds_head = make_head(w, 3, 0) if config.deform_scale else None

    def encode(self, means: Tensor, t: float) -> Tensor:
        """Network input [M, in_dim] of centres [M, 3] (scene units) at time t in [0, 1]."""
        x = positional_encoding(normalize_to_aabb(means, self.aabb), self.config.position_frequencies)
        tt = torch.full((1, 1), t, dtype=means.dtype, device=means.device)
        return torch.cat((x, positional_encoding(tt, self.config.time_frequencies).expand(x.shape[0], -1)), dim=-1)

    def deform(self, means: Tensor, t: float) -> Deformation:
        inputs = self.encode(means, t)
        h = inputs
        for i, layer in enumerate(self.layers):
            h = torch.relu(layer(h))
            if i in self.config.skip_layers:
                h = torch.cat((inputs, h), dim=-1)
        return heads_to_deformation(h, self.dx_head, self.dr_head, self.ds_head)

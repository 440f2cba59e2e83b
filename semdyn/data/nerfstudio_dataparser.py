"""The nerfstudio adapter: ``ns-train <method> semdyn-data --data <sequence>``.

Reads a sequence with the pure reader (`semdyn.data.sequence.read_sequence`, which validates
everything before training starts) and turns one split of it into nerfstudio's `DataparserOutputs`.

``DataparserOutputs`` produced here:

- ``cameras``: one per image; ``times`` [N, 1] normalised to [0, 1] over the sequence (the viewer's
  time slider), per-image intrinsics and OPENCV distortion ``[k1 k2 k3 k4 p1 p2]``, poses in the
  normalised world; ``cameras.metadata["sensor_idx"]`` [N, 1] long, the index of each image's camera.
- ``dataparser_transform`` [3, 4] and ``dataparser_scale``: metres -> normalised world, nerfstudio's
  convention ``x' = scale * (T @ [x; 1])``.
- ``metadata`` (N images of the split, P points, C cameras):

  ====================================  =====================================================
  ``times_seconds``                     float64 tensor [N], seconds as in the file
  ``time_range_seconds``                (start, end) floats, seconds; normalised = (s - start) / duration
  ``duration_seconds``                  float, seconds (0 for a static scene)
  ``has_time``                          bool, False for plain static transforms.json
  ``camera_names``                      list[str] [N], camera (sensor) name of each image
  ``sensor_names``                      list[str] [C], all camera names of the sequence
  ``sensor_indices``                    long tensor [N], index into ``sensor_names``
  ``timestamp_indices``                 long tensor [N], index of the image's distinct timestamp
  ``frame_indices``                     long tensor [N], index into the whole sorted sequence
  ``depth_filenames``                   list[Path] [N] or None, ``.npy`` metres (nerfstudio key)
  ``depth_unit_scale_factor``           float, file units -> metres (1.0)
  ``instance_mask_filenames``           list[Path] [N] or None, 16-bit instance ids
  ``semantic_filenames``                list[Path] [N] or None, 8-bit ids into ``semantic_classes``
  ``semantic_classes``                  list[str]
  ``points3D_xyz``                      float32 tensor [P, 3], normalised world (when a PLY is given)
  ``points3D_rgb``                      uint8 tensor [P, 3]
  ``points3D_time``                     float32 tensor [P] in [0, 1] (when the PLY has ``time``)
  ``points3D_time_seconds``             float64 tensor [P], seconds
  ``objects``                           list[ObjectTrack], ground truth in metres (evaluation only)
  ``scene_normalization``               SceneNormalization (metres <-> normalised, numpy)
  ``dataparser_transform``              float32 tensor [3, 4], same as the field
  ``dataparser_scale``                  float, same as the field
  ``sequence``                          the parsed `Sequence` (all frames, metres)
  ====================================  =====================================================

Note: nerfstudio's ``mask_filenames`` (binary loss masks) is left None; instance masks have their own key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from nerfstudio.cameras.cameras import CAMERA_MODEL_TO_TYPE, Cameras
from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataParserConfig, DataparserOutputs
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.plugins.registry_dataparser import DataParserSpecification

from semdyn.data.images import check_image_complete
from semdyn.data.sequence import (
    PointCloud,
    SceneNormalization,
    Sequence,
    compute_normalization,
    read_points,
    read_sequence,
)


@dataclass
class SemdynDataParserConfig(DataParserConfig):
    """Reads a semdyn driving sequence (shared/DATA_FORMAT.md), plain nerfstudio or D-NeRF transforms."""

    _target: type = field(default_factory=lambda: SemdynDataParser)
    """Target class to instantiate."""
    data: Path = Path()
    """Sequence folder holding transforms.json, or the path of a transforms .json file."""
    orientation_method: Literal["none", "up"] = "none"
    """World rotation: 'none' keeps the file's axes (converters write z-up metres); 'up' turns the mean camera
    up-vector to +z like nerfstudio's 'up'."""
    center_method: Literal["poses", "none"] = "poses"
    """'poses' moves the mean camera position to the origin."""
    auto_scale_poses: bool = True
    """Scale the world so that the largest absolute camera coordinate is 1."""
    scale_factor: float = 1.0
    """Extra scale on top of the automatic one."""
    scene_scale: float = 1.0
    """Half side of the scene box, in normalised units."""
    eval_interval: int = 8
    """Without split.json, every eval_interval-th timestamp (all cameras of it, from the first) is held out."""
    load_3D_points: bool = True
    """Load ply_file_path into metadata['points3D_xyz'/'points3D_rgb'] (splatfacto seeds Gaussians from it)."""
    check_files: bool = True
    """Read the header of every image/mask/semantic/depth file at parse time to check existence and sizes."""
    depth_unit_scale_factor: float = 1.0
    """Depth file units to metres; the format stores metres."""


class SemdynDataParser(DataParser):
    """nerfstudio DataParser for semdyn sequences; one parse is shared by all splits."""

    # nerfstudio's pattern (as its own parsers): a subclass narrows the config it is built with; only __init__ sets it
    config: SemdynDataParserConfig  # ty: ignore[incompatible-mutable-override]

    def __init__(self, config: SemdynDataParserConfig) -> None:
        super().__init__(config=config)
        self.includes_time = True  # read by the datamanager before any split is parsed; shows the time slider
        self._sequence: Sequence | None = None
        self._normalization: SceneNormalization | None = None
        self._points: PointCloud | None = None

    @property
    def sequence(self) -> Sequence:
        """The parsed sequence (parsed and validated on first access)."""
        if self._sequence is None:
            sequence = read_sequence(
                self.config.data, eval_interval=self.config.eval_interval, check_files=self.config.check_files
            )
            if self.config.check_files:  # nerfstudio decodes later, deep in its datamanager, naming no file
                for frame in sequence.frames:
                    check_image_complete(frame.image_path)
            self._sequence = sequence
        return self._sequence

    @property
    def normalization(self) -> SceneNormalization:
        """Metres -> normalised world, computed once from all frames so that every split shares it."""
        if self._normalization is None:
            self._normalization = compute_normalization(
                self.sequence.camera_to_worlds,
                orientation_method=self.config.orientation_method,
                center_method=self.config.center_method,
                auto_scale_poses=self.config.auto_scale_poses,
                scale_factor=self.config.scale_factor,
            )
        return self._normalization

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs: object) -> DataparserOutputs:
        sequence, norm = self.sequence, self.normalization
        if split == "train":
            indices = list(sequence.split.train)
        elif split in ("val", "test"):
            indices = list(sequence.split.test)
        else:
            raise ValueError(f"unknown dataparser split {split!r}; expected train, val or test")
        frames = [sequence.frames[i] for i in indices]
        transform = torch.from_numpy(norm.transform).float()
        metadata: dict[str, object] = {
            **self._time_metadata(indices),
            **self._file_metadata(indices),
            **self._point_metadata(),
            "objects": list(sequence.objects),
            "scene_normalization": norm,
            "dataparser_transform": transform,
            "dataparser_scale": float(norm.scale),
            "sequence": sequence,
        }
        aabb = self.config.scene_scale * torch.tensor([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]])
        return DataparserOutputs(
            image_filenames=[f.image_path for f in frames],
            cameras=self._cameras(indices),
            scene_box=SceneBox(aabb=aabb),
            mask_filenames=None,
            dataparser_scale=float(norm.scale),
            dataparser_transform=transform,
            metadata=metadata,
        )

    def _cameras(self, indices: list[int]) -> Cameras:
        """nerfstudio cameras of the frames `indices`, in the normalised world, times in [0, 1]."""
        sequence = self.sequence
        frames = [sequence.frames[i] for i in indices]
        poses = self.normalization.poses_to_normalized(sequence.camera_to_worlds[indices])  # [N, 4, 4]
        intrinsics = [f.intrinsics for f in frames]

        def column(name: str) -> torch.Tensor:
            return torch.tensor([[getattr(k, name)] for k in intrinsics], dtype=torch.float32)  # [N, 1]

        types = torch.tensor([[CAMERA_MODEL_TO_TYPE[k.model].value] for k in intrinsics], dtype=torch.long)
        times = torch.from_numpy(sequence.times_normalized[indices]).float()  # [N]
        sensor_idx = torch.from_numpy(sequence.camera_indices[indices])[:, None]  # [N, 1]
        return Cameras(
            camera_to_worlds=torch.from_numpy(poses[:, :3, :]).float(),
            fx=column("fx"),
            fy=column("fy"),
            cx=column("cx"),
            cy=column("cy"),
            width=torch.tensor([[k.width] for k in intrinsics], dtype=torch.long),
            height=torch.tensor([[k.height] for k in intrinsics], dtype=torch.long),
            distortion_params=torch.from_numpy(np.stack([k.distortion_params() for k in intrinsics])),
            camera_type=types,
            times=times,
            metadata={"sensor_idx": sensor_idx},
        )

    def _time_metadata(self, indices: list[int]) -> dict[str, object]:
        """Seconds, camera names and index tables of the split's images."""
        sequence = self.sequence
        axis = sequence.time_axis
        return {
            "times_seconds": torch.from_numpy(sequence.times_seconds[indices]),
            "time_range_seconds": (float(axis.start), float(axis.end)),
            "duration_seconds": float(axis.duration),
            "has_time": axis.source == "file",
            "camera_names": [sequence.frames[i].camera for i in indices],
            "sensor_names": list(sequence.cameras),
            "sensor_indices": torch.from_numpy(sequence.camera_indices[indices]),
            "timestamp_indices": torch.from_numpy(sequence.timestamp_indices[indices]),
            "frame_indices": torch.tensor(indices, dtype=torch.long),
        }

    def _file_metadata(self, indices: list[int]) -> dict[str, object]:
        """Lazy per-image side files: depth (nerfstudio's keys), instance masks, semantics."""
        sequence = self.sequence
        frames = [sequence.frames[i] for i in indices]
        return {
            "depth_filenames": [f.depth_path for f in frames] if sequence.has("depth") else None,
            "depth_unit_scale_factor": self.config.depth_unit_scale_factor,
            "instance_mask_filenames": [f.mask_path for f in frames] if sequence.has("mask") else None,
            "semantic_filenames": [f.semantic_path for f in frames] if sequence.has("semantic") else None,
            "semantic_classes": list(sequence.semantic_classes),
        }

    def _point_metadata(self) -> dict[str, object]:
        """The PLY points in the normalised world (read once), when there is a PLY and loading is on."""
        sequence = self.sequence
        if not self.config.load_3D_points or sequence.ply_path is None:
            return {}
        if self._points is None:
            self._points = read_points(sequence.ply_path)
        points = self._points
        if len(points.xyz) == 0:
            return {}
        out: dict[str, object] = {
            "points3D_xyz": torch.from_numpy(self.normalization.points_to_normalized(points.xyz)).float(),
            "points3D_rgb": torch.from_numpy(points.rgb),
        }
        if points.time is not None:
            out["points3D_time"] = torch.from_numpy(sequence.time_axis.normalize(points.time, clip=True)).float()
            out["points3D_time_seconds"] = torch.from_numpy(points.time)
        return out


semdyn_dataparser = DataParserSpecification(
    config=SemdynDataParserConfig(),
    description="semdyn driving sequences: timed multi-camera transforms.json with masks, depth, LiDAR points",
)

"""Image-only recordings (a dashcam clip, a folder of frames) -> semdyn sequence, through structure from motion.

``--data`` is a video file (anything ffmpeg decodes), a folder of frames (png/jpg, in name order), or a folder of
such folders, one per camera (frame i of every camera taken together). pycolmap (COLMAP) extracts SIFT features on
copies downscaled to ``--sfm-size``, matches each frame with its ``--overlap`` neighbours (sequential matching, for
video), and reconstructs incrementally with one camera model per camera. The sequence gets the registered frames
with their poses and intrinsics (scaled back to the full images), per-frame time (the video's timestamps, or
``--frame-rate``), and the sparse points in ``points.ply``, each with the time of the first frame that saw it.

Structure from motion has no metric scale: the world is COLMAP's (first registered camera's axes, arbitrary scale).
"""

from __future__ import annotations

import atexit
import logging
import math
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from rich.progress import track

from semdyn.data.sources import require
from semdyn.data.sources.common import (
    CameraFrame,
    CameraModel,
    ConvertOptions,
    LidarSweep,
    SourceScene,
    rigid,
    select_cameras,
)
from semdyn.data.sources.kitti_files import image_loader
from semdyn.errors import DataFormatError, InputError

log = logging.getLogger("semdyn")

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
"""Frame files read from a folder."""


@dataclass
class ImagesOptions(ConvertOptions):
    """Convert a video file or a folder of frames (or of per-camera frame folders) by structure from motion."""

    data: Path = Path("clip.mp4")
    """A video file, a folder of frames (name order), or a folder of per-camera frame folders."""
    frame_rate: float | None = None
    """Frames per second for folders of frames (default 10); a video's own timestamps are used when omitted."""
    every: int = 1
    """Keep every n-th frame."""
    sfm_size: int = 1280
    """Structure from motion runs on copies whose longer side is at most this many pixels (KITTI's 1226x370 frames
    registered 2 of 51 at 640 and all 51 at full size: a wide, low image needs its pixels)."""
    overlap: int = 10
    """Sequential matching: each frame is matched with this many following ones."""
    min_registered: float = 0.6
    """Fail when structure from motion registers fewer than this fraction of the frames."""
    focal: float | None = None
    """Focal length in pixels of the full-size frames when known (a calibration, the camera's data sheet); else
    COLMAP starts from 1.2 x the longer side and refines it (wide dashcams start far off: give it when you can)."""
    init_min_angle: float = 4.0
    """Smallest triangulation angle of the initial pair, degrees (COLMAP's 16 rarely holds for a forward-driving
    camera, whose neighbouring frames see the street from nearly the same direction)."""
    tries: int = 3
    """Incremental mapping attempts (each draws its initial pair with another seed) before giving up."""
    threads: int = 2
    """CPU threads for feature extraction, matching and bundle adjustment."""
    workspace: Path | None = None
    """Keep COLMAP's database, downscaled images, model and a video's decoded frames here (default: a temporary
    folder, removed when the process ends)."""

    def validate(self) -> None:
        """Check the values. Raises `InputError` naming the option."""
        super().validate()
        if self.frame_rate is not None and not (math.isfinite(self.frame_rate) and self.frame_rate > 0):
            raise InputError(f"--frame-rate must be a positive number of Hz, got {self.frame_rate}")
        checks = [
            ("--every", self.every >= 1),
            ("--sfm-size", self.sfm_size >= 64),
            ("--overlap", self.overlap >= 1),
            ("--threads", self.threads >= 1),
            ("--tries", self.tries >= 1),
        ]
        for name, ok in checks:
            if not ok:
                raise InputError(f"{name} must be a positive integer (--sfm-size at least 64)")
        if self.focal is not None and not (math.isfinite(self.focal) and self.focal > 0):
            raise InputError(f"--focal must be a positive number of pixels, got {self.focal}")
        if not 0.0 < self.min_registered <= 1.0:
            raise InputError(f"--min-registered must be a fraction in (0, 1], got {self.min_registered}")


def load(options: ImagesOptions) -> SourceScene:
    """Frames of a video or frame folders, posed by structure from motion, as a `SourceScene`.

    Raises:
        DataFormatError: a missing input, a video that cannot be decoded, a folder without frames, a structure from
            motion that registers too few frames (naming the input and what to do).
        InputError: bad options, pycolmap not installed.
    """
    options.validate()
    pycolmap = require("pycolmap", "image-only recordings", "convert", "pycolmap")
    pycolmap.logging.minloglevel = 1  # COLMAP's warnings and errors, not its hundreds of progress lines
    data = Path(options.data)
    if not data.exists():
        raise DataFormatError(data, "the video or frame folder (--data) does not exist")
    own = options.workspace is None
    work = Path(tempfile.mkdtemp(prefix="semdyn-sfm-")) if own else Path(options.workspace)
    try:
        cameras, times, full = _gather(data, options, work / "full")
        small = work / "images"
        scales = _downscale(full, small, options.sfm_size)
        reconstruction = _reconstruct(pycolmap, small, work, cameras, scales, options)
        return _scene(reconstruction, data, cameras, times, full, scales, options)
    finally:
        if own:  # a video's decoded frames are read again by the writer: the folder goes when the process ends
            shutil.rmtree(work / "images", ignore_errors=True)
            atexit.register(shutil.rmtree, work, True)


def _gather(data: Path, options: ImagesOptions, out: Path) -> tuple[list[str], list[float], dict[str, list[Path]]]:
    """Camera names, frame times and the full-resolution frame files (a video is decoded into ``out``)."""
    if data.is_file():
        return _decode_video(data, options, out)
    subfolders = sorted(p for p in data.iterdir() if p.is_dir() and _frames_in(p))
    folders = subfolders if subfolders and not _frames_in(data) else [data]
    names = [p.name for p in folders] if folders != [data] else ["camera"]
    selected = select_cameras(names, options.cameras, f"{data}")
    files = {n: _frames_in(f)[:: options.every] for n, f in zip(names, folders, strict=True) if n in selected}
    if not any(files.values()):
        raise DataFormatError(data, f"holds no frames ({', '.join(IMAGE_SUFFIXES)}) and is not a video")
    count = min(len(v) for v in files.values())
    files = {n: v[:count] for n, v in files.items()}
    if options.frames is not None:
        start, stop = options.frames
        files = {n: v[start:stop] for n, v in files.items()}
        if not next(iter(files.values())):
            raise InputError(f"--frames {start} {stop} starts past the last of the {count} frames of {data}")
    rate = options.frame_rate or 10.0
    first = options.frames[0] if options.frames is not None else 0
    times = [(first + i) * options.every / rate for i in range(len(next(iter(files.values()))))]
    return list(files), times, files


def _frames_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _decode_video(
    path: Path, options: ImagesOptions, out: Path
) -> tuple[list[str], list[float], dict[str, list[Path]]]:
    """Decode the kept frames of a video into ``out/video/<n>.png``; their times from the video (or --frame-rate)."""
    import av

    out = out / "video"
    out.mkdir(parents=True, exist_ok=True)
    files, times = [], []
    start, stop = options.frames if options.frames is not None else (0, None)
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DataFormatError(path, "holds no video stream; pass a video file or a folder of frames")
            stream = container.streams.video[0]
            for n, frame in enumerate(container.decode(stream)):
                if stop is not None and n >= stop:
                    break
                if n < start or (n - start) % options.every:
                    continue
                name = out / f"{n:06d}.png"
                frame.to_image().save(name)
                files.append(name)
                times.append(float(frame.time) if frame.time is not None and options.frame_rate is None else math.nan)
    except av.FFmpegError as err:
        raise DataFormatError(
            path,
            f"cannot be decoded as a video ({err.strerror or type(err).__name__}); re-encode it "
            "(ffmpeg -i IN -c:v libx264 OUT.mp4) or extract its frames into a folder and pass that",
        ) from err
    if not files:
        raise DataFormatError(path, "decoded to no frames in the selected --frames range; check the file plays")
    if any(math.isnan(t) for t in times):
        rate = options.frame_rate or 10.0
        times = [(start + i * options.every) / rate for i in range(len(files))]
    times = [t - times[0] for t in times]
    return ["camera"], times, {"camera": files}


def _downscale(full: dict[str, list[Path]], out: Path, size: int) -> dict[str, float]:
    """Write the SfM copies ``out/<camera>/<i>.png``; returns full-size / SfM-size per camera."""
    scales = {}
    for camera, files in full.items():
        (out / camera).mkdir(parents=True, exist_ok=True)
        for i, path in enumerate(track(files, f"preparing {camera} for structure from motion")):
            try:
                with Image.open(path) as image:
                    rgb = image.convert("RGB")
            except (OSError, SyntaxError) as err:
                raise DataFormatError(path, f"is not a readable image ({type(err).__name__})") from err
            scale = max(1.0, max(rgb.size) / size)
            if camera not in scales:
                scales[camera] = scale
            elif rgb.size != full_size(files[0]):
                raise DataFormatError(path, f"is {rgb.size[0]}x{rgb.size[1]}, the camera's first frame another size")
            small = rgb.resize((round(rgb.size[0] / scale), round(rgb.size[1] / scale)), Image.Resampling.BOX)
            small.save(out / camera / f"{i:06d}.png")
    return scales


def full_size(path: Path) -> tuple[int, int]:
    """Width and height of an image file."""
    with Image.open(path) as image:
        return image.size


def _reconstruct(
    pycolmap, images: Path, work: Path, cameras: list[str], scales: dict[str, float], options: ImagesOptions
):  # noqa: ANN001,E501
    """Features, sequential matches and the largest incremental model. Raises `DataFormatError` when too few."""
    database = work / "database.db"
    database.unlink(missing_ok=True)
    names = [f"{c}/{p.name}" for c in cameras for p in sorted((images / c).iterdir())]
    reader = pycolmap.ImageReaderOptions()
    reader.camera_model = "SIMPLE_RADIAL"
    if options.focal is not None:
        if len(cameras) > 1:
            raise InputError("--focal applies to one camera; leave it out for a folder of several cameras")
        width, height = Image.open(next((images / cameras[0]).iterdir())).size
        reader.camera_params = f"{options.focal / scales[cameras[0]]},{width / 2},{height / 2},0"
    extraction = pycolmap.FeatureExtractionOptions()
    extraction.num_threads = options.threads
    extraction.use_gpu = False
    log.info("structure from motion (pycolmap %s) on %d frames", pycolmap.__version__, len(names))
    pycolmap.extract_features(
        database,
        images,
        image_names=names,
        camera_mode=pycolmap.CameraMode.PER_FOLDER,
        reader_options=reader,
        extraction_options=extraction,
        device=pycolmap.Device.cpu,
    )
    pairing = pycolmap.SequentialPairingOptions()
    pairing.overlap = options.overlap
    pairing.num_threads = options.threads
    matching = pycolmap.FeatureMatchingOptions()
    matching.num_threads = options.threads
    matching.use_gpu = False
    pycolmap.match_sequential(database, matching_options=matching, pairing_options=pairing, device=pycolmap.Device.cpu)
    best, registered = None, 0
    need = math.ceil(options.min_registered * len(names))
    for attempt in range(options.tries):  # COLMAP's initial pair is drawn at random; another draw often succeeds
        mapping = pycolmap.IncrementalPipelineOptions()
        mapping.num_threads = options.threads
        mapping.multiple_models = False
        mapping.random_seed = attempt
        mapping.mapper.init_min_tri_angle = options.init_min_angle
        mapping.mapper.init_max_forward_motion = 1.0  # a driving camera moves along its axis; COLMAP refuses > 0.95
        out = work / "sparse" / str(attempt)
        out.mkdir(parents=True, exist_ok=True)
        models = pycolmap.incremental_mapping(database, images, out, options=mapping)
        model = max(models.values(), key=lambda m: m.num_reg_images(), default=None)
        count = model.num_reg_images() if model is not None else 0
        log.info("structure from motion try %d: %d of %d frames registered", attempt + 1, count, len(names))
        if count > registered:
            best, registered = model, count
        if registered >= need:
            break
    if registered < need:
        raise DataFormatError(
            options.data,
            f"structure from motion registered {registered} of {len(names)} frames in {options.tries} tries "
            f"(--min-registered needs {need}): "
            "the frames overlap too little, are blurred or textureless; keep more frames (--every 1), raise --sfm-size "
            "or --overlap, or use frames from a steadier camera",
        )
    return best


def _scene(reconstruction, data: Path, cameras, times, full, scales, options: ImagesOptions) -> SourceScene:  # noqa: ANN001
    """The registered frames (full-resolution files, scaled intrinsics) and the sparse points as timed chunks."""
    frames: list[CameraFrame] = []
    index_of = {}
    for image_id in reconstruction.reg_image_ids():
        image = reconstruction.image(image_id)
        camera_name, file_name = image.name.split("/", 1)
        i = int(Path(file_name).stem)
        index_of[image_id] = i
        colmap_camera = reconstruction.camera(image.camera_id)
        f, cx, cy, k1 = colmap_camera.params[:4]
        s = scales[camera_name]
        width, height = full_size(full[camera_name][0])
        model = CameraModel(f * s, f * s, cx * s, cy * s, width, height, k1=float(k1))  # both: pixel i spans [i, i+1)
        cam_from_world = np.asarray(image.cam_from_world().matrix())
        pose = np.linalg.inv(rigid(cam_from_world[:, :3], cam_from_world[:, 3]))
        path = full[camera_name][i]
        loader = image_loader(path, "the frame")
        frames.append(CameraFrame(camera_name, times[i], pose, model, loader, image_source=path))
    first_seen: dict[int, list[np.ndarray]] = {}
    for point in reconstruction.points3D.values():
        seen = [index_of[e.image_id] for e in point.track.elements if e.image_id in index_of]
        if seen:
            first_seen.setdefault(min(seen), []).append(np.asarray(point.xyz, dtype=np.float64))
    far = np.full(3, np.inf)  # no sensor: lidar_min_range keeps every point
    sweeps = [LidarSweep(times[i], far, lambda xyz=np.stack(xyz): xyz) for i, xyz in sorted(first_seen.items())]
    log.info(
        "structure from motion registered %d frames, %d points, reprojection error %.2f px",
        len(frames),
        reconstruction.num_points3D(),
        reconstruction.compute_mean_reprojection_error(),
    )
    info = {
        "data": str(data.resolve()),
        "poses": "structure from motion (pycolmap, sequential matching, SIMPLE_RADIAL per camera)",
        "world": "COLMAP's reconstruction frame; arbitrary scale (no metric units)",
        "time_origin": "the first kept frame",
        "registered_frames": len(frames),
        "sparse_points": int(reconstruction.num_points3D()),
    }
    return SourceScene(dataset="images", frames=frames, sweeps=sweeps, tracks=[], info=info)

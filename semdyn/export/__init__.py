"""Export of trained runs: per-time PLY files in the 3DGS layout, and loading a run from its checkpoint."""

from semdyn.export.checkpoint import TrainedRun, load_run
from semdyn.export.ply import export_ply, gaussians_table, parse_times, ply_fields, write_ply

__all__ = ["TrainedRun", "export_ply", "gaussians_table", "load_run", "parse_times", "ply_fields", "write_ply"]

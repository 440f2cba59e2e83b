"""Build flags and sources for semdyn's extension, shared by the JIT loader and any ahead-of-time build.

The CPU variant compiles ``csrc/cpu/*.cpp`` with OpenMP. The CUDA variant adds ``csrc/cuda/*.cu`` and
defines ``SEMDYN_WITH_CUDA``. torch's JIT cache keys each variant by its name, sources and flags, so
a changed source is rebuilt and an unchanged one is loaded from ``$TORCH_EXTENSIONS_DIR``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from types import ModuleType

CSRC = Path(__file__).resolve().parent / "csrc"
CPU_SOURCES = sorted(str(p) for p in (CSRC / "cpu").glob("*.cpp"))
CUDA_SOURCES = sorted(str(p) for p in (CSRC / "cuda").glob("*.cu"))
CXX_FLAGS = ["-O3", "-fopenmp"]  # torch adds the C++ standard it needs
LD_FLAGS = ["-fopenmp"]
NVCC_FLAGS = ["-O3"]


def cuda_home() -> str | None:
    """The CUDA toolkit's root: $CUDA_HOME, else /usr/local/cuda, else the folder above nvcc's bin/."""
    if os.environ.get("CUDA_HOME"):
        return os.environ["CUDA_HOME"]
    if Path("/usr/local/cuda/bin/nvcc").exists():
        return "/usr/local/cuda"
    nvcc = shutil.which("nvcc")
    return str(Path(nvcc).resolve().parent.parent) if nvcc else None


def nvcc_available() -> bool:
    """Whether a CUDA toolkit (nvcc) can be found."""
    return cuda_home() is not None


def load(with_cuda: bool, verbose: bool = False, build_dir: str | None = None) -> ModuleType:
    """JIT-build (or load from torch's cache) the extension.

    Args:
        with_cuda: compile the CUDA kernels too; needs nvcc, not a GPU (set TORCH_CUDA_ARCH_LIST
            when no device is present).
        verbose: print the compiler's commands.
        build_dir: where to build; defaults to torch's extension cache.
    """
    import torch.utils.cpp_extension as cpp

    if with_cuda and cuda_home() is not None:
        # torch guesses CUDA_HOME from nvcc's folder, which is wrong where nvcc is a wrapper on PATH.
        os.environ["CUDA_HOME"] = cuda_home()
        cpp.CUDA_HOME = os.environ["CUDA_HOME"]

    name = "semdyn_ext_cuda" if with_cuda else "semdyn_ext_cpu"
    sources = CPU_SOURCES + (CUDA_SOURCES if with_cuda else [])
    defines = ["-DSEMDYN_WITH_CUDA"] if with_cuda else []
    if build_dir is not None:
        Path(build_dir).mkdir(parents=True, exist_ok=True)
    return cpp.load(
        name=name,
        sources=sources,
        extra_cflags=CXX_FLAGS + defines,
        extra_cuda_cflags=NVCC_FLAGS + defines,
        extra_ldflags=LD_FLAGS,
        with_cuda=with_cuda,
        build_directory=build_dir,
        verbose=verbose,
    )

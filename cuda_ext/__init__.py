"""semdyn's own kernels: C++ (OpenMP) CPU sources and CUDA sources, JIT-built on first use.

Nothing here compiles at import time; :mod:`semdyn.ops._backend` calls :func:`cuda_ext.build.load`.
"""

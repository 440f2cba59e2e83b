"""semdyn: semantics-guided deformation regularization for dynamic 3D Gaussian splatting.

Importing semdyn never compiles kernels, downloads weights or imports nerfstudio.
"""

__version__ = "0.1.0"

"""Native (C++, later CUDA) sources of ganzoo's custom ops, installed as the package
``ganzoo_third_party`` (pyproject maps it onto this folder) so a wheel carries them as package
data. They are compiled on the user's machine at first use by :mod:`ganzoo.ops.build`.

- ``cpu/``: C++ CPU kernels of bias_act and upfirdn2d, registered as ``torch.ops.ganzoo_cpu``.
"""
from pathlib import Path

SOURCE_DIR = Path(__file__).resolve().parent

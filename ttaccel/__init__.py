"""ttaccel: FPGA accelerator generator and host for tensor-train compressed, low-bit transformers.

Sub-packages (each a folder of the repository mapped under this import root):
``ttaccel.spec`` (spec/), ``ttaccel.models`` (models/), ``ttaccel.hw`` (hw/),
``ttaccel.sim`` (sim/) and ``ttaccel.host`` (host/).
"""

__version__ = "0.1.0"

"""ttaccel.sim: simulation infrastructure and the tests of the hardware.

* :mod:`~ttaccel.sim.runner`: Amaranth component -> Verilog -> Verilator or Icarus build under
  ``build/sim/<sim>/<config>/`` -> a cocotb test module (``run_cocotb``); seeds and waves.
* :mod:`~ttaccel.sim.tb`: cocotb clock/reset harness and stream source/sink with idles,
  back-pressure and per-transfer cycle stamps; :mod:`~ttaccel.sim.layouts` packs payloads with
  the hardware's own layouts; :mod:`~ttaccel.sim.stimulus`: random and extreme codes.
* ``tb_*.py``: cocotb test modules; ``test_*.py``: the pytest entry points.

Nothing outside the tests imports this package.
"""

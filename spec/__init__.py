"""The executable contract of ttaccel (NumPy and the standard library only).

Arithmetic and data: number formats and requantization (:mod:`.formats`), bit packing
(:mod:`.packing`), TT-matrix layouts, TT-SVD and contraction plans (:mod:`.tt`), bit-exact
integer golden models (:mod:`.golden`), float scales to integer constants (:mod:`.ptq`), the
artifact format (:mod:`.artifact`, on :mod:`.safetensors_io`).

The accelerator: its configuration and resource estimates (:mod:`.accel_config`), the AXI4-Lite
register map (:mod:`.regmap`), the instruction set with its reference executor (:mod:`.isa`),
the layer compiler (:mod:`.compiler`) and the analytic cycle model (:mod:`.cycle_model`).
"""

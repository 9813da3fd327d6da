"""The executable contract of ttaccel (NumPy and the standard library only).

Number formats and requantization (:mod:`.formats`), bit packing (:mod:`.packing`), TT-matrix
layouts and float contraction (:mod:`.tt`), bit-exact integer golden models (:mod:`.golden`)
and the artifact format (:mod:`.artifact`).
"""

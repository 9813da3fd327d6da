"""ttaccel.sim"""

"""ttaccel.hw"""

"""ttaccel.host"""

"""ttaccel.models"""

"""Cameras, rigs and calibration formats, frame types and frame sources (no torch, no Qt)."""

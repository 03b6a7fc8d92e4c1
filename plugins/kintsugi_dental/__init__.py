"""Kintsugi dental plugin: per-tooth instance segmentation of CBCT (compact 3D U-Net, RAIL-trained)."""

"""Kintsugi reassembly plugin: fracture segmentation, pairwise matching and global assembly of fragments."""

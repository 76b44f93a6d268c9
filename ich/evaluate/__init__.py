"""Evaluation: detection, segmentation and volume metrics with bootstrap intervals."""

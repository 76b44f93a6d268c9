"""Synthetic head CT studies written as real DICOM, for tests, demos and training data."""

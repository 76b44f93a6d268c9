"""Training of the detector on synthetic studies: cache, sampling, augmentation, loop, folds."""

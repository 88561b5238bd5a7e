"""The toy data sets of the synthetic benchmark."""

"""Analysis of checkpoints (loss landscapes, spectra, BLiMP, probes).

Empty for now: the analysis issue fills it.
"""

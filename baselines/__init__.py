"""The methods WINA is compared against, one module each (TEAL, CATS, R-Sparse).

Importing a module registers its method with ``wina.registry``; this package imports none of them by itself
(the harness imports every module here, ``experiments.harness.methods``).
"""

"""equiv: the reproducible companion to *Using and Abusing Equivariance* (ICCVW 2023).

Sub-modules, one concept each:

- :mod:`equiv.groups`       the groups Z2, P4, P4M and their exact actions on images and group maps
- :mod:`equiv.nn`           group convolutions, pooling and batch norm (GrouPy vocabulary)
- :mod:`equiv.models`       the paper's networks behind one factory, :func:`equiv.models.build`
- :mod:`equiv.exactness`    the exactness predictor: which input sizes keep a network exactly equivariant
- :mod:`equiv.metrics`      equivariance errors (per element, per layer) and accuracy under rotation
- :mod:`equiv.rotation`     exact rot90/flip and bilinear rotations with an explicit fill value
- :mod:`equiv.atomic_io`    atomic result files; :mod:`equiv.provenance` what every result records
- :mod:`equiv.reproducibility` seeds and deterministic algorithms
"""

__version__ = "0.1.0"
__all__ = ["__version__"]

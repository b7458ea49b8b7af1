"""Cell therapy: patients and donors, treatment episodes, ISBT 128 product identity, COI checks."""

# Registered with the layers below on import: the COI check of an episode's samples at their
# custody moves (lims.samples) and the final-product label of a released cell product
# (lims.labels).
from lims.therapy import product_label, sample_custody  # noqa: E402, F401

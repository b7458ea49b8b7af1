"""Cell therapy: patients and donors, treatment episodes, ISBT 128 product identity, COI checks."""

# Registers the COI check of an episode's samples with their custody moves (lims.samples).
from lims.therapy import sample_custody  # noqa: E402, F401

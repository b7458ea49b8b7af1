"""Cell therapy: patients and donors, treatment episodes, ISBT 128 product identity, COI checks."""

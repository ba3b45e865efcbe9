"""Data sources (CelebA, IMM, 300-W, folders, synthetic faces), selections and the decode-once cache."""

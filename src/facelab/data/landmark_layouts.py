"""Point orders and left/right mirror permutations of the landmark sets facelab reads."""

from __future__ import annotations

import numpy as np


def _mirror(n: int, pairs: list[tuple[int, int]]) -> np.ndarray:
    perm = np.arange(n)
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return perm


# iBUG 300-W, 68 points (0-based): jaw 0-16, brows 17-26, nose 27-35, eyes 36-47, mouth 48-67.
IBUG68_MIRROR = _mirror(
    68,
    [(i, 16 - i) for i in range(8)]
    + [(17, 26), (18, 25), (19, 24), (20, 23), (21, 22)]
    + [(31, 35), (32, 34)]
    + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
    + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58)]
    + [(60, 64), (61, 63), (65, 67)],
)
IBUG68_OUTER_EYE_CORNERS = (36, 45)
IBUG68_EYES = (range(36, 42), range(42, 48))  # the points around each eye; their means are the pupils

# IMM, 58 points (0-based), in the database's path order: jaw 0-12, right eye 13-20,
# left eye 21-28, right brow 29-33, left brow 34-38, mouth 39-46, nose 47-57 (tip 52).
# Eyes and brows are listed in the same direction on both sides, so mirroring maps
# point k of one side to the reversed point of the other.
IMM58_NOSE_TIP = 52
IMM58_MIRROR = _mirror(
    58,
    [(i, 12 - i) for i in range(6)]
    + [(13 + k, 21 + (4 - k) % 8) for k in range(8)]
    + [(29 + k, 38 - k) for k in range(5)]
    + [(39 + k, 39 + (4 - k) % 8) for k in range(8) if k < (4 - k) % 8]
    + [(47 + k, 57 - k) for k in range(5)],
)

# What normalises the point error (NME) per layout: the inter-ocular distance between the outer eye corners, and
# the distance between the pupils (the means of each eye's points). IMM lists both eyes in the same direction, so
# its outer corners are whichever of the two mirrored pairs lies farther apart (13/25 or 17/21).
EYE_CORNER_PAIRS = {68: (IBUG68_OUTER_EYE_CORNERS,), 58: ((13, 25), (17, 21))}
EYE_POINTS = {68: IBUG68_EYES, 58: (range(13, 21), range(21, 29))}

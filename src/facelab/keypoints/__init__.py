"""Facial keypoints beyond training: CED and galleries, sweeps, CSV export, the user's photos."""

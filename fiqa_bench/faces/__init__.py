"""Faces: reading images, detection, landmarks and aligned chips."""

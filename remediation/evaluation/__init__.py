"""Evaluation of policies: simulator episodes side by side, off-policy estimates on logged history."""

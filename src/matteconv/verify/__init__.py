"""Verification of converted models against golden alpha mattes: metrics and comparisons."""

"""Tapedeck."""

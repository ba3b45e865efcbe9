"""Probes that take a trained network apart."""

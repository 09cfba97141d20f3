"""Shared code for the course."""

"""Prebuilt bitstreams, one folder per board, each with its manifest and reports (package data)."""

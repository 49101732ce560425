"""Shared web plumbing: templates, error rendering, the service prefix."""

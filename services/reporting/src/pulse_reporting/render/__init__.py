"""Renderers: a Report → Markdown, HTML, PDF, JSON, CSV."""

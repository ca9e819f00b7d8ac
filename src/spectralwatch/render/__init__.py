"""spectralwatch.render."""

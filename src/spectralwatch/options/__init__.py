"""spectralwatch.options."""

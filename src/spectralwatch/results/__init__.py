"""spectralwatch.results."""

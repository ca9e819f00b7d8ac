"""spectralwatch.core."""

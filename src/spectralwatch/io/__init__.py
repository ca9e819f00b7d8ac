"""spectralwatch.io."""

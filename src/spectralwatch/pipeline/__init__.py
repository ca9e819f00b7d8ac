"""spectralwatch.pipeline."""

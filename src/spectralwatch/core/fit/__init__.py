"""spectralwatch.core.fit."""

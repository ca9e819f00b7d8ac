"""spectralwatch.tools."""

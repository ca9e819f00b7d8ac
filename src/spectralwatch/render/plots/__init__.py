"""spectralwatch.render.plots."""

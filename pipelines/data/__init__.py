"""Shop data: the zones, sources, Great Expectations checks, curation and features."""

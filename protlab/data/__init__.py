"""Data: readers for every supported format, curation, the toy protein universe."""

"""Packed training: the jobs of a sweep that share an architecture train together in one process."""

"""Stand-in for the ais_bench package (see infer/interface.py)."""

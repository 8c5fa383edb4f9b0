"""Reader-study mode: reading rounds, blinding and their agreement report (issue 10)."""

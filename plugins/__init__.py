"""The Slurm side: backends, the hook daemon, the apply loop. Not built yet (issue 4)."""

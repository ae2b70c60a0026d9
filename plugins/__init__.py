"""The Slurm side: backends (Slurm's CLI, pyslurm), the submit hook's daemon (`placer serve`), the apply
loop (`placer apply`), the lab of real slurmd processes, and installing the hook into slurm.conf."""

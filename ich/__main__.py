"""``python -m ich``: the command line (what ``torchrun -m ich train`` runs in each process)."""

from ich.cli import app

app(prog_name="ich")

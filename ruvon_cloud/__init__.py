"""Reference cloud receiver for the sync wire protocol v1."""

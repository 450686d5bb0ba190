"""Artifact packs: one version of one market, written atomically, verified on every read, loaded to
predict."""

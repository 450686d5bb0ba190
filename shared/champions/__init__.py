"""Champions: publishing a gated version (pointer, registry, Redis), announcing it to bots, reconciling."""

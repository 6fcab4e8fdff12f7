"""The SPU: stores replicas, serves produce / stream fetch / offsets, reports health to the SC."""

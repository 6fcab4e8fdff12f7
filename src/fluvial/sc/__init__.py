"""The streaming controller: metadata authority for topics, partitions and SPUs."""

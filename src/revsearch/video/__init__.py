"""Videos: reading and sampling frames, linking faces into tracks, aggregating tracks."""

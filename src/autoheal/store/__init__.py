"""Everything autoheal keeps on disk, written so that no reader ever sees a torn file."""

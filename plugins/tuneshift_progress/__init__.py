"""Built-in observer: progress bars with totals and ETA, and a line per finished stage."""

"""Built-in observer: every step's numbers (a trainer's loss, learning rate, tokens/s) as TensorBoard scalars."""

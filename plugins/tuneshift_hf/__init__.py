"""Built-in transformers/peft implementations: the teacher's answerer and scorer, and the LoRA trainer."""

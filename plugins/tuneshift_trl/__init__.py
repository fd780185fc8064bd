"""The `trl-sft` trainer: TRL's SFTTrainer with LoRA, a drop-in alternative to the built-in peft-lora trainer."""

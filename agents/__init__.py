"""steersim's minds: agents, prompts, language backends, steering, memory."""

"""Built-in agentic expander: plan -> act -> observe over prompt operators, crawling what the teacher knows."""

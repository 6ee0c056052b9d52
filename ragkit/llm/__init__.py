"""ragkit.llm."""

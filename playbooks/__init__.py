"""The vocabulary: the action catalog and runbooks as YAML data, their schema and loader."""

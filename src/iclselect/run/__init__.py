"""A run end to end: settings, prepare -> score -> choose -> write, the methods' rounds driven
against the engine or a cost-only answerer, compare, inspect and dry-run estimates."""

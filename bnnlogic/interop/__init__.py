"""Exchange with other tools: file formats in and out of bnnlogic (torch-free)."""

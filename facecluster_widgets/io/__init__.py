"""Reading images and face sources from disk."""
